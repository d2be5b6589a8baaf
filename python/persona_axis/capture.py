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

Output per role (see README.md, "Activation capture"): ``<role>_activations.pt`` = ``{layer: float tensor}`` and
``<role>_metadata.json`` (written last: its presence marks the role complete; a rerun skips it).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import model_loading
from . import transcripts as transcripts_mod
from .batching import plan_batches
from .model_blocks import ModelStructureError, TruncatedForward, compile_blocks, hidden_size, num_hidden_layers
from .prompts import ensure_chat_template
from .roles import RoleDataError, fill_system_prompt, load_questions, load_role
from .spans import ConversationText, EncodedConversation, SpanError, conversation_text, encode_conversations

FORMAT = "persona-axis-capture/1"
AGGREGATIONS = ("mean", "last", "none")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
ACTIVATIONS_SUFFIX = "_activations.pt"
METADATA_SUFFIX = "_metadata.json"
_TMP_MARK = ".tmp-capture-"
#: metadata keys that must match for a rerun to reuse a finished role
IDENTITY_KEYS = ("format", "model", "checkpoint", "layers", "aggregation", "dtype", "compute_dtype", "max_length",
                 "transcript_sha256", "chat_template_sha256")


class CaptureError(ValueError):
    """Bad input for capture; the message names the file (and record or flag) and the fix."""


Key = tuple[int, int, int]


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


# --- preparing a role: records -> texts -> tokens + spans --------------------------------------------

@dataclass
class PreparedRole:
    role: str
    transcript_path: Path
    transcript_sha256: str
    keys: list[Key]  # kept samples, row order (sorted by key)
    convs: list[EncodedConversation]  # same order
    skipped: list[dict]
    rewritten_by_template: int
    prepare_seconds: float

    @property
    def input_tokens(self) -> int:
        return sum(len(c.input_ids) for c in self.convs)


