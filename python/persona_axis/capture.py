"""Activation capture: run each transcript's conversation through a checkpoint and keep, per role,
the residual stream of the requested decoder blocks aggregated over the response's own tokens.

Pipeline (one model load per checkpoint, all roles streamed through it)::

    role k+1: read + verify records, rebuild texts, tokenize, locate spans   (prefetch thread)
    role k:   token-budget batches (sorted by length, right padding) -> truncated forward
              (embeddings + blocks 0..max(layers) only) -> per requested block, aggregate on the device
              in float32 (masked sum / last token / gathered tokens) -> pinned host copy     (main thread)
    role k-1: torch.save + metadata, atomically                                             (writer thread)

Right padding with NO attention mask is exact: a causal model's real tokens never attend to later
(pad) positions, and positions are 0..len-1 for every row; so sdpa runs its causal (flash) kernel.

Modules: capture_verify (prompts vs role data), capture_prepare (records -> tokens + spans), capture_device
(batches -> aggregated activations), capture_format (the files: writer and reader). Output per role
(capture_format): ``<role>_activations.pt`` = ``{layer: float tensor}`` and
``<role>_metadata.json`` (written last: its presence marks the role complete; a rerun skips it).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from . import model_loading
from .capture_device import AGGREGATIONS, ActivationCapturer, RoleResult
from .capture_format import (
    DTYPES,
    FORMAT,
    CaptureWriter,
    clean_stale_temps,
    metadata_path,
    role_is_complete,
)
from .capture_prepare import PreparedRole, prepare_role, resolve_roles, sha256_file
from .capture_verify import PromptVerifier
from .errors import CaptureError, InputError
from .model_blocks import compile_blocks, num_hidden_layers
from .prompts import ensure_chat_template, load_chat_template


# --- settings ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaptureSettings:
    layers: tuple[int, ...]
    aggregation: str = "mean"
    storage_dtype: str = "float32"
    max_batch_tokens: int = 16384
    max_length: int | None = None


@dataclass
class RunInfo:
    """What goes into every role's metadata besides the role's own numbers."""

    model: str
    checkpoint: str
    compute_dtype: str
    chat_template_sha256: str
    chat_template_from: str = ""
    extra: dict = field(default_factory=dict)


def build_metadata(prep: PreparedRole, result: RoleResult, settings: CaptureSettings, layers: list[int],
                   run: RunInfo, hidden: int, n_layers: int, block_path: str) -> dict:
    meta = {
        "format": FORMAT,
        "role": prep.role,
        "model": run.model,
        "checkpoint": run.checkpoint,
        "layers": list(layers),
        "aggregation": settings.aggregation,
        "dtype": settings.storage_dtype,
        "compute_dtype": run.compute_dtype,
        "max_length": settings.max_length,
        "hidden_size": hidden,
        "num_hidden_layers": n_layers,
        "block_path": block_path,
        "samples": [{"system_prompt_idx": s, "question_idx": q, "rollout_idx": r} for s, q, r in prep.keys],
        "num_samples": len(prep.keys),
        "num_tokens": [c.span_length for c in prep.convs],
        "input_tokens": [len(c.input_ids) for c in prep.convs],
        "total_response_tokens": sum(c.span_length for c in prep.convs),
        "total_input_tokens": prep.input_tokens,
        "merged_boundary_tokens": {"start": sum(c.merged_start for c in prep.convs),
                                   "end": sum(c.merged_end for c in prep.convs)},
        "truncated": sum(c.truncated for c in prep.convs),
        "rewritten_by_template": prep.rewritten_by_template,
        "skipped": prep.skipped,
        "num_skipped": len(prep.skipped),
        "transcript_file": prep.transcript_path.name,
        "transcript_sha256": prep.transcript_sha256,
        "chat_template_sha256": run.chat_template_sha256,
        "chat_template_from": run.chat_template_from,
    }
    if result.token_offsets is not None:
        meta["token_offsets"] = result.token_offsets
    meta.update(run.extra)
    return meta


def run_capture(model: torch.nn.Module, tokenizer: Any, transcript_dir: str | os.PathLike, output_dir: str | os.PathLike,
                settings: CaptureSettings, run: RunInfo, *, roles: Sequence[str] | None = None,
                verifier: PromptVerifier | None = None, progress: bool = True, log: Callable[[str], None] | None = None,
                ) -> dict:
    """Capture every role (skipping complete ones); returns a summary with timings and token counts."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    transcript_dir, out_dir = Path(transcript_dir), Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out_dir)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    capturer = ActivationCapturer(model, settings.layers, settings.aggregation,
                                  max_batch_tokens=settings.max_batch_tokens, pad_token_id=pad)
    layers = capturer.layers
    n_layers = num_hidden_layers(model)
    todo: list[tuple[str, Path]] = []
    skipped_roles: list[str] = []
    for role, path in resolve_roles(transcript_dir, roles):
        identity = {"format": FORMAT, "model": run.model, "checkpoint": run.checkpoint, "layers": layers,
                    "aggregation": settings.aggregation, "dtype": settings.storage_dtype,
                    "compute_dtype": run.compute_dtype, "max_length": settings.max_length,
                    "transcript_sha256": sha256_file(path), "chat_template_sha256": run.chat_template_sha256}
        if role_is_complete(out_dir, role, identity):
            skipped_roles.append(role)
        else:
            todo.append((role, path))
    if skipped_roles:
        log(f"capture: {len(skipped_roles)} role(s) already complete in {out_dir}, skipped")
    summary = {"roles": [], "skipped_roles": skipped_roles, "layers": layers, "input_tokens": 0,
               "padded_tokens": 0, "seconds": 0.0}
    if not todo:
        return summary
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="tok", unit_scale=True, desc="capture", dynamic_ncols=True, file=sys.stderr)
    writer = CaptureWriter(out_dir, settings.storage_dtype)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture-prepare")
    t_start = time.perf_counter()
    try:
        def submit(i: int):
            role, path = todo[i]
            return pool.submit(prepare_role, tokenizer, role, path, max_length=settings.max_length, verifier=verifier)

        future = submit(0)
        for i in range(len(todo)):
            prep = future.result()
            if i + 1 < len(todo):
                future = submit(i + 1)
            if bar is not None:
                bar.total += prep.input_tokens
                bar.set_postfix_str(prep.role)
                bar.refresh()
            # an old metadata file would mark stale activations as complete: remove it before writing
            old_meta = metadata_path(out_dir, prep.role)
            if old_meta.exists():
                old_meta.unlink()
            result = capturer.capture(prep, on_progress=bar.update if bar is not None else None)
            meta = build_metadata(prep, result, settings, layers, run, capturer.hidden, n_layers,
                                  capturer.forward.block_path)
            writer.put(prep.role, result.tensors, meta)
            rate = prep.input_tokens / result.seconds if result.seconds > 0 else 0.0
            summary["roles"].append({"role": prep.role, "samples": len(prep.keys), "skipped": len(prep.skipped),
                                     "input_tokens": prep.input_tokens, "padded_tokens": result.padded_tokens,
                                     "batches": result.batches, "seconds": result.seconds,
                                     "prepare_seconds": prep.prepare_seconds})
            summary["input_tokens"] += prep.input_tokens
            summary["padded_tokens"] += result.padded_tokens
            if bar is None:
                log(f"capture: {prep.role}: {len(prep.keys)} samples ({len(prep.skipped)} skipped), "
                    f"{prep.input_tokens} tokens in {result.seconds:.2f}s ({rate:,.0f} tok/s)")
        writer.close()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    pool.shutdown(wait=True)
    summary["seconds"] = time.perf_counter() - t_start
    return summary


