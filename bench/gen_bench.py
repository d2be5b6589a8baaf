#!/usr/bin/env python3
"""GPU benchmark and check of generation (issue 12): our hf backend vs transformers' generate().

A random-weight OLMo-2-7B-shaped model (7.3B parameters) in bfloat16, built on the GPU from
``Olmo2Config`` (no download). Random weights give near-uniform next-token distributions (a top-p
0.9 nucleus of ~30,000 tokens), unlike a trained chat model at temperature 0.7 (a few to a few
dozen tokens); ``--logit-scale`` (default 3) multiplies the LM head so the nucleus holds ~40
tokens, for every contender alike (1 = raw random weights). Prompts: random token ids, 60-160
tokens; ``--new-tokens`` (256) new tokens each, temperature 0.7, top-p 0.9; EOS is never reached
in practice, so every contender generates the same number of tokens.

For each batch size B (``--batches``), on the same ``--requests-per-batch`` x B requests, in one run:
  ours        persona_axis' slot engine (static KV cache, CUDA-graphed decode step, top-K sampling,
              continuous batching with B slots, prefill groups of 16), tokens/s over wall time;
  dynamic     transformers ``generate(do_sample=True)``, default (dynamic) cache, batches of B;
  static      ``generate(cache_implementation="static")`` (transformers compiles the forward), batches
              of B padded to one length; the first batch (compile) is timed apart and excluded;
  limit       the decode limit: B tokens per read of the weights at the copy bandwidth measured here.
Checks (ours): a resumed run (half the requests first, then the rest) gives the same tokens per
request as one pass (rows do not depend on their neighbours); greedy tokens agree with
``generate()``'s greedy tokens (bf16: near-ties may differ).

    python bench/gen_bench.py --out /tmp/gen.json                    # one GPU
    python bench/gen_bench.py --only ours --workers 2 --out x.json   # ours on every GPU (one process each)
    python bench/gen_bench.py --small --device cpu                   # smoke test of the script
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

import torch  # noqa: E402

from persona_axis.slot_engine import Item, SlotEngine  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_model(device: torch.device, small: bool, logit_scale: float):
    from transformers import Olmo2Config, Olmo2ForCausalLM

    if small:
        cfg = Olmo2Config(vocab_size=1024, hidden_size=128, intermediate_size=344, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096)
    else:
        cfg = Olmo2Config(vocab_size=100352, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                          num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                          tie_word_embeddings=False)
    cfg._attn_implementation = "sdpa"
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Olmo2ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    model.eval().requires_grad_(False)
    with torch.no_grad():
        model.lm_head.weight.mul_(logit_scale)
    model.generation_config.eos_token_id = cfg.vocab_size - 1
    model.generation_config.pad_token_id = 0
    return model


def copy_bandwidth(device: torch.device) -> float:
    """Bytes/s of a device-to-device copy (read + write counted), median of 10."""
    if device.type != "cuda":
        return float("nan")
    a = torch.empty(2 * 2**30, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    ts = []
    for _ in range(10):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        b.copy_(a)
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e) / 1000)
    del a, b
    ts.sort()
    return 2 * 2 * 2**30 / ts[len(ts) // 2]


def make_prompts(n: int, vocab: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        L = int(torch.randint(60, 161, (1,), generator=g))
        out.append(torch.randint(1, vocab - 1, (L,), generator=g).tolist())
    return out


PREFILL = 16  # requests per prefill group (--prefill)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_ours(model, prompts, seeds, B, T, temperature, top_p, wanted=None, prefill=None, precapture=True,
             attention="matmul", compile_decode="auto"):
    prefill = prefill or PREFILL
    C = -(-(max(len(p) for p in prompts) + T) // 16) * 16
    eng = SlotEngine(model, slots=B, cache_len=C, max_tokens=T, temperature=temperature, top_p=top_p,
                     eos_ids=[model.config.vocab_size - 1], pad_id=0, attention=attention, compile_decode=compile_decode)
    items = [Item(i, p, s, wanted is None or wanted[i]) for i, (p, s) in enumerate(zip(prompts, seeds))]
    groups = [items[i:i + prefill] for i in range(0, len(items), prefill)]
    out = {}
    t_cap = time.perf_counter()
    if eng.use_cuda_graph and precapture:  # else run() captures (the pipeline's path), inside the timing
        eng._capture()
    t_cap = time.perf_counter() - t_cap
    sync(eng.device)
    t0 = time.perf_counter()
    for fin in eng.run(groups):
        out[fin.key] = fin.tokens
    sync(eng.device)
    dt = time.perf_counter() - t0
    ntok = sum(len(t) for t in out.values())
    stats = dict(tokens=ntok, seconds=dt, tok_s=ntok / dt, capture_s=t_cap, steps=eng.steps,
                 fallback_rows=eng.fallback_rows, slots=B, cache_len=C)
    del eng
    import gc

    gc.collect()
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return out, stats


def run_generate(model, prompts, B, T, temperature, top_p, static: bool, device):
    """transformers generate() in batches of B, left padding (static: every batch padded to one length)."""
    L = max(len(p) for p in prompts)
    batches = [prompts[i:i + B] for i in range(0, len(prompts), B)]
    times, ntoks = [], []
    for bi, batch in enumerate(batches):
        Lb = L if static else max(len(p) for p in batch)
        ids = torch.zeros((len(batch), Lb), dtype=torch.long)
        attn = torch.zeros((len(batch), Lb), dtype=torch.long)
        for i, p in enumerate(batch):
            ids[i, Lb - len(p):] = torch.tensor(p)
            attn[i, Lb - len(p):] = 1
        ids, attn = ids.to(device), attn.to(device)
        kw = dict(do_sample=temperature > 0, temperature=temperature, top_p=top_p, max_new_tokens=T,
                  min_new_tokens=T, pad_token_id=0)
        if static:
            kw["cache_implementation"] = "static"
        sync(device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=attn, **kw)
        sync(device)
        times.append(time.perf_counter() - t0)
        ntoks.append(int(out.shape[0] * (out.shape[1] - Lb)))
    first = dict(tokens=ntoks[0], seconds=times[0])
    if static and len(times) > 1:  # the first batch compiles; time the rest
        times, ntoks = times[1:], ntoks[1:]
    return dict(tokens=sum(ntoks), seconds=sum(times), tok_s=sum(ntoks) / sum(times), first_batch=first)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--requests-per-batch", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--logit-scale", type=float, default=3.0)
    ap.add_argument("--only", default="ours,dynamic,static,checks")
    ap.add_argument("--workers", type=int, default=1, help="ours only: one process per GPU, requests split")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--prefill", type=int, default=16, help="ours: requests per prefill group")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.workers > 1 and a.worker is None:
        return spawn_workers(a)
    global PREFILL
    PREFILL = a.prefill
    device = torch.device(a.device)
    only = set(a.only.split(","))
    t = time.perf_counter()
    model = build_model(device, a.small, a.logit_scale)
    nparams = sum(p.numel() for p in model.parameters())
    wbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    res = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               machine=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
               torch=torch.__version__, params=nparams, weight_bytes=wbytes, args=vars(a),
               build_s=time.perf_counter() - t, runs=[])
    bw = copy_bandwidth(device)
    res["copy_bandwidth_Bps"] = bw
    log(f"model {nparams / 1e9:.2f}B params built in {res['build_s']:.1f}s; copy bandwidth {bw / 1e12:.2f} TB/s")
    T, temp, top_p = a.new_tokens, a.temperature, a.top_p
    V = model.config.vocab_size
    for B in [int(x) for x in a.batches.split(",")]:
        n = a.requests_per_batch * B
        prompts = make_prompts(n, V, seed=B)
        seeds = list(range(1000, 1000 + n))
        if a.worker:
            i, k = (int(x) for x in a.worker.split("/"))
            prompts, seeds = prompts[i::k], seeds[i::k]
        r = dict(batch=B, requests=len(prompts), limit_tok_s=B * bw / wbytes)
        if "ours" in only:
            toks, st = run_ours(model, prompts, seeds, B, T, temp, top_p)
            r["ours"] = st
            r["ours_fraction_of_limit"] = st["tok_s"] / r["limit_tok_s"]
            log(f"B={B} ours: {st}")
            if "checks" in only:
                half = [i % 2 == 0 for i in range(len(prompts))]
                t1, _ = run_ours(model, prompts, seeds, B, T, temp, top_p, wanted=half, precapture=False)
                t2, _ = run_ours(model, prompts, seeds, B, T, temp, top_p, wanted=[not h for h in half],
                                 precapture=False)
                resumed = {**t1, **t2}
                same = sum(resumed[k] == toks[k] for k in toks)
                r["check_resume_identical_requests"] = f"{same}/{len(toks)}"
                log(f"B={B} resume check: {same}/{len(toks)} requests identical")
        if "dynamic" in only:
            r["dynamic"] = run_generate(model, prompts, B, T, temp, top_p, False, device)
            log(f"B={B} generate() dynamic: {r['dynamic']}")
        if "static" in only:
            try:
                r["static"] = run_generate(model, prompts, B, T, temp, top_p, True, device)
            except Exception as e:  # report, keep the other numbers
                r["static"] = dict(error=f"{type(e).__name__}: {e}"[:500])
            log(f"B={B} generate() static+compile: {r['static']}")
        res["runs"].append(r)
    if "checks" in only:
        res["greedy_agreement"] = greedy_check(model, V, device)
        log(f"greedy agreement with generate(): {res['greedy_agreement']}")
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


def greedy_check(model, V, device, n=8, T=32):
    prompts = make_prompts(n, V, seed=7)
    toks, _ = run_ours(model, prompts, list(range(n)), 8, T, 0.0, 1.0)
    agree = total = 0
    for i, p in enumerate(prompts):
        with torch.inference_mode():
            out = model.generate(input_ids=torch.tensor([p], device=device), do_sample=False, max_new_tokens=T,
                                 min_new_tokens=T, pad_token_id=0)
        ref = out[0, len(p):].tolist()
        mine = toks[i]
        k = 0
        while k < min(len(ref), len(mine)) and ref[k] == mine[k]:
            k += 1
        agree += k
        total += T
    return dict(tokens_equal_before_first_difference=agree, tokens=total)


def spawn_workers(a) -> int:
    import subprocess

    procs, outs = [], []
    t0 = time.perf_counter()
    for i in range(a.workers):
        out = f"/tmp/gen_bench_w{i}.json"
        outs.append(out)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(i))
        argv = [x for x in sys.argv[1:]]
        if "--out" in argv:
            j = argv.index("--out")
            del argv[j:j + 2]
        procs.append(subprocess.Popen([sys.executable, __file__, *argv, "--worker", f"{i}/{a.workers}", "--out", out],
                                      env=env, stdout=subprocess.DEVNULL))
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    parts = [json.loads(Path(o).read_text()) for o in outs]
    res = dict(workers=a.workers, codes=codes, wall_s_including_build=wall, parts=parts, runs=[])
    for k, r0 in enumerate(parts[0]["runs"]):
        runs = [p["runs"][k] for p in parts]
        toks = sum(r["ours"]["tokens"] for r in runs)
        slowest = max(r["ours"]["seconds"] for r in runs)
        res["runs"].append(dict(batch=r0["batch"], tokens=toks, seconds_slowest_worker=slowest,
                                tok_s=toks / slowest, per_worker_tok_s=[r["ours"]["tok_s"] for r in runs]))
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0 if all(c == 0 for c in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