class PromptVerifier:
    """Cross-checks each record's system prompt (and question, with a questions file) against the role
    data. Mismatch: CaptureError, or (``strict=False``) a warning and the record's own texts are used."""

    def __init__(self, role_data_dir: str | None, questions_file: str | None, display_name: str | None,
                 strict: bool = True):
        self.dir = Path(role_data_dir) if role_data_dir else None
        if self.dir is not None and not self.dir.is_dir():
            raise CaptureError(f"{self.dir}: --role-data-dir not found (give the roles directory the transcripts "
                               "were generated from, or leave the flag out to skip the check)")
        self.questions = [q.text for q in load_questions(questions_file)] if questions_file else None
        self.display_name = display_name
        self.strict = strict
        self.warnings = 0

    def _fail(self, msg: str) -> None:
        if self.strict:
            raise CaptureError(msg + "; fix the transcripts or pass --no-verify-prompts to capture them as recorded")
        self.warnings += 1
        if self.warnings <= 5:
            print(f"warning: {msg}", file=sys.stderr)

    def check(self, role: str, path: Path, records: list[dict]) -> None:
        if self.dir is None:
            return
        role_file = self.dir / f"{role}.json"
        if not role_file.exists():
            print(f"capture: {role}: no {role_file.name} in {self.dir}: its prompts are not checked", file=sys.stderr)
            return
        try:
            rd = load_role(role_file)
        except RoleDataError as e:
            raise CaptureError(str(e)) from None
        for rec in records:
            key = transcripts_mod.record_key(rec)
            spi, qi = key[0], key[1]
            where = f"{path}: record {key}"
            if not 0 <= spi < len(rd.instructions):
                self._fail(f"{where}: system_prompt_idx {spi} out of range for {role_file} ({len(rd.instructions)} prompts)")
                continue
            template = rd.instructions[spi]
            sp = rec["system_prompt"]
            if self.display_name is not None:
                ok = sp == fill_system_prompt(template, self.display_name)
            elif "{model_name}" in template:
                head, _, tail = template.partition("{model_name}")
                ok = sp.startswith(head) and sp.endswith(tail.replace("{model_name}", "")) and len(sp) >= len(head) + len(tail)
            else:
                ok = sp == template
            if not ok:
                self._fail(f"{where}: system_prompt differs from {role_file} instruction[{spi}]")
            if self.questions is not None:
                if not 0 <= qi < len(self.questions) or rec["question"] != self.questions[qi]:
                    self._fail(f"{where}: question differs from the questions file's question {qi}")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def prepare_role(tokenizer: Any, role: str, path: Path, *, max_length: int | None = None,
                 verifier: PromptVerifier | None = None) -> PreparedRole:
    t0 = time.perf_counter()
    sha = _sha256_file(path)
    try:
        records = transcripts_mod.read_finished_records(path)
    except ValueError as e:
        raise CaptureError(str(e)) from None
    by_key: dict[Key, dict] = {}
    for rec in records:
        key = transcripts_mod.record_key(rec)
        for k in ("system_prompt", "question"):
            if not isinstance(rec.get(k), str):
                raise CaptureError(f"{path}: record {key} lacks a string {k!r}; capture rebuilds the conversation from "
                                   "the record (regenerate the transcripts with the current generator)")
        if not isinstance(rec["response"], str):
            raise CaptureError(f"{path}: record {key}: 'response' must be a string")
        if key in by_key:
            raise CaptureError(f"{path}: duplicate record {key} (system_prompt_idx, question_idx, rollout_idx); "
                               "remove the duplicate line")
        by_key[key] = rec
    keys = sorted(by_key)
    if verifier is not None:
        verifier.check(role, path, [by_key[k] for k in keys])
    skipped: list[dict] = []
    texts: list[ConversationText] = []
    text_keys: list[Key] = []
    for key in keys:
        rec = by_key[key]
        if rec["response"] == "":
            skipped.append(_skip(key, "empty_response"))
            continue
        try:
            texts.append(conversation_text(tokenizer, rec["system_prompt"], rec["question"], rec["response"],
                                           where=f"{path}: record {key}"))
        except SpanError as e:
            raise CaptureError(str(e)) from None
        text_keys.append(key)
    try:
        encoded = encode_conversations(tokenizer, texts, max_length=max_length,
                                       where=[f"{path}: record {k}" for k in text_keys])
    except SpanError as e:
        raise CaptureError(str(e)) from None
    kept_keys, convs = [], []
    for key, enc in zip(text_keys, encoded):
        if enc is None:
            skipped.append(_skip(key, "no_response_tokens"))
            continue
        kept_keys.append(key)
        convs.append(enc)
    skipped.sort(key=lambda s: (s["system_prompt_idx"], s["question_idx"], s["rollout_idx"]))
    return PreparedRole(role, path, sha, kept_keys, convs, skipped, sum(t.rewritten_by_template for t in texts),
                        time.perf_counter() - t0)


def _skip(key: Key, reason: str) -> dict:
    return {"system_prompt_idx": key[0], "question_idx": key[1], "rollout_idx": key[2], "reason": reason}


# --- the device side ----------------------------------------------------------------------------------

@dataclass
class RoleResult:
    tensors: dict[int, torch.Tensor]  # float32 host tensors, rows in PreparedRole order
    token_offsets: list[int] | None  # aggregation 'none': rows of sample i = offsets[i]:offsets[i+1]
    padded_tokens: int
    batches: int
    seconds: float