# --- loading -----------------------------------------------------------------------------------------

def load_tokenizer(model_name: str, checkpoint: str | None, chat_template_from: str | None = None):
    tok = model_loading.load_tokenizer(model_name, checkpoint)
    template, source = None, model_name
    try:
        if chat_template_from:
            template, source = load_chat_template(chat_template_from), chat_template_from
        ensure_chat_template(tok, template, source)
    except ValueError as e:
        raise CaptureError(str(e)) from None
    return tok


def load_model(model_name: str, checkpoint: str | None, dtype: str, device: str, attn_implementation: str = "sdpa",
               random_init_seed: int | None = None):
    kw: dict[str, Any] = {"dtype": DTYPES[dtype], "attn_implementation": attn_implementation}
    dev = torch.device(device)
    if random_init_seed is not None:
        from persona_axis.random_init import random_init_model
        model = random_init_model(model_name, None if model_loading.is_local_model(model_name) else checkpoint, random_init_seed, DTYPES[dtype],
                                  attn_implementation).to(dev)
    elif dev.type != "cpu":
        try:
            model = model_loading.load_causal_lm(model_name, checkpoint, device_map={"": dev}, **kw)
        except (ImportError, ValueError):
            model = model_loading.load_causal_lm(model_name, checkpoint, **kw).to(dev)
    else:
        model = model_loading.load_causal_lm(model_name, checkpoint, **kw)
    model.eval()
    model.requires_grad_(False)
    return model


