"""cap@<checkpoint>: activation capping (the paper's): at every listed decoder block, the projection of
the residual stream onto the unit axis is raised to at least tau (clamped from below, toward the
Assistant end), at every position, during generation.

tau (per layer) = the p-th percentile of the projections of this checkpoint's default-assistant
responses (their mean activation over the response, from its capture of the fixed transcripts) on the
unit axis: the primary axis of ``steer_directions`` (the reference's within its lineage, else its own).
The paper's best cap is p = 25 at a band of middle-to-late layers.

Measured per percentile (and uncapped, condition ``none``), on the same prompts:
- role adherence (the judge, 0-3) on the role prompts and on persona-style jailbreak prompts built
  from the same roles (``causal_runs.JAILBREAK_TEMPLATE``): capping should lower both;
- capability: perplexity of the checkpoint's own uncapped default-assistant responses (generated
  here, condition ``none``, on the default prompts) under each cap: capping should leave it near 1x.

Outputs: ``plan.json`` (settings, taus), ``generations.jsonl``, ``scores.jsonl``, ``perplexity.json``
({condition: {key: [sum NLL, tokens]}}). Statistics across checkpoints: ``causal``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from persona_axis.atomic import atomic_write
from persona_axis.causal_runs import (
    add_engine_args, generate_conditions, jailbreak, judge_records, load_backend, parse_named, perplexities,
    prompt_subset, write_plan,
)
from persona_axis.errors import InputError
from persona_axis.lineage import parse_lineages
from persona_axis.movement import load_reference


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="persona-axis-cap", description="Activation capping along the Assistant Axis (docs/causal.md).")
    add_engine_args(p)
    p.add_argument("--layers", type=int, nargs="+", required=True, help="decoder blocks whose output is capped")
    p.add_argument("--percentiles", type=float, nargs="+", required=True,
                   help="tau = this percentile of the default responses' projections (the paper: 25)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        from persona_axis.generation_backends import SamplingSettings
        from persona_axis.interventions import cap
        from persona_axis.steer_directions import build_directions, default_projections

        if any(not 0 <= q <= 100 for q in a.percentiles):
            raise InputError(f"--percentiles {a.percentiles}: each must be in [0, 100]")
        acts = parse_named(a.activations, "--activations")
        lineages = parse_lineages(a.lineage, list(acts))
        ref = load_reference(a.reference_dir)
        dirs = build_directions(a.checkpoint, acts, lineages, a.reference_checkpoint, Path(a.reference_dir),
                                Path(a.scores_dir) if a.scores_dir else None, a.layers, "sd", False, 0, controls=False)
        axis = dirs.vectors[dirs.primary]
        proj = default_projections(acts[a.checkpoint], axis)
        taus = {f"p{q:g}": {x: float(np.percentile(proj[x], q)) for x in axis} for q in sorted(set(a.percentiles))}
        base = prompt_subset(a.roles_dir, a.questions, ref.roles, a.roles_count, a.questions_count, a.subset_seed,
                             a.model_display_name)
        prompts = base + jailbreak(base)
        out = Path(a.output_dir)
        plan = {"stage": "cap", "checkpoint": a.checkpoint, "lineage": lineages[a.checkpoint], "axis": dirs.primary,
                "layers": sorted(a.layers), "percentiles": sorted(set(a.percentiles)),
                "tau": {c: {str(x): t for x, t in per.items()} for c, per in taus.items()},
                "tau_from": "percentile of the default responses' mean-activation projections on the unit axis, this "
                            "checkpoint's capture of the fixed transcripts",
                "default_projection_quartiles": {str(x): [float(v) for v in np.percentile(proj[x], [25, 50, 75])]
                                                 for x in proj},
                "applied": "h <- h + u max(tau - <h,u>, 0) at each listed block's output, every position",
                "prompts": [p.__dict__ for p in prompts],
                "sampling": {"temperature": a.temperature, "top_p": a.top_p, "max_tokens": a.max_tokens, "seed": a.seed},
                "model": a.model_name, "revision": a.revision, "random_init_seed": a.random_init_seed, "judge": a.judge}
        write_plan(out, plan)
        ivs = {c: cap(axis, per) for c, per in taus.items()}
        requests = [("none", None, p) for p in prompts]
        for c, iv in ivs.items():
            requests += [(f"cap|{c}", iv, p) for p in prompts if p.kind != "default"]
        backend = load_backend(a.model_name, a.revision, a.device, a.dtype, a.random_init_seed, a.chat_template_from)
        records = generate_conditions(backend, requests, out, seed=a.seed,
                                      params=SamplingSettings(a.temperature, a.top_p, a.max_tokens),
                                      batch_size=a.batch_size, prefill_batch=a.prefill_batch, kv_cache_gb=a.kv_cache_gb,
                                      decode_attention=a.decode_attention, compile_decode=a.compile_decode)
        own_default = [records[k] for k in sorted(records) if records[k]["kind"] == "default"
                       and records[k]["condition"] == "none"]
        ppl = perplexities(backend, own_default, {"none": None, **{f"cap|{c}": iv for c, iv in ivs.items()}})
        atomic_write(out / "perplexity.json", json.dumps(ppl, indent=1, sort_keys=True) + "\n")
        del backend
        judge_records(records, out, a.roles_dir, a.judge)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"cap {a.checkpoint}: {len(taus)} caps x {len(prompts)} prompts; tau {taus}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
