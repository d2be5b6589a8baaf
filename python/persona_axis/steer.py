"""steer@<checkpoint>: generate on the fixed prompt subset while adding alpha x v to the residual stream
after block(s) L, for every direction and alpha, in one batched generation; judge every role response.

Directions (``steer_directions``): the primary axis (the reference's, or the checkpoint's own across
lineages), the other axes of its lineage (the transfer matrix) and three controls (random, shuffled,
orthogonal) of the primary's norm. Alpha is in units of the SD of the checkpoint's role projections on
each axis (``--scale sd``) or multiplies the unnormalised axis (``--scale raw``, the paper's code).
Alpha 0 is generated once (condition ``none``): every direction shares it.

Outputs (``--output-dir``): ``plan.json`` (settings, directions with norms and SDs, prompts),
``directions.pt`` ({name: {layer: vector at alpha 1}}), ``generations.jsonl`` (one line per
condition x prompt: condition ``none`` or ``steer|<direction>|<alpha>``), ``scores.jsonl``.
Statistics across checkpoints: ``causal`` (docs/causal.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import torch

from persona_axis.causal_runs import (
    add_engine_args, generate_conditions, judge_records, load_backend, parse_named, prompt_subset, write_plan,
)
from persona_axis.errors import InputError
from persona_axis.lineage import parse_lineages
from persona_axis.movement import load_reference


def condition_name(direction: str, alpha: float) -> str:
    return "none" if alpha == 0 else f"steer|{direction}|{alpha:g}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="persona-axis-steer", description="Steering along the Assistant Axis, with controls (docs/causal.md).")
    add_engine_args(p)
    p.add_argument("--alphas", type=float, nargs="+", required=True)
    p.add_argument("--layers", type=int, nargs="+", required=True, help="decoder blocks whose output is steered")
    p.add_argument("--scale", choices=["sd", "raw"], default="sd")
    p.add_argument("--no-transfer", action="store_true", help="only the primary axis and the controls")
    p.add_argument("--no-controls", action="store_true")
    p.add_argument("--direction-seed", type=int, default=0, help="seed of the random and shuffled controls")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        from persona_axis.generation_backends import SamplingSettings
        from persona_axis.steer_directions import build_directions

        acts = parse_named(a.activations, "--activations")
        lineages = parse_lineages(a.lineage, list(acts))
        ref = load_reference(a.reference_dir)
        dirs = build_directions(a.checkpoint, acts, lineages, a.reference_checkpoint, Path(a.reference_dir),
                                Path(a.scores_dir) if a.scores_dir else None, a.layers, a.scale, not a.no_transfer,
                                a.direction_seed, controls=not a.no_controls)
        prompts = prompt_subset(a.roles_dir, a.questions, ref.roles, a.roles_count, a.questions_count, a.subset_seed,
                                a.model_display_name)
        alphas = sorted(set(a.alphas) | {0.0})
        out = Path(a.output_dir)
        plan = {"stage": "steer", "checkpoint": a.checkpoint, "lineage": lineages[a.checkpoint],
                "primary": dirs.primary, "directions": dirs.info, "alphas": alphas, "layers": sorted(a.layers),
                "scale": a.scale, "applied": "added to the output of each listed decoder block, every position",
                "prompts": [p.__dict__ for p in prompts],
                "sampling": {"temperature": a.temperature, "top_p": a.top_p, "max_tokens": a.max_tokens, "seed": a.seed},
                "model": a.model_name, "revision": a.revision, "random_init_seed": a.random_init_seed,
                "judge": a.judge}
        write_plan(out, plan)
        torch.save({n: {int(k): v for k, v in per.items()} for n, per in dirs.vectors.items()}, out / "directions.pt")
        from persona_axis.interventions import steer

        requests = [("none", None, p) for p in prompts]
        for name, per in dirs.vectors.items():
            for al in alphas:
                if al != 0:
                    iv = steer(per, al)
                    requests += [(condition_name(name, al), iv, p) for p in prompts]
        backend = load_backend(a.model_name, a.revision, a.device, a.dtype, a.random_init_seed, a.chat_template_from)
        records = generate_conditions(backend, requests, out, seed=a.seed,
                                      params=SamplingSettings(a.temperature, a.top_p, a.max_tokens),
                                      batch_size=a.batch_size, prefill_batch=a.prefill_batch, kv_cache_gb=a.kv_cache_gb,
                                      decode_attention=a.decode_attention, compile_decode=a.compile_decode)
        del backend
        judge_records(records, out, a.roles_dir, a.judge)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"steer {a.checkpoint}: {len(dirs.vectors)} directions x {len(alphas)} alphas x {len(prompts)} prompts",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