class ActivationCapturer:
    """Runs prepared roles through one loaded model; returns host float32 tensors per layer."""

    def __init__(self, model: torch.nn.Module, layers: Sequence[int], aggregation: str = "mean", *,
                 max_batch_tokens: int = 16384, pad_token_id: int = 0):
        if aggregation not in AGGREGATIONS:
            raise CaptureError(f"--aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
        self.model = model
        self.forward = TruncatedForward(model, layers)
        self.layers = self.forward.layers
        self.aggregation = aggregation
        self.max_batch_tokens = int(max_batch_tokens)
        self.pad_token_id = int(pad_token_id)
        self.device = next(model.parameters()).device
        self.hidden = hidden_size(model)
        self.cuda = self.device.type == "cuda"

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(array)
        if self.cuda:
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def _run_batch(self, convs: Sequence[EncodedConversation]) -> torch.Tensor:
        """(rows, n_layers, hidden) float32 on the device: rows = conversations (mean/last) or span tokens (none)."""
        b = len(convs)
        s = max(len(c.input_ids) for c in convs)
        ids = np.full((b, s), self.pad_token_id, dtype=np.int64)
        for r, c in enumerate(convs):
            ids[r, : len(c.input_ids)] = c.input_ids
        agg = self.aggregation
        if agg == "mean":
            mask = np.zeros((b, 1, s), dtype=np.float32)
            for r, c in enumerate(convs):
                mask[r, 0, c.span_start:c.span_end] = 1.0
            counts = np.array([[c.span_length] for c in convs], dtype=np.float32)
            mask_t, counts_t = self._to_device(mask), self._to_device(counts)
        elif agg == "last":
            last_t = self._to_device(np.array([c.span_end - 1 for c in convs], dtype=np.int64))
            rows_t = self._to_device(np.arange(b, dtype=np.int64))
        else:
            flat = np.concatenate([np.arange(r * s + c.span_start, r * s + c.span_end, dtype=np.int64)
                                   for r, c in enumerate(convs)])
            flat_t = self._to_device(flat)
        ids_t = self._to_device(ids)
        out: dict[int, torch.Tensor] = {}

        def on_layer(index: int, h: torch.Tensor) -> None:
            if agg == "mean":
                # float32 masked sum over the span (a batched mat-vec; deterministic), then / count
                out[index] = torch.bmm(mask_t, h.float()).squeeze(1) / counts_t
            elif agg == "last":
                out[index] = h[rows_t, last_t].float()
            else:
                out[index] = h.reshape(-1, h.shape[-1]).index_select(0, flat_t).float()

        self.forward(ids_t, on_layer)
        return torch.stack([out[i] for i in self.layers], dim=1)

    def capture(self, prep: PreparedRole, on_progress: Callable[[int], None] | None = None) -> RoleResult:
        t0 = time.perf_counter()
        n = len(prep.convs)
        nl = len(self.layers)
        lengths = [len(c.input_ids) for c in prep.convs]
        batches = plan_batches(lengths, self.max_batch_tokens) if n else []
        if self.aggregation == "none":
            counts = [c.span_length for c in prep.convs]
            offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).tolist()
            total_rows = offsets[-1]
        else:
            offsets = None
            total_rows = n
        bufs = {layer: torch.empty((total_rows, self.hidden), dtype=torch.float32) for layer in self.layers}
        pending: tuple | None = None

        def drain(p: tuple) -> None:
            staged, event, batch = p
            if event is not None:
                event.synchronize()
            if offsets is None:
                rows = torch.tensor(batch.indices, dtype=torch.long)
                for j, layer in enumerate(self.layers):
                    bufs[layer].index_copy_(0, rows, staged[:, j])
            else:
                pos = 0
                for i in batch.indices:
                    k = offsets[i + 1] - offsets[i]
                    for j, layer in enumerate(self.layers):
                        bufs[layer][offsets[i]:offsets[i + 1]].copy_(staged[pos:pos + k, j])
                    pos += k
            if on_progress is not None:
                on_progress(sum(lengths[i] for i in batch.indices))

        with torch.inference_mode():
            for batch in batches:
                res = self._run_batch([prep.convs[i] for i in batch.indices])
                if self.cuda:
                    staged = torch.empty(res.shape, dtype=res.dtype, pin_memory=True)
                    staged.copy_(res, non_blocking=True)
                    event = torch.cuda.Event()
                    event.record()
                else:
                    staged, event = res, None
                del res
                if pending is not None:
                    drain(pending)
                pending = (staged, event, batch)
            if pending is not None:
                drain(pending)
        assert all(t.shape == (total_rows, self.hidden) for t in bufs.values()) and nl == len(bufs)
        return RoleResult(bufs, offsets, sum(b.padded_tokens for b in batches), len(batches),
                          time.perf_counter() - t0)


