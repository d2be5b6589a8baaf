#!/usr/bin/env python3
"""GPU check and benchmark of activation capture (issue 4).

A full-size random-weight OLMo-2-7B-shaped model (32 layers, hidden 4096, FFN 11008, 32 heads,
vocab 100352) in bfloat16, built on the GPU from ``Olmo2Config`` (no download), and about 2,000
synthetic conversations (prompts 40-150 tokens, responses 50-512 tokens, text from the tiny local
byte-level tokenizer's corpus, written as real transcript files of 4 roles). In one run:

  (a) the paper's approach: batches of 16 in file order, right padding + attention mask, the full
      model (LM head included) with ``output_hidden_states``, mean over the response span per
      conversation (one host copy per conversation);
  (b) ours (``persona_axis.capture.run_capture``) for the middle layer, and (c) for all 32 layers:
      first with eager blocks (``--no-compile``), then with torch.compile'd blocks (the CLI's default
      on CUDA; the one-off compile is timed separately), the middle layer timed twice.

Reported: tokens/s (conversation tokens over wall time, tokenization, span finding and writing
included for ours), the fraction of the GPU's bf16 limit for the blocks actually run
(2 x parameters-run x tokens-run / time, over the rate of a big bf16 matmul measured in the same
run), peak GPU memory, and the largest relative difference ||a - ours|| / ||a|| over samples between
(a) and (b)/(c) (all layers but the last: transformers' hidden_states[32] is the final-norm output,
ours is the raw last block).

    python bench/capture_bench.py --out-dir /tmp/bench            # on an H100/H200
    python bench/capture_bench.py --small --device cpu --out-dir /tmp/b   # smoke test of the script
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import torch  # noqa: E402

from persona_axis import prompts  # noqa: E402
from persona_axis.capture import CaptureSettings, RunInfo, run_capture  # noqa: E402
from persona_axis.model_blocks import compile_blocks, uncompile_blocks  # noqa: E402
from persona_axis.spans import conversation_text, encode_conversations  # noqa: E402
from persona_axis.tiny_models import _CORPUS, OLMO2_CHAT_TEMPLATE, build_tokenizer  # noqa: E402
from persona_axis.transcripts import read_finished_records  # noqa: E402

ROLES = ("default", "pirate", "stoic", "therapist")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, n: int, reps: int = 20) -> float:
    """bf16 FLOP/s of an n x n x n product on random data (median of event-timed reps)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        if device.type == "cuda":
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            a @ b
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e) / 1000)
        else:
            a @ b
            times.append(time.perf_counter() - t0)
    times.sort()
    return 2 * n**3 / times[len(times) // 2]


def build_model(device: torch.device, small: bool):
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
            model = Olmo2ForCausalLM(cfg)  # weights created and initialised on the device, in bf16
    finally:
        torch.set_default_dtype(old)
    model.eval().requires_grad_(False)
    return model


def block_params(model) -> int:
    from persona_axis.model_blocks import find_decoder_blocks

    _, blocks = find_decoder_blocks(model)
    return sum(p.numel() for p in blocks[0].parameters())


def make_transcripts(tok, out: Path, n: int, seed: int, small: bool) -> dict:
    """~n conversations over 4 roles: prompt 40-150 tokens, response 50-512 tokens (targets)."""
    rng = random.Random(seed)
    words = [w for w in _CORPUS.split() if w.isalpha()]
    probe = " ".join(rng.choice(words) for _ in range(2000))
    per_word = len(tok(probe, add_special_tokens=False)["input_ids"]) / 2000
    overhead = len(tok(prompts.render_prompt(tok, "x", "y"), add_special_tokens=False)["input_ids"]) - 2
    p_lo, p_hi, r_lo, r_hi = (40, 150, 50, 512) if not small else (10, 30, 5, 60)
    out.mkdir(parents=True, exist_ok=True)
    per_role = n // len(ROLES)
    for role in ROLES:
        lines = []
        for k in range(per_role):
            spi, qi = k % 5, k // 5
            p_words = max(3, int((rng.randint(p_lo, p_hi) - overhead) / per_word))
            sp_words = rng.randint(1, max(1, p_words // 3))
            system_prompt = "" if (role == "default" and spi == 0) else " ".join(rng.choice(words) for _ in range(sp_words)) + "."
            question = " ".join(rng.choice(words) for _ in range(max(1, p_words - sp_words))) + "?"
            response = " ".join(rng.choice(words) for _ in range(max(1, int(rng.randint(r_lo, r_hi) / per_word))))
            lines.append(json.dumps({"role": role, "system_prompt_idx": spi, "question_idx": qi, "rollout_idx": 0,
                                     "question_id": qi, "system_prompt": system_prompt, "question": question,
                                     "response": response, "finish_reason": "stop", "num_tokens": 0, "seed": k,
                                     "model": "bench", "checkpoint": "main"}))
        (out / f"{role}.jsonl").write_text("\n".join(lines) + "\n")
    return {"tokens_per_word": per_word}


def read_all(tdir: Path) -> list[tuple[str, dict]]:
    out = []
    for role in ROLES:
        out.extend((role, rec) for rec in read_finished_records(tdir / f"{role}.jsonl"))
    return out


def paper_approach(model, tok, records, device, batch_size=16):
    """Batches of 16 in file order, right padding, full forward with output_hidden_states, mean over the
    response span per conversation and per layer, one host copy per conversation."""
    tok.padding_side = "right"
    results = {}
    real_tokens = padded = 0
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        texts = [conversation_text(tok, r["system_prompt"], r["question"], r["response"]) for _, r in chunk]
        spans = encode_conversations(tok, texts, check_decode=False)
        enc = tok([t.text for t in texts], add_special_tokens=False, padding=True, return_tensors="pt")
        ids = enc["input_ids"].to(device)
        mask = enc["attention_mask"].to(device)
        real_tokens += int(mask.sum())
        padded += ids.numel()
        with torch.inference_mode():
            hs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            for i, ((role, r), sp) in enumerate(zip(chunk, spans)):
                acts = torch.stack([h[i, sp.span_start:sp.span_end].float().mean(0) for h in hs[1:]]).cpu()
                results[(role, r["system_prompt_idx"], r["question_idx"], r["rollout_idx"])] = acts
        del hs
    return results, real_tokens, padded


def ours(model, tok, tdir, out_dir, layers, budget, label):
    if out_dir.exists():
        shutil.rmtree(out_dir)
    settings = CaptureSettings(layers=tuple(layers), aggregation="mean", max_batch_tokens=budget, max_length=4096)
    run = RunInfo(model="bench/olmo2-7b-random", checkpoint="main", compute_dtype=str(next(model.parameters()).dtype),
                  chat_template_sha256="bench")
    t0 = time.perf_counter()
    summary = run_capture(model, tok, tdir, out_dir, settings, run, progress=False, log=lambda m: None)
    wall = time.perf_counter() - t0
    log(f"{label}: {summary['input_tokens']} tokens run in {wall:.2f}s")
    acts = {}
    for role in ROLES:
        meta = json.loads((out_dir / f"{role}_metadata.json").read_text())
        data = torch.load(out_dir / f"{role}_activations.pt", weights_only=True)
        for row, s in enumerate(meta["samples"]):
            key = (role, s["system_prompt_idx"], s["question_idx"], s["rollout_idx"])
            acts[key] = torch.stack([data[layer][row] for layer in layers])
    return acts, summary, wall


def max_rel_diff(ref: dict, got: dict, ref_layers: list[int], got_layers: list[int]) -> float:
    worst = 0.0
    for key, a in ref.items():
        b = got[key]
        for rl, gl in zip(ref_layers, got_layers):
            x, y = a[rl], b[gl]
            worst = max(worst, float((x - y).norm() / x.norm()))
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--num-convs", type=int, default=2000)
    ap.add_argument("--max-batch-tokens", type=int, default=16384)
    ap.add_argument("--extra-budgets", type=int, nargs="*", default=[], help="also time the middle layer with these")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile'd runs (the CLI's CUDA default)")
    ap.add_argument("--fp32-check", type=int, default=0,
                    help="also run the first N conversations through the model in float32 (the paper's code path, "
                         "TF32 off) and report each bf16 approach's relative error against it")
    ap.add_argument("--no-eager-all", action="store_true", help="skip the eager all-layers run")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="tiny model and short texts (CPU smoke test)")
    ap.add_argument("--time-limit", type=float, default=480, help="skip optional variants past this many seconds")
    a = ap.parse_args()
    t_start = time.perf_counter()
    device = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="capture-bench-"))
    res: dict = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "command": " ".join([Path(sys.executable).name] + sys.argv), "torch": torch.__version__,
                 "python": platform.python_version()}
    import transformers

    res["transformers"] = transformers.__version__
    res["gpu"] = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    log(f"device {res['gpu']}, torch {torch.__version__}, transformers {transformers.__version__}")

    n_mm = 8192 if device.type == "cuda" and not a.small else 1024
    res["matmul_flops"] = matmul_rate(device, n_mm)
    log(f"bf16 matmul {n_mm}^3: {res['matmul_flops'] / 1e12:.1f} TFLOP/s")

    tok = build_tokenizer(OLMO2_CHAT_TEMPLATE)
    tdir = work / "transcripts"
    res["data"] = make_transcripts(tok, tdir, a.num_convs, seed=0, small=a.small)
    records = read_all(tdir)
    texts = [conversation_text(tok, r["system_prompt"], r["question"], r["response"]) for _, r in records]
    spans = encode_conversations(tok, texts)
    p_len = [s.span_start for s in spans]
    r_len = [s.span_length for s in spans]
    conv_tokens = sum(s.full_length for s in spans)
    res["data"].update(conversations=len(records), conversation_tokens=conv_tokens,
                       prompt_tokens={"min": min(p_len), "mean": sum(p_len) / len(p_len), "max": max(p_len)},
                       response_tokens={"min": min(r_len), "mean": sum(r_len) / len(r_len), "max": max(r_len)})
    log(f"{len(records)} conversations, {conv_tokens} tokens; prompt {res['data']['prompt_tokens']}, "
        f"response {res['data']['response_tokens']}")

    t0 = time.perf_counter()
    model = build_model(device, a.small)
    sync(device)
    n_layers = model.config.num_hidden_layers
    mid = n_layers // 2
    p_block = block_params(model)
    p_head = model.lm_head.weight.numel()
    res["model"] = {"layers": n_layers, "hidden": model.config.hidden_size, "block_params": p_block,
                    "lm_head_params": p_head, "build_seconds": time.perf_counter() - t0}
    log(f"model built in {res['model']['build_seconds']:.1f}s: {n_layers} blocks of {p_block / 1e6:.1f}M params")

    def peak_reset():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)

    def peak():
        return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0

    rate = res["matmul_flops"]

    # warm-up (kernel selection, cuBLAS handles, allocator) for both approaches
    warm = work / "warm"
    make_transcripts(tok, warm, 64, seed=1, small=a.small)
    paper_approach(model, tok, read_all(warm)[:32], device)
    ours(model, tok, warm, work / "warm_out", [mid], a.max_batch_tokens, "warm-up")
    ours(model, tok, warm, work / "warm_out", list(range(n_layers)), a.max_batch_tokens, "warm-up all")

    # (a) the paper's approach
    peak_reset()
    t0 = time.perf_counter()
    ref, real_a, padded_a = paper_approach(model, tok, records, device)
    sync(device)
    wall_a = time.perf_counter() - t0
    flops_a = 2 * (n_layers * p_block + p_head) * real_a
    res["paper"] = {"seconds": wall_a, "tokens_per_s": conv_tokens / wall_a, "real_tokens": real_a,
                    "padded_tokens": padded_a, "padding": 1 - real_a / padded_a,
                    "fraction_of_limit": flops_a / wall_a / rate, "peak_gib": peak()}
    log(f"(a) paper: {wall_a:.2f}s, {conv_tokens / wall_a:,.0f} tok/s, padding {res['paper']['padding']:.1%}")

    def run_ours(name, layers, budget):
        peak_reset()
        acts, summary, wall = ours(model, tok, tdir, work / name, layers, budget, name)
        run_tokens = summary["input_tokens"]
        flops = 2 * (max(layers) + 1) * p_block * run_tokens
        entry = {"seconds": wall, "tokens_per_s": conv_tokens / wall, "run_tokens": run_tokens,
                 "padded_tokens": summary["padded_tokens"], "padding": 1 - run_tokens / summary["padded_tokens"],
                 "fraction_of_limit": flops / wall / rate, "peak_gib": peak(), "max_batch_tokens": budget,
                 "speedup_vs_paper": wall_a / wall,
                 "gpu_seconds": sum(r["seconds"] for r in summary["roles"])}
        res[name] = entry
        log(f"{name}: {wall:.2f}s, {entry['tokens_per_s']:,.0f} tok/s, {entry['speedup_vs_paper']:.2f}x paper, "
            f"{entry['fraction_of_limit']:.1%} of bf16 limit, peak {entry['peak_gib']:.1f} GiB")
        return acts

    b_eager = run_ours("ours_middle_eager", [mid], a.max_batch_tokens)
    res["ours_middle_eager"]["max_rel_diff_vs_paper"] = max_rel_diff(ref, b_eager, [mid], [0])
    all_layers = list(range(n_layers))
    if not a.no_eager_all:
        c_eager = run_ours("ours_all_eager", all_layers, a.max_batch_tokens)
        res["ours_all_eager"]["max_rel_diff_vs_paper"] = max_rel_diff(ref, c_eager, all_layers[:-1], all_layers[:-1])
        del c_eager
    if not a.no_compile:
        # the CLI default on CUDA: torch.compile'd blocks; the compile is paid once per process
        compile_blocks(model)
        t0 = time.perf_counter()
        ours(model, tok, warm, work / "warm_out", [mid], a.max_batch_tokens, "compile warm-up")
        ours(model, tok, warm, work / "warm_out", all_layers, a.max_batch_tokens, "compile warm-up all")
        res["compile_warmup_seconds"] = time.perf_counter() - t0
        b = run_ours("ours_middle", [mid], a.max_batch_tokens)
        res["ours_middle"]["max_rel_diff_vs_paper"] = max_rel_diff(ref, b, [mid], [0])
        res["ours_middle"]["max_rel_diff_vs_eager"] = max_rel_diff(b_eager, b, [0], [0])
        run_ours("ours_middle_repeat", [mid], a.max_batch_tokens)
        c = run_ours("ours_all", all_layers, a.max_batch_tokens)
        res["ours_all"]["max_rel_diff_vs_paper"] = max_rel_diff(ref, c, all_layers[:-1], all_layers[:-1])
        res["ours_all"]["max_rel_diff_middle_vs_ours_middle"] = max_rel_diff(c, b, [mid], [0])
        for budget in a.extra_budgets:
            if time.perf_counter() - t_start > a.time_limit:
                log(f"skipping budget {budget}: past the time limit")
                continue
            run_ours(f"ours_middle_budget_{budget}", [mid], budget)

    if a.fp32_check:
        uncompile_blocks(model)
        model.float()
        subset = records[: a.fp32_check]
        truth, _, _ = paper_approach(model, tok, subset, device)
        keys = list(truth)
        mids = [mid]
        check = {"conversations": len(keys), "layer": mid}
        for name, got in (("paper_bf16", ref), ("ours_eager_bf16", b_eager)) + ((("ours_compiled_bf16", b),) if not a.no_compile else ()):
            gl = [mid] if name == "paper_bf16" else [0]
            check[name] = max_rel_diff({k: truth[k] for k in keys}, got, mids, gl)
        res["fp32_check"] = check
        log(f"fp32 check (max ||x - fp32|| / ||fp32|| over {len(keys)} conversations, layer {mid}): {check}")

    res["total_seconds"] = time.perf_counter() - t_start
    (out / "capture_bench.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(work, ignore_errors=True)

    rows = [("(a) paper: 16/batch, file order, all layers + LM head", res["paper"])]
    rows += [(f"({k}) {k}", res[k]) for k in res if k.startswith("ours_") and "seconds" in res[k]]
    print(f"\ncapture benchmark, {res['gpu']}, {res['date']}; {len(records)} conversations, {conv_tokens} tokens; "
          f"bf16 matmul {rate / 1e12:.0f} TFLOP/s")
    print(f"{'approach':58} {'s':>7} {'tok/s':>9} {'x paper':>7} {'%limit':>6} {'pad%':>5} {'peakGiB':>7} {'maxrel':>8}")
    for name, r in rows:
        print(f"{name[:58]:58} {r['seconds']:7.2f} {r['tokens_per_s']:9,.0f} {r.get('speedup_vs_paper', 1.0):7.2f} "
              f"{100 * r['fraction_of_limit']:6.1f} {100 * r['padding']:5.1f} {r['peak_gib']:7.1f} "
              f"{r.get('max_rel_diff_vs_paper', float('nan')):8.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
