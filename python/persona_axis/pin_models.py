"""The `models` stage's Hub side, and the check before a long run.

  pin       resolve each Hub checkpoint to a commit sha once and keep it: <out>/<name>/checkpoint.json
            ({name, model, revision, sha}), <out>/<name>/chat_template.jinja when the commit has one,
            and <out>/pins.yaml (paste-ready: `sha:` lines to freeze the params). A pin already in
            <out> for the same model and revision is kept without asking the Hub; only --update
            re-resolves (and says which checkpoint moved: "final: main moved a1b2c3d -> d4e5f6a").
  download  snapshot_download every pinned commit into the cache (HF_HOME), verified file by file
            against the Hub's hashes; complete files are never fetched twice.
  check     one table for every checkpoint of a profile: id, revision, commit, size, gated, chat
            template (or whose is borrowed); exit 2 on anything missing, with the closest names.

Checkpoints come as JSON: {"<name>": {"model": ..., "revision": ..., "sha": optional}, ...}.
Exit codes: 0 ok, 2 a checkpoint is missing / inaccessible / bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .atomic import atomic_write
from .hub_checkpoints import (SHA_RE, HubCheckpointError, Pin, chat_template_at, check_checkpoint, download,
                              format_table, pin_record, resolve)

RECORD = "checkpoint.json"
TEMPLATE = "chat_template.jinja"


def _load_checkpoints(text: str) -> dict[str, dict]:
    try:
        data = json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
    except (OSError, json.JSONDecodeError) as e:
        raise HubCheckpointError(f"--checkpoints: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) and v.get("model") for v in data.values()):
        raise HubCheckpointError("--checkpoints: expected a JSON object {name: {model, revision, sha?}}")
    return data


def _previous(out: Path, name: str) -> dict | None:
    try:
        rec = json.loads((out / name / RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) and SHA_RE.match(str(rec.get("sha", ""))) else None


def pin_one(name: str, spec: dict, out: Path, update: bool) -> tuple[Pin, str]:
    """The pin of one checkpoint and a line saying how it was obtained."""
    model, revision, fixed = spec["model"], spec.get("revision") or "main", spec.get("sha") or ""
    prev = _previous(out, name)
    same = prev is not None and prev.get("model") == model and prev.get("revision") == revision
    if fixed or SHA_RE.match(revision):
        sha = fixed or revision
        pin = resolve(name, model, sha)  # the commit must exist
        pin.revision = revision
        if fixed and update and not SHA_RE.match(revision):
            now = resolve(name, model, revision)
            note = "" if now.sha == sha else f"; {revision} is now at {now.short()} (change the sha in the params to follow it)"
            return pin, f"{name}: {model}@{revision} pinned by the params at {pin.short()}{note}"
        return pin, f"{name}: {model}@{revision} pinned by the params at {pin.short()}"
    if same and not update:
        return Pin(name, model, revision, prev["sha"]), f"{name}: {model}@{revision} kept at {prev['sha'][:7]} (resolved earlier)"
    pin = resolve(name, model, revision)
    if same and prev["sha"] != pin.sha:
        return pin, f"{name}: {revision} moved {prev['sha'][:7]} -> {pin.short()} ({model})"
    if same:
        return pin, f"{name}: {model}@{revision} re-resolved, unchanged at {pin.short()}"
    return pin, f"{name}: {model}@{revision} resolved to {pin.short()}"


def cmd_pin(a: argparse.Namespace) -> int:
    cps = _load_checkpoints(a.checkpoints)
    out = Path(a.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    want = set(cps) if a.update == "all" else {x for x in (a.update or "").split(",") if x}
    unknown = want - set(cps)
    if unknown:
        raise HubCheckpointError(f"--update: unknown checkpoint(s) {', '.join(sorted(unknown))}; the profile has {', '.join(cps)}")
    pins: list[Pin] = []
    for name, spec in cps.items():
        prev = _previous(out, name)
        pin, line = pin_one(name, spec, out, name in want)
        print(line, flush=True)
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        tmpl = d / TEMPLATE
        if prev is None or prev.get("sha") != pin.sha or prev.get("model") != pin.model:
            # The record is written last: a record with this sha means its template step is done.
            from huggingface_hub import HfApi

            siblings = [s.rfilename for s in HfApi().model_info(pin.model, revision=pin.sha).siblings or []]
            text = chat_template_at(pin.model, pin.sha, siblings)
            if text:
                atomic_write(tmpl, text)
            elif tmpl.exists():
                tmpl.unlink()
        if prev is not None and " moved " in line:
            with open(out / "pins-history.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"checkpoint": name, "model": pin.model, "revision": pin.revision,
                                    "from": prev["sha"], "to": pin.sha}) + "\n")
        atomic_write(d / RECORD, json.dumps(pin_record(pin), indent=2) + "\n")
        pins.append(pin)
    lines = ["# Commits the models stage pinned. To freeze them in the params (so the lock itself records",
             "# them), copy the sha lines into the profile's checkpoints.", "checkpoints:"]
    lines += [f"  {p.name}: {{model: {p.model}, revision: {p.revision}, sha: {p.sha}}}" for p in pins]
    atomic_write(out / "pins.yaml", "\n".join(lines) + "\n")
    if not want:
        print("models: pins are kept; to re-resolve branches: PERSONA_MODELS_UPDATE=all (or names, comma "
              "separated) tsx run.ts repro -f models", flush=True)
    return 0


def cmd_download(a: argparse.Namespace) -> int:
    out = Path(a.output_dir)
    names = a.names or sorted(p.name for p in out.iterdir() if (p / RECORD).is_file())
    for name in names:
        rec = _previous(out, name)
        if rec is None:
            raise HubCheckpointError(f"{out / name / RECORD}: no pinned commit (run the pin step first)")
        pin = Pin(name, rec["model"], rec["revision"], rec["sha"])
        print(f"{name}: downloading {pin.model}@{pin.short()} ({pin.revision})", flush=True)
        path = download(pin, progress=not a.no_progress)
        print(f"{name}: verified {path}", flush=True)
    return 0


def cmd_check(a: argparse.Namespace) -> int:
    cps = _load_checkpoints(a.checkpoints)
    rows = []
    for name, spec in cps.items():
        rev = spec.get("sha") or spec.get("revision") or "main"
        row, _ = check_checkpoint(name, spec["model"], rev)
        row.revision = spec.get("revision") or "main"
        if spec.get("sha") and row.sha and not row.problem:
            row.revision += " (pinned)"
        rows.append(row)
        print(f"checked {name}", file=sys.stderr, flush=True)
    src = a.template_from
    src_row = next((r for r in rows if r.name == src), None)
    print(format_table(rows, src))
    bad = [r for r in rows if r.problem]
    if src_row is not None and not src_row.problem and src_row.template != "yes":
        print(f"error: {src}: no chat template, and the other checkpoints borrow it: capture needs one")
        bad.append(src_row)
    from .hub_checkpoints import token_present

    print(f"token: {'set' if token_present() else 'none'} (HF_TOKEN or the login file); "
          f"{len(rows) - len(bad)}/{len(rows)} checkpoint(s) ok")
    return 2 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="persona-axis-models", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("pin", help="resolve and keep each Hub checkpoint's commit sha")
    s.add_argument("--checkpoints", required=True, help="JSON object (or @file)")
    s.add_argument("--output-dir", required=True)
    s.add_argument("--update", default="", help="re-resolve these checkpoints (comma separated) or 'all'")
    s.set_defaults(fn=cmd_pin)
    s = sub.add_parser("download", help="download the pinned commits into the cache, verified")
    s.add_argument("--output-dir", required=True)
    s.add_argument("--names", nargs="*", default=None)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(fn=cmd_download)
    s = sub.add_parser("check", help="check every checkpoint against the Hub (one table)")
    s.add_argument("--checkpoints", required=True, help="JSON object (or @file)")
    s.add_argument("--template-from", default="final", help="the checkpoint whose chat template the others borrow")
    s.set_defaults(fn=cmd_check)
    return p


def main(argv: list[str] | None = None) -> int:
    import httpx

    a = build_parser().parse_args(argv)
    try:
        return a.fn(a)
    except HubCheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except httpx.TransportError as e:  # the Hub went away mid-way (not a problem of the params)
        from huggingface_hub import constants

        print(f"error: lost the connection to the Hub at {constants.ENDPOINT}: {type(e).__name__}: {e}; "
              "rerun (complete files are kept)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