# --- writing -----------------------------------------------------------------------------------------

def activations_path(out_dir: Path, role: str) -> Path:
    return out_dir / f"{role}{ACTIVATIONS_SUFFIX}"


def metadata_path(out_dir: Path, role: str) -> Path:
    return out_dir / f"{role}{METADATA_SUFFIX}"


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def write_role(out_dir: Path, role: str, tensors: dict[int, torch.Tensor], metadata: dict, storage_dtype: str) -> None:
    """Activations first, then metadata (the completion marker); each via temp file + os.replace."""
    dtype = DTYPES[storage_dtype]
    data = {int(k): v.to(dtype).contiguous() for k, v in sorted(tensors.items())}
    _atomic_write(activations_path(out_dir, role), lambda f: torch.save(data, f))
    text = json.dumps(metadata, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    _atomic_write(metadata_path(out_dir, role), lambda f: f.write(text.encode("utf-8")))


class RoleWriter:
    """A writer thread with a bounded queue (at most ``depth`` finished roles wait in host memory)."""

    def __init__(self, out_dir: Path, storage_dtype: str, depth: int = 1):
        self.out_dir = out_dir
        self.storage_dtype = storage_dtype
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="capture-writer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is None:
                try:
                    write_role(self.out_dir, *item, self.storage_dtype)
                except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                    self.error = e

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, role: str, tensors: dict[int, torch.Tensor], metadata: dict) -> None:
        self._check()
        self.q.put((role, tensors, metadata))

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        self._check()


# --- orchestration ---------------------------------------------------------------------------------

