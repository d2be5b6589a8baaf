"""Timing of the label-shuffle null and the paired bootstrap on random data of the study's shape
(roles x prompts x questions x hidden size), scaled down in d and in the number of draws, then
extrapolated linearly (both costs are linear in d and in the draws; stated in the output).

    .venv/bin/python bench/statistics_bench.py [--roles 275] [--prompts 5] [--questions 240] [--d 1024]
        [--full-d 4096] [--boot 40] [--perms 6] [--full-draws 1000] [--checkpoints 11]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from persona_axis.layer_rows import LayerRows, cell_sums, weighted_means  # noqa: E402
from persona_axis.movement_metrics import checkpoint_metrics, reference_batch  # noqa: E402
from persona_axis.space_statistics import bootstrap_headline, label_shuffle_null, resample_weights  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--roles", type=int, default=275)
    p.add_argument("--prompts", type=int, default=5)
    p.add_argument("--questions", type=int, default=240)
    p.add_argument("--d", type=int, default=1024)
    p.add_argument("--full-d", type=int, default=4096)
    p.add_argument("--boot", type=int, default=40)
    p.add_argument("--perms", type=int, default=6)
    p.add_argument("--full-draws", type=int, default=1000)
    p.add_argument("--checkpoints", type=int, default=11)
    a = p.parse_args()
    L = a.roles + 1
    n = L * a.prompts * a.questions
    g = torch.Generator().manual_seed(0)
    label = torch.arange(L).repeat_interleave(a.prompts * a.questions)
    cellidx = np.tile(np.arange(a.prompts * a.questions), L)
    data = LayerRows(labels=[f"r{i}" for i in range(L)], rows=torch.randn(n, a.d, generator=g), label=label,
                     prompt=cellidx // a.questions, question=cellidx % a.questions)
    t = time.perf_counter()
    cells = cell_sums(data)
    t_cells = time.perf_counter() - t
    W = resample_weights(cells, a.boot, 1)
    t = time.perf_counter()
    bootstrap_headline(cells, W)
    t_boot = time.perf_counter() - t
    # project: per checkpoint, the current and previous checkpoint's resampled means and every movement number
    align = torch.linalg.qr(torch.randn(a.d, 5, dtype=torch.float64))[0].T
    t = time.perf_counter()
    ref = reference_batch(weighted_means(cells, W), align)
    checkpoint_metrics(weighted_means(cells, W), ref, weighted_means(cells, W), align)
    t_mv = time.perf_counter() - t
    t = time.perf_counter()
    label_shuffle_null(data, a.perms, 2)
    t_null = time.perf_counter() - t
    scale_d = a.full_d / a.d
    f_boot = a.full_draws / a.boot * scale_d
    f_null = a.full_draws / a.perms * scale_d
    print(f"shape: {a.roles} roles + default, {a.prompts} prompts x {a.questions} questions = {n} responses, d={a.d} "
          f"(extrapolated to d={a.full_d}, {a.full_draws} draws, {a.checkpoints} checkpoints); threads {torch.get_num_threads()}")
    print(f"cell sums (once per checkpoint):        {t_cells:7.2f} s  -> {t_cells * scale_d:8.1f} s at full d")
    print(f"persona_space bootstrap, {a.boot} resamples:   {t_boot:7.2f} s  -> {t_boot * f_boot:8.1f} s for {a.full_draws}")
    print(f"project, one checkpoint, {a.boot} resamples:   {t_mv:7.2f} s  -> {t_mv * f_boot:8.1f} s; "
          f"{a.checkpoints} checkpoints: {(t_mv * f_boot + t_cells * scale_d) * a.checkpoints / 60:6.1f} min")
    print(f"label-shuffle null, {a.perms} permutations:   {t_null:7.2f} s  -> {t_null * f_null / 60:8.1f} min for {a.full_draws}")


if __name__ == "__main__":
    main()
