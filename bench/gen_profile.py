#!/usr/bin/env python3
"""Where the slot engine's decode step spends its time (issue 12), on the 7B-shaped random model.

For each variant (attention matmul | sdpa, decode step compiled or not): an engine of B slots is
filled with B requests (cache_len C), the step is captured as a CUDA graph, and ``--steps`` replays
are timed with CUDA events (ms per step, the GPU's share). Then one engine runs B requests through
``run()`` end to end (prefill + decode + host bookkeeping) to give the host's share. Last, a
torch.profiler table of one eager step (the kernels by total time).

    python bench/gen_profile.py --batch 448 --variants matmul:0,matmul:1,sdpa:0 --out /tmp/prof.json
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from gen_bench import build_model, copy_bandwidth, log, make_prompts  # noqa: E402
from persona_axis.slot_engine import Item, SlotEngine  # noqa: E402


PREFILL = 16


def engine(model, B, C, T, attention, compiled):
    return SlotEngine(model, slots=B, cache_len=C, max_tokens=T, temperature=0.7, top_p=0.9,
                      eos_ids=[model.config.vocab_size - 1], pad_id=0, attention=attention,
                      compile_decode="on" if compiled else "off")


def fill(eng, prompts, prefill=None):
    prefill = prefill or PREFILL
    items = [Item(i, p, 1000 + i) for i, p in enumerate(prompts)]
    free, active = list(range(eng.B)), {}
    for i in range(0, len(items), prefill):
        eng._admit(items[i:i + prefill], free, active)


def time_replays(eng, steps):
    for _ in range(3):
        eng.graph.replay()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(steps):
        eng.graph.replay()
    e.record()
    e.synchronize()
    return s.elapsed_time(e) / steps


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=448)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--variants", default="matmul:0,matmul:1,sdpa:0")
    ap.add_argument("--end-to-end", default="matmul:0", help="variant for the run() timing ('' = none)")
    ap.add_argument("--profile", action="store_true", help="kernel table of one eager step")
    ap.add_argument("--prefill", type=int, default=16)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    global PREFILL
    PREFILL = a.prefill
    dev = torch.device("cuda")
    model = build_model(dev, False, 3.0)
    wbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bw = copy_bandwidth(dev)
    B, T = a.batch, a.new_tokens
    prompts = make_prompts(B, model.config.vocab_size, seed=B)
    C = -(-(max(len(p) for p in prompts) + T) // 16) * 16
    kv_bytes = 2 * 32 * 4096 * 2 * B * C
    res = dict(batch=B, cache_len=C, copy_bandwidth_Bps=bw, weight_bytes=wbytes, kv_cache_bytes=kv_bytes,
               floor_ms_weights=wbytes / bw * 1e3, floor_ms_weights_plus_full_kv=(wbytes + kv_bytes) / bw * 1e3,
               variants={})
    log(f"B={B} C={C}: floor weights {res['floor_ms_weights']:.2f} ms, + full KV read "
        f"{res['floor_ms_weights_plus_full_kv']:.2f} ms per step")
    for v in [x for x in a.variants.split(",") if x]:
        att, comp = v.split(":")
        t0 = time.perf_counter()
        try:
            eng = engine(model, B, C, T, att, comp == "1")
            eng._capture()
            cap_s = time.perf_counter() - t0
            fill(eng, prompts)
            ms = time_replays(eng, a.steps)
            res["variants"][v] = dict(ms_per_step=ms, tok_s_decode_only=B / ms * 1e3, capture_s=cap_s)
        except Exception as e:  # report, keep the others
            res["variants"][v] = dict(error=f"{type(e).__name__}: {e}"[:800])
        log(f"{v}: {res['variants'][v]}")
        eng = None
        gc.collect()
        torch.cuda.empty_cache()
    if a.end_to_end:
        att, comp = a.end_to_end.split(":")
        eng = engine(model, B, C, T, att, comp == "1")
        eng._capture()
        items = [Item(i, p, 1000 + i) for i, p in enumerate(prompts)]
        groups = [items[i:i + PREFILL] for i in range(0, len(items), PREFILL)]
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        n = sum(len(f.tokens) for f in eng.run(groups))
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        # prefill alone: the same admissions without decoding
        eng2 = engine(model, B, C, T, att, False)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        fill(eng2, prompts)
        torch.cuda.synchronize()
        pre = time.perf_counter() - t1
        res["end_to_end"] = dict(variant=a.end_to_end, tokens=n, seconds=dt, tok_s=n / dt, steps=eng.steps,
                                 ms_per_step_wall=(dt - pre) / max(eng.steps, 1) * 1e3, prefill_s=pre)
        log(f"end to end: {res['end_to_end']}")
        eng = eng2 = None
        gc.collect()
        torch.cuda.empty_cache()
    if a.profile:
        eng = engine(model, B, C, T, "matmul", False)
        eng.use_cuda_graph = False
        fill(eng, prompts)
        for _ in range(2):
            eng._step()
        torch.cuda.synchronize()
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            eng._step()
            torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=25)
        res["profile_table"] = table
        print(table, file=sys.stderr)
    text = json.dumps(res, indent=2)
    if a.out:
        Path(a.out).write_text(text + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "profile_table"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