def role_is_complete(out_dir: Path, role: str, identity: dict) -> bool:
    mp, ap = metadata_path(out_dir, role), activations_path(out_dir, role)
    if not (mp.exists() and ap.exists()):
        return False
    try:
        meta = json.loads(mp.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return all(meta.get(k) == v for k, v in identity.items())


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


def _clean_stale_temps(out_dir: Path) -> None:
    for p in out_dir.glob(f".*{_TMP_MARK}*"):
        try:
            p.unlink()
        except OSError:
            pass


def resolve_roles(transcript_dir: Path, roles: Sequence[str] | None) -> list[tuple[str, Path]]:
    if not transcript_dir.is_dir():
        raise CaptureError(f"{transcript_dir}: --transcript-dir not found (run the generate stage first)")
    available = dict(transcripts_mod.iter_role_files(transcript_dir))
    if not available:
        raise CaptureError(f"{transcript_dir}: no <role>.jsonl transcript files")
    if roles:
        missing = [r for r in roles if r not in available]
        if missing:
            raise CaptureError(f"{transcript_dir}: no transcripts for role(s) {', '.join(missing)} "
                               f"(expected {missing[0]}.jsonl); available: {', '.join(sorted(available)[:20])}")
        return [(r, available[r]) for r in sorted(set(roles))]
    return sorted(available.items())


def run_capture(model: torch.nn.Module, tokenizer: Any, transcript_dir: str | os.PathLike, output_dir: str | os.PathLike,
                settings: CaptureSettings, run: RunInfo, *, roles: Sequence[str] | None = None,
                verifier: PromptVerifier | None = None, progress: bool = True, log: Callable[[str], None] | None = None,
                ) -> dict:
    """Capture every role (skipping complete ones); returns a summary with timings and token counts."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    transcript_dir, out_dir = Path(transcript_dir), Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clean_stale_temps(out_dir)
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
                    "transcript_sha256": _sha256_file(path), "chat_template_sha256": run.chat_template_sha256}
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
    writer = RoleWriter(out_dir, settings.storage_dtype)
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
    if chat_template_from:
        p = Path(chat_template_from)
        if p.is_file():
            template = p.read_text(encoding="utf-8")
        else:
            template = model_loading.load_tokenizer(chat_template_from).chat_template
            if not template:
                raise CaptureError(f"--chat-template-from {chat_template_from}: that tokenizer has no chat template")
        source = chat_template_from
    try:
        ensure_chat_template(tok, template, source)
    except ValueError as e:
        raise CaptureError(str(e)) from None
    return tok


def load_model(model_name: str, checkpoint: str | None, dtype: str, device: str, attn_implementation: str = "sdpa"):
    kw: dict[str, Any] = {"dtype": DTYPES[dtype], "attn_implementation": attn_implementation}
    dev = torch.device(device)
    if dev.type != "cpu":
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
        prog="capture.py",
        description="Capture response-token activations (residual stream after decoder blocks) per role.")
    p.add_argument("--model-name", required=True, help="Hugging Face model id or local model directory")
    p.add_argument("--checkpoint", default="", help="git revision of --model-name (not used for local dirs; "
                                                    "recorded in the metadata either way)")
    p.add_argument("--transcript-dir", required=True, help="directory of <role>.jsonl transcripts")
    p.add_argument("--role-data-dir", default=None,
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if a.all_layers and a.layers:
            raise CaptureError("give either --layers or --all-layers, not both")
        if a.max_batch_tokens <= 0:
            raise CaptureError(f"--max-batch-tokens must be positive, got {a.max_batch_tokens}")
        role_dir = str(Path(a.role_data_dir).resolve()) if a.role_data_dir else None
        verifier = PromptVerifier(role_dir, a.questions, a.model_display_name, strict=not a.no_verify_prompts)
        if role_dir:
            also = f", questions against {a.questions}" if a.questions else ""
            print(f"capture: system prompts checked against {role_dir}{also}", file=sys.stderr)
        else:
            print("capture: prompts NOT checked against role data (no --role-data-dir)", file=sys.stderr)
        tokenizer = load_tokenizer(a.model_name, a.checkpoint or None, a.chat_template_from)
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 aggregation must stay float32
        model = load_model(a.model_name, a.checkpoint or None, a.dtype, device)
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
        run = RunInfo(model=a.model_name, checkpoint=a.checkpoint, compute_dtype=a.dtype,
                      chat_template_sha256=hashlib.sha256(template.encode("utf-8")).hexdigest(),
                      chat_template_from=a.chat_template_from or "",
                      extra={"prompts_checked_against": a.role_data_dir})
        settings = CaptureSettings(layers=tuple(layers), aggregation=a.aggregation, storage_dtype=a.storage_dtype,
                                   max_batch_tokens=a.max_batch_tokens, max_length=max_length)
        summary = run_capture(model, tokenizer, a.transcript_dir, a.output_dir, settings, run, roles=a.roles,
                              verifier=verifier, progress=not a.no_progress)
    except (CaptureError, RoleDataError, ModelStructureError, model_loading.ModelNotCachedError) as e:
        print(f"capture: error: {e}", file=sys.stderr)
        return 2
    secs = summary["seconds"]
    tok = summary["input_tokens"]
    pad = summary["padded_tokens"]
    print(f"capture: {len(summary['roles'])} role(s) captured, {len(summary['skipped_roles'])} already complete; "
          f"{tok} tokens in {secs:.1f}s ({(tok / secs if secs else 0):,.0f} tok/s), padding "
          f"{(1 - tok / pad) * 100 if pad else 0:.1f}%", file=sys.stderr)
    return 0
