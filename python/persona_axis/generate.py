"""Generate role-playing transcripts: every (role, system prompt, question, rollout) answered once.

Output: ``<out>/<role>.jsonl`` (one line per response, see ``transcripts``) and ``<out>/run.json``
(the settings; no timestamps, so a pipeline's hashes of the directory stay stable).

Reproducibility and resume:
- Each request's seed comes from ``--seed`` and the request's identity (``seeds.request_seed``).
- hf backend: all requests of the run (roles in name order, each role's requests by prompt length)
  form one queue, cut into fixed groups (``--prefill-batch`` requests for OLMo-2's continuous
  batching, ``--batch-size`` for the plain loop of other models). A group always holds the same
  requests whatever is already done (a partly done group is prefilled whole, only its missing rows
  decoded), and a row's result does not depend on its neighbours (see ``slot_engine``), so a resumed
  run, or N workers (``--gpus``, groups dealt round-robin), write exactly the lines of one
  uninterrupted run with the same batch settings, hardware, software and dtype.
- vLLM backend: all missing requests of all roles go to one ``LLM`` in chunks of ``--chunk-size``
  (vLLM schedules them); each chunk's lines are appended when it returns.
- Lines are appended and flushed per batch/chunk, so a kill loses only the responses in flight. A
  torn last line is dropped on resume. When a role is complete its file is rewritten (atomically)
  in key order, so a resumed run leaves byte-identical files to an uninterrupted one.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import roles as roles_mod
from .atomic import atomic_write
from .errors import InputError
from .generation_backends import (
    Generation,
    SamplingSettings,
    resolve_device,
    resolve_dtype,
    vllm_importable,
)
from .model_loading import ModelNotCachedError
from .prompts import ensure_chat_template, load_chat_template, prompt_token_ids, render_prompt
from .roles import Request
from .generation_workers import WorkerFailed
from .seeds import request_seed
from .transcripts import RecordAppender, dumps_record, read_records, record_key, write_records_sorted

RUN_FILE = "run.json"
FORMAT = "persona-axis-transcripts/1"
DEFAULT_MODEL = "allenai/OLMo-2-1124-7B-Instruct"
# Settings that change the text of a response: a resumed run must match them.
TEXT_SETTINGS = ("model", "checkpoint", "backend", "sampling", "seed", "dtype", "model_display_name", "questions",
                 "chat_template_from")

# Settings that change float rounding only (hf backend): a change is warned about, not refused.
BATCH_SETTINGS = ("batch_size", "kv_cache_gb", "prefill_batch", "decode_step")


class RunConfigError(InputError):
    """The output directory holds a run with other settings (or other prompts)."""


@dataclass(frozen=True)
class GenerateSettings:
    """One generation run, as the library takes it. ``parse_args`` builds it (the defaults and the
    flags' meaning are there, in one place); ``dataclasses.replace`` derives a variant."""
    model_name: str
    revision: str
    roles: list[str] | None
    roles_dir: str
    questions: str
    question_count: int | None
    num_rollouts: int
    model_display_name: str
    run_name: str | None
    output_dir: str | None
    outputs_root: str
    resume: bool
    timestamp: str | None
    overwrite: bool
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    backend: str
    device: str
    dtype: str
    batch_size: int
    kv_cache_gb: float
    prefill_batch: int
    decode_attention: str
    compile_decode: str
    gpus: int
    worker: str | None
    tensor_parallel_size: int
    chunk_size: int
    max_model_len: int | None
    no_progress: bool
    chat_template_from: str | None
    argv: list[str]  # the command line: each worker of --gpus gets the same


def parse_args(argv: list[str] | None = None) -> GenerateSettings:
    p = argparse.ArgumentParser(
        prog="persona-axis-generate",
        description="Generate role-playing transcripts (one <role>.jsonl per role) with vLLM or transformers.",
    )
    p.add_argument("--model-name", default=DEFAULT_MODEL, help="Hub id or local directory (default: %(default)s)")
    p.add_argument("--revision", default="main", help="git revision of the model on the Hub (default: main); "
                   "recorded but not used to load a local directory")
    p.add_argument("--roles", nargs="*", default=None,
                   help="roles to generate (space or comma separated; default: every file in --roles-dir)")
    p.add_argument("--roles-dir", default="data/roles/instructions", help="role files (default: %(default)s)")
    p.add_argument("--questions", default="data/questions.jsonl",
                   help="JSONL of {\"question\", \"id\"} shared by all roles, or 'role' to use each role file's "
                        "own 'questions' (default: %(default)s)")
    p.add_argument("--question-count", type=int, default=None, help="use only the first N questions")
    p.add_argument("--num-rollouts", type=int, default=1, help="responses per system prompt x question")
    p.add_argument("--model-display-name", default=None,
                   help="fills {model_name} in system prompts (default: the model id's last path component)")
    p.add_argument("--run-name", default=None, help="names the default output directory (required without --output-dir)")
    p.add_argument("--output-dir", default=None,
                   help="fixed output directory (pipeline use); existing lines in it are kept and only missing "
                        "ones generated. Default: outputs/transcripts/<run-name>_<timestamp>/<model>/<revision>/")
    p.add_argument("--outputs-root", default="outputs/transcripts", help=argparse.SUPPRESS)
    p.add_argument("--resume", action="store_true", help="continue the run of --run-name at --timestamp")
    p.add_argument("--timestamp", default=None, help="the run to resume (YYYYmmdd_HHMMSS, as in its directory name)")
    p.add_argument("--overwrite", action="store_true",
                   help="discard transcripts in the output directory made with other settings instead of failing")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--seed", type=int, default=0, help="base seed; each request's seed derives from it")
    p.add_argument("--backend", choices=["auto", "vllm", "hf"], default="auto",
                   help="auto (default): vllm when importable and a GPU is present, else hf")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="hf backend device")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="auto: bfloat16 on GPU, float32 on CPU")
    p.add_argument("--batch-size", type=int, default=16,
                   help="hf backend: rows decoded together (the static cache's slots; at most this many when "
                        "--kv-cache-gb caps them). Part of reproducibility")
    p.add_argument("--kv-cache-gb", type=float, default=0.0,
                   help="hf backend: GiB for the static KV cache; slots = what fits, at most --batch-size (0: no cap)")
    p.add_argument("--prefill-batch", type=int, default=64,
                   help="hf backend (OLMo-2): requests per prefill group (part of reproducibility)")
    p.add_argument("--decode-attention", choices=["matmul", "sdpa"], default="matmul",
                   help="hf backend: attention of the decode step; matmul is run-to-run deterministic, sdpa "
                        "~5%% faster (part of reproducibility)")
    p.add_argument("--compile-decode", choices=["auto", "on", "off"], default="auto",
                   help="hf backend: torch.compile the decode step (auto: on CUDA); compiled and eager steps "
                        "round differently (part of reproducibility)")
    p.add_argument("--gpus", type=int, default=1,
                   help="data-parallel workers, one per GPU (hf backend); 0 or 1: one process")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # "i/N": one of --gpus workers
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM: GPUs per model")
    p.add_argument("--chunk-size", type=int, default=4096,
                   help="vLLM: prompts per generate() call; lines are written after each chunk")
    p.add_argument("--max-model-len", type=int, default=None, help="vLLM: max_model_len")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--chat-template-from", default=None, metavar="MODEL_OR_FILE",
                   help="use this tokenizer's (or Jinja file's) chat template instead of the model's own: base "
                        "models have none (the pipeline's on-policy variant passes the reference checkpoint's)")
    a = p.parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)
    if a.roles is not None:
        a.roles = [r for item in a.roles for r in item.split(",") if r.strip()] or None
    if a.model_display_name is None:
        a.model_display_name = default_display_name(a.model_name)
    if not a.output_dir and not a.run_name:
        p.error("--run-name is required (or give a fixed --output-dir)")
    if a.resume and not a.output_dir and not a.timestamp:
        p.error("--resume needs --timestamp (the run directory's suffix) to find the run to continue")
    for name in ("num_rollouts", "max_tokens", "batch_size", "tensor_parallel_size", "chunk_size", "prefill_batch"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.question_count is not None and a.question_count < 1:
        p.error("--question-count must be >= 1")
    if a.kv_cache_gb < 0 or a.gpus < 0:
        p.error("--kv-cache-gb and --gpus must be >= 0")
    if a.temperature < 0 or not (0 < a.top_p <= 1):
        p.error("--temperature must be >= 0 and --top-p in (0, 1]")
    return GenerateSettings(**vars(a))


def default_display_name(model_name: str) -> str:
    return model_name.rstrip("/").split("/")[-1]


def resolve_output_dir(a: GenerateSettings) -> Path:
    if a.output_dir:
        return Path(a.output_dir)
    stamp = a.timestamp or datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
    model_part = a.model_name.strip("/").replace("/", "_")
    out = Path(a.outputs_root) / f"{a.run_name}_{stamp}" / model_part / a.revision.replace("/", "_")
    if a.resume and not out.is_dir():
        raise RunConfigError(f"--resume: run directory {out} does not exist (check --run-name, --timestamp, --model-name, --revision)")
    return out


def choose_backend(requested: str | None) -> str:
    if requested and requested != "auto":
        if requested == "vllm" and not vllm_importable():
            raise SystemExit("--backend vllm: the vllm package is not installed (pip install vllm, or use --backend hf)")
        return requested
    try:
        import torch

        gpu = torch.cuda.is_available()
    except Exception:
        gpu = False
    return "vllm" if gpu and vllm_importable() else "hf"


def run_settings(a: GenerateSettings, backend: str, dtype: str, role_names: list[str], counts: dict[str, int]) -> dict:
    s: dict[str, Any] = {
        "format": FORMAT,
        "model": a.model_name,
        "checkpoint": a.revision,
        "backend": backend,
        "dtype": dtype,
        "sampling": {"temperature": a.temperature, "top_p": a.top_p, "max_tokens": a.max_tokens},
        "seed": a.seed,
        "seed_derivation": "sha256('<seed>/<role>/<system_prompt_idx>/<question_idx>/<rollout_idx>')[:8] & (2**63-1)",
        "model_display_name": a.model_display_name,
        "roles_dir": a.roles_dir,
        "questions": a.questions,
        "question_count": a.question_count,
        "num_rollouts": a.num_rollouts,
        "roles": role_names,
        "counts": counts,
        "total": sum(counts.values()),
    }
    if a.chat_template_from:
        s["chat_template_from"] = a.chat_template_from
    if backend == "hf":
        s["batch_size"] = a.batch_size
        s["kv_cache_gb"] = a.kv_cache_gb
        s["prefill_batch"] = a.prefill_batch
        # how the slot engine's decode step runs: compiled and eager steps, and matmul and sdpa
        # attention, round differently, so a run records which it asked for
        s["decode_step"] = {"attention": a.decode_attention, "compile": a.compile_decode}
    else:
        s["tensor_parallel_size"] = a.tensor_parallel_size
    return s


def check_previous_run(out_dir: Path, settings: dict, overwrite: bool) -> None:
    """Refuse to mix responses made with other text-relevant settings into one directory."""
    f = out_dir / RUN_FILE
    if not f.exists():
        return
    try:
        prev = json.loads(f.read_text(encoding="utf-8"))
    except ValueError:
        prev = {}
    diff = [k for k in TEXT_SETTINGS if prev.get(k) != settings.get(k)]
    if not diff:
        for k in BATCH_SETTINGS:
            if prev.get(k) != settings.get(k) and k in settings:
                print(f"warning: {f} was made with {k} {prev.get(k)}, now {settings[k]}: new responses may differ "
                      "in float rounding from an uninterrupted run", file=sys.stderr)
        return
    if not overwrite:
        detail = "; ".join(f"{k}: {prev.get(k)!r} -> {settings.get(k)!r}" for k in diff)
        raise RunConfigError(
            f"{out_dir} holds transcripts made with other settings ({detail}); use the same settings to resume, "
            "another --output-dir, or --overwrite to discard them"
        )
    for p in out_dir.glob("*.jsonl"):
        p.unlink()


def request_record(req: Request, gen: Generation, seed: int, model: str, revision: str) -> dict:
    return {
        "role": req.role,
        "system_prompt_idx": req.system_prompt_idx,
        "question_idx": req.question_idx,
        "rollout_idx": req.rollout_idx,
        "question_id": req.question_id,
        "system_prompt": req.system_prompt,
        "question": req.question,
        "response": gen.text,
        "finish_reason": gen.finish_reason,
        "num_tokens": gen.num_tokens,
        "seed": seed,
        "model": model,
        "checkpoint": revision,  # the model revision (the field keeps its name: transcripts stay byte-identical)
    }


def existing_records(path: Path, by_key: dict[tuple, Request]) -> dict[tuple, dict]:
    """Complete lines of a role file (torn last line repaired away), checked against the requests."""
    done: dict[tuple, dict] = {}
    for n, rec in enumerate(read_records(path, repair=True), 1):
        k = record_key(rec)
        req = by_key.get(k)
        if req is not None and (rec.get("system_prompt") != req.system_prompt or rec.get("question") != req.question):
            raise RunConfigError(
                f"{path}: the line for (system_prompt_idx, question_idx, rollout_idx)={k} has another system prompt or "
                "question than this run asks (role file or questions changed); use another --output-dir or delete the file"
            )
        done.setdefault(k, rec)
    return done


def finalize_role_file(path: Path, records: dict[tuple, dict]) -> None:
    """Rewrite a complete role file in key order, one line per key (atomic replace)."""
    write_records_sorted(path, records)


class RoleWriter:
    """Per role: its file, what is done, and how many requests it has in all."""

    def __init__(self, out_dir: Path, role: str, requests: list[Request], append_dir: Path | None = None):
        self.path = out_dir / f"{role}.jsonl"
        # A worker of several (--gpus) appends to its own part file; the parent merges the parts.
        self.append_path = (append_dir / f"{role}.jsonl") if append_dir else self.path
        self.is_part = append_dir is not None
        self.requests = requests
        self.by_key = {r.key: r for r in requests}
        self.done = existing_records(self.path, self.by_key)
        self.appender: RecordAppender | None = None
        self.finalized = False

    def missing(self) -> list[Request]:
        return [r for r in self.requests if r.key not in self.done]

    def write(self, recs: list[dict]) -> None:
        recs = [r for r in recs if record_key(r) not in self.done]
        if not recs:
            return
        if self.appender is None:
            self.appender = RecordAppender(self.append_path)
        self.appender.write(recs)
        for r in recs:
            self.done[record_key(r)] = r

    def maybe_finalize(self) -> None:
        if self.is_part or self.finalized or any(k not in self.done for k in self.by_key):
            return
        if self.appender is not None:
            self.appender.close()
            self.appender = None
        lines_ok = self.path.exists() and _is_canonical(self.path, self.done)
        if not lines_ok:
            finalize_role_file(self.path, self.done)
        self.finalized = True

    def close(self) -> None:
        if self.appender is not None:
            self.appender.close()
            self.appender = None


def _is_canonical(path: Path, records: dict[tuple, dict]) -> bool:
    expected = "".join(dumps_record(records[k]) + "\n" for k in sorted(records))
    return path.read_text(encoding="utf-8") == expected


def make_backend(a: GenerateSettings, backend: str):
    if backend == "hf":
        from .generation_backends import HFBackend

        return HFBackend(a.model_name, a.revision, device=a.device, dtype=a.dtype)
    from .generation_backends import VLLMBackend

    return VLLMBackend(a.model_name, a.revision, dtype=a.dtype, seed=a.seed,
                       tensor_parallel_size=a.tensor_parallel_size, max_model_len=a.max_model_len)


def plan(a: GenerateSettings) -> tuple[dict[str, list[Request]], list[str]]:
    """Validate every role file (also those not asked for) and the questions before any model is loaded."""
    roles = roles_mod.load_roles(a.roles_dir, a.roles)
    if a.roles:
        roles_mod.load_roles(a.roles_dir)
    shared = None if a.questions == "role" else roles_mod.load_questions(a.questions)
    reqs = roles_mod.build_requests(roles, shared, question_count=a.question_count, num_rollouts=a.num_rollouts,
                                    model_display_name=a.model_display_name)
    by_role: dict[str, list[Request]] = {n: [] for n in roles}
    for r in reqs:
        by_role[r.role].append(r)
    return by_role, sorted(roles)


def run_generation(a: GenerateSettings, *, backend_obj: Any = None) -> Path:
    """Everything after argument parsing; ``backend_obj`` may be injected (tests of the vLLM path)."""
    from . import generation_workers as gw

    by_role, role_names = plan(a)
    backend = backend_obj.name if backend_obj is not None else choose_backend(a.backend)
    device = "cuda" if backend == "vllm" else resolve_device(a.device)
    dtype = resolve_dtype(a.dtype, device)
    out_dir = resolve_output_dir(a)
    counts = {n: len(by_role[n]) for n in role_names}
    settings = run_settings(a, backend, dtype, role_names, counts)
    worker = gw.parse_worker(a.worker)
    parallel = backend == "hf" and a.gpus > 1 and worker is None
    if worker is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        check_previous_run(out_dir, settings, a.overwrite)
        for stale in [*out_dir.glob("*.jsonl.tmp"), out_dir / (RUN_FILE + ".tmp")]:
            stale.unlink(missing_ok=True)  # left by a kill during an atomic rewrite
        gw.merge_parts(out_dir, by_role)  # lines of workers of an interrupted --gpus run
        atomic_write(out_dir / RUN_FILE, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    part_dir = gw.part_dir(out_dir, worker[0]) if worker else None
    writers = {n: RoleWriter(out_dir, n, by_role[n], part_dir) for n in role_names}

    missing = {n: w.missing() for n, w in writers.items()}
    n_missing = sum(len(v) for v in missing.values())
    if worker is None:
        print(f"transcripts -> {out_dir} ({settings['total']} requests, {n_missing} to generate, backend {backend}"
              f"{f', {a.gpus} workers' if parallel and n_missing else ''})", file=sys.stderr, flush=True)
    for w in writers.values():
        w.maybe_finalize()
    if n_missing == 0:
        return out_dir
    from .progress import GenerationProgress

    if parallel:
        progress = GenerationProgress({n: len(v) for n, v in missing.items()}, disable=True if a.no_progress else None)
        try:
            gw.run_workers(a, out_dir, progress)  # raises WorkerFailed after merging what they wrote
        finally:
            progress.close()
        writers = {n: RoleWriter(out_dir, n, by_role[n]) for n in role_names}
        left = sum(len(w.missing()) for w in writers.values())
        if left:
            raise gw.WorkerFailed(f"workers ended with {left} responses missing; run again to resume")
        for w in writers.values():
            w.maybe_finalize()
        print(f"done: {settings['total']} responses in {out_dir}", file=sys.stderr, flush=True)
        return out_dir

    if backend_obj is None:
        backend_obj = make_backend(a, backend)
    tok = backend_obj.tokenizer
    # a base model has no template: refuse in one line (--chat-template-from lends one) rather than fail mid-run
    ensure_chat_template(tok, load_chat_template(a.chat_template_from) if a.chat_template_from else None,
                         a.chat_template_from or a.model_name)
    params = SamplingSettings(a.temperature, a.top_p, a.max_tokens)
    progress = GenerationProgress({n: len(v) for n, v in missing.items()},
                                  disable=True if (a.no_progress or worker) else None, quiet=bool(worker))

    def write(role: str, recs: list[dict]) -> None:
        writers[role].write(recs)
        progress.update(role, len(recs), sum(x["num_tokens"] for x in recs))
        writers[role].maybe_finalize()

    def seed_of(r: Request) -> int:
        return request_seed(a.seed, r.role, r.system_prompt_idx, r.question_idx, r.rollout_idx)

    try:
        if backend == "hf":
            groups = hf_groups(a, backend_obj, by_role, role_names, writers, seed_of)
            if worker:
                groups = [g for gi, g in enumerate(groups) if gi % worker[1] == worker[0]]
            reqs = {(r.role, r.key): r for n in role_names for r in by_role[n]}
            pending: dict[str, list[dict]] = {}
            last = time.monotonic()
            for key, gen in backend_obj.generate_groups(groups, params, batch_size=a.batch_size,
                                                        kv_cache_gb=a.kv_cache_gb, decode_attention=a.decode_attention,
                                                        compile_decode=a.compile_decode):
                r = reqs[key]
                pending.setdefault(r.role, []).append(request_record(r, gen, seed_of(r), a.model_name, a.revision))
                n_pending = sum(len(v) for v in pending.values())
                # Lines reach the disk once a second, or once a batch's worth is done.
                if time.monotonic() - last >= 1.0 or n_pending >= a.batch_size:
                    for role, recs in pending.items():
                        write(role, recs)
                    pending, last = {}, time.monotonic()
            for role, recs in pending.items():
                write(role, recs)
        else:
            flat = [r for n in role_names for r in missing[n]]
            for i in range(0, len(flat), a.chunk_size):
                chunk = flat[i:i + a.chunk_size]
                seeds = [seed_of(r) for r in chunk]
                ids = [prompt_token_ids(tok, render_prompt(tok, r.system_prompt, r.question)) for r in chunk]
                gens = backend_obj.generate(ids, seeds, params)
                per_role: dict[str, list[dict]] = {}
                for r, g, s in zip(chunk, gens, seeds):
                    per_role.setdefault(r.role, []).append(request_record(r, g, s, a.model_name, a.revision))
                for role, recs in per_role.items():
                    write(role, recs)
    finally:
        progress.close()
        for w in writers.values():
            w.close()
    for w in writers.values():
        w.maybe_finalize()
    if worker is None:
        print(f"done: {settings['total']} responses in {out_dir}", file=sys.stderr, flush=True)
    return out_dir


def hf_groups(a: GenerateSettings, backend_obj, by_role, role_names, writers, seed_of) -> list[list]:
    """The run's static groups: every request (done or not) in a fixed queue - roles in name order,
    each role's requests by prompt length (less padding) - cut into groups of the backend's size."""
    from .slot_engine import Item

    tok = backend_obj.tokenizer
    items = []
    for name in role_names:
        reqs = by_role[name]
        ids = [prompt_token_ids(tok, render_prompt(tok, r.system_prompt, r.question)) for r in reqs]
        for i in sorted(range(len(reqs)), key=lambda i: (len(ids[i]), i)):
            r = reqs[i]
            items.append(Item((r.role, r.key), ids[i], seed_of(r), wanted=r.key not in writers[name].done))
    size = backend_obj.group_size(a.batch_size, a.prefill_batch)
    return [items[i:i + size] for i in range(0, len(items), size)]


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    try:
        run_generation(a)
    except (InputError, ModelNotCachedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except WorkerFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