def parse_layers(values: Sequence[str] | None) -> list[int] | None:
    if not values:
        return None
    out = []
    for v in values:
        for part in str(v).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(int(part))
            except ValueError:
                raise CaptureError(f"--layers: {part!r} is not an integer layer index") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="persona-axis-capture",
        description="Capture response-token activations (residual stream after decoder blocks) per role.")
    p.add_argument("--model-name", required=True, help="Hugging Face model id or local model directory")
    p.add_argument("--revision", default="", help="git revision of --model-name (not used for local dirs; "
                                                    "recorded in the metadata either way)")
    p.add_argument("--transcript-dir", required=True, help="directory of <role>.jsonl transcripts")
    p.add_argument("--roles-dir", default=None,
                   help="role files the transcripts were generated from, to cross-check system prompts against "
                        "(without it, prompts are not checked, and capture says so)")
    p.add_argument("--questions", default=None, help="shared questions JSONL to cross-check questions against")
    p.add_argument("--model-display-name", default=None,
                   help="the {model_name} used at generation (for the default role's check)")
    p.add_argument("--no-verify-prompts", action="store_true",
                   help="warn instead of failing when a record's prompt differs from the role data")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--layers", nargs="+", default=None,
                   help="decoder block indices (space or comma separated; negative counts from the end); "
                        "default the middle layer, num_layers // 2")
    p.add_argument("--all-layers", action="store_true", help="capture every decoder block")
    p.add_argument("--aggregation", choices=AGGREGATIONS, default="mean")
    p.add_argument("--roles", nargs="+", default=None, help="only these roles (default: every transcript file)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16", help="model weights/compute dtype")
    p.add_argument("--storage-dtype", choices=sorted(DTYPES), default="float32", help="dtype of the saved tensors")
    p.add_argument("--max-batch-tokens", type=int, default=16384,
                   help="padded tokens per forward batch (sizes GPU memory); default 16384")
    p.add_argument("--max-length", type=int, default=None,
                   help="cut conversations to this many tokens (default: the model's max_position_embeddings)")
    p.add_argument("--device", default=None, help="torch device (default cuda if available, else cpu)")
    p.add_argument("--chat-template-from", default=None,
                   help="model id/dir (or a template file) whose chat template rebuilds the prompts: for base "
                        "checkpoints without one, give the checkpoint that generated the transcripts")
    p.add_argument("--compile", dest="compile", action="store_true", default=None,
                   help="torch.compile each decoder block (fuses norms and elementwise ops: ~1.5x on an H200; "
                        "about 10 s of compiling first). Default: on for CUDA devices, off otherwise")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="run the blocks eagerly")
    p.add_argument("--no-progress", action="store_true", help="no progress bar; one log line per role")
    p.add_argument("--random-init-seed", type=int, default=None,
                   help="the random-init control: --model-name's config with weights initialised from this seed "
                        "(no weights downloaded)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if a.all_layers and a.layers:
            raise CaptureError("give either --layers or --all-layers, not both")
        if a.max_batch_tokens <= 0:
            raise CaptureError(f"--max-batch-tokens must be positive, got {a.max_batch_tokens}")
        role_dir = str(Path(a.roles_dir).resolve()) if a.roles_dir else None
        verifier = PromptVerifier(role_dir, a.questions, a.model_display_name, strict=not a.no_verify_prompts)
        if role_dir:
            also = f", questions against {a.questions}" if a.questions else ""
            print(f"capture: system prompts checked against {role_dir}{also}", file=sys.stderr)
        else:
            print("capture: prompts NOT checked against role data (no --roles-dir)", file=sys.stderr)
        tokenizer = load_tokenizer(a.model_name, a.revision or None, a.chat_template_from)
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 aggregation must stay float32
        model = load_model(a.model_name, a.revision or None, a.dtype, device, random_init_seed=a.random_init_seed)
        n = num_hidden_layers(model)
        layers = list(range(n)) if a.all_layers else (parse_layers(a.layers) or [n // 2])
        max_length = a.max_length
        if max_length is None:
            mpe = getattr(model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config,
                          "max_position_embeddings", None)
            max_length = int(mpe) if isinstance(mpe, int) and mpe > 0 else None
        if a.compile or (a.compile is None and torch.device(device).type == "cuda"):
            compile_blocks(model)
        template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else json.dumps(
            tokenizer.chat_template, sort_keys=True)
        if a.random_init_seed is not None:
            from persona_axis.random_init import checkpoint_label
            a.revision = checkpoint_label(a.revision, a.random_init_seed)
        run = RunInfo(model=a.model_name, checkpoint=a.revision, compute_dtype=a.dtype,
                      chat_template_sha256=hashlib.sha256(template.encode("utf-8")).hexdigest(),
                      chat_template_from=a.chat_template_from or "",
                      extra={"prompts_checked_against": a.roles_dir})
        settings = CaptureSettings(layers=tuple(layers), aggregation=a.aggregation, storage_dtype=a.storage_dtype,
                                   max_batch_tokens=a.max_batch_tokens, max_length=max_length)
        summary = run_capture(model, tokenizer, a.transcript_dir, a.output_dir, settings, run, roles=a.roles,
                              verifier=verifier, progress=not a.no_progress)
    except (InputError, model_loading.ModelNotCachedError) as e:
        print(f"capture: error: {e}", file=sys.stderr)
        return 2
    secs = summary["seconds"]
    tok = summary["input_tokens"]
    pad = summary["padded_tokens"]
    print(f"capture: {len(summary['roles'])} role(s) captured, {len(summary['skipped_roles'])} already complete; "
          f"{tok} tokens in {secs:.1f}s ({(tok / secs if secs else 0):,.0f} tok/s), padding "
          f"{(1 - tok / pad) * 100 if pad else 0:.1f}%", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
