"""Hub checkpoints pinned to immutable commits: resolve a revision (branch, tag or sha) to its commit
sha, check a whole profile's checkpoints against the Hub, download a pinned snapshot once into the
Hugging Face cache (``HF_HOME``), verified against the Hub's own file hashes.

Everything goes through ``huggingface_hub`` (``HfApi.model_info``, ``list_repo_refs``,
``snapshot_download``, ``verify_repo_checksums``), so ``HF_ENDPOINT``, ``HF_HOME`` and the token
(``HF_TOKEN`` or the login file, read by the library itself) work as everywhere else. No token value
is ever formatted into a message here: only whether one is present.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

SHA_RE = re.compile(r"^[0-9a-f]{40}$")


class HubCheckpointError(Exception):
    """A checkpoint that cannot be used as asked (missing repository or revision, no access). One line."""


@dataclass
class Pin:
    """What the lock should say about a Hub checkpoint: the id, the revision asked for, its commit."""
    name: str
    model: str
    revision: str
    sha: str

    def short(self) -> str:
        return self.sha[:7]


@dataclass
class CheckRow:
    name: str
    model: str
    revision: str
    sha: str = ""
    size: int | None = None
    gated: str = "no"
    template: str = ""
    problem: str = ""
    suggestions: list[str] = field(default_factory=list)


def token_present() -> bool:
    """Whether huggingface_hub will send a token (HF_TOKEN or the login file). Never the token itself."""
    from huggingface_hub import get_token

    return bool(get_token())


def _api():
    from huggingface_hub import HfApi

    return HfApi()


def _errors():
    from huggingface_hub import errors

    return errors


def closest_revisions(model: str, revision: str, api=None) -> list[str]:
    """Branches and tags of ``model`` closest to ``revision`` (difflib), e.g. step_60 -> step_600, stage1-step60."""
    api = api or _api()
    refs = api.list_repo_refs(model)
    names = [r.name for r in list(refs.branches) + list(refs.tags)]
    close = difflib.get_close_matches(revision, names, n=5, cutoff=0.5)
    return close or sorted(names)[:5]


def closest_models(model: str, api=None) -> list[str]:
    """Repositories of the same author closest to ``model`` (difflib)."""
    api = api or _api()
    author = model.split("/")[0] if "/" in model else None
    if not author:
        return []
    try:
        ids = [m.id for m in api.list_models(author=author, limit=1000)]
    except Exception:  # the suggestion is a courtesy; the error stands without it
        return []
    return difflib.get_close_matches(model, ids, n=5, cutoff=0.5)


def _missing(model: str, revision: str, err: Exception, api) -> HubCheckpointError:
    e = _errors()
    if isinstance(err, e.RevisionNotFoundError):
        near = closest_revisions(model, revision, api)
        return HubCheckpointError(f"{model}: revision {revision!r} not found; closest branches/tags: {', '.join(near) or '(none)'}")
    if isinstance(err, e.GatedRepoError):
        return HubCheckpointError(f"{model}: gated repository, no access ({_token_hint()})")
    if isinstance(err, e.RepositoryNotFoundError):
        near = closest_models(model, api)
        hint = f"; closest: {', '.join(near)}" if near else ""
        return HubCheckpointError(f"{model}: repository not found (or private: {_token_hint()}){hint}")
    return HubCheckpointError(f"{model}@{revision}: {type(err).__name__}: {str(err).splitlines()[0]}")


def unreachable(model: str, revision: str, err: BaseException) -> HubCheckpointError:
    from huggingface_hub import constants

    msg = str(err).splitlines()[0] if str(err) else ""
    return HubCheckpointError(f"{model}@{revision}: cannot reach the Hub at {constants.ENDPOINT} "
                              f"({type(err).__name__}: {msg}); run this on a node with network (or set HF_ENDPOINT)")


def _token_hint() -> str:
    return "a token is set: request access on the model page" if token_present() else \
        "no token: set HF_TOKEN or run `hf auth login`"


def resolve(name: str, model: str, revision: str, api=None) -> Pin:
    """The commit sha ``revision`` of ``model`` points to now (a sha is checked to exist)."""
    api = api or _api()
    e = _errors()
    try:
        info = api.model_info(model, revision=revision)
    except (e.RepositoryNotFoundError, e.RevisionNotFoundError) as err:
        raise _missing(model, revision, err, api) from None
    except (OSError, httpx.HTTPError, e.HfHubHTTPError) as err:  # connection refused, DNS, timeouts, Hub 5xx
        raise unreachable(model, revision, err) from None
    if not info.sha or not SHA_RE.match(info.sha):
        raise HubCheckpointError(f"{model}@{revision}: the Hub returned no commit sha")
    return Pin(name=name, model=model, revision=revision, sha=info.sha)


def check_access(model: str, sha: str) -> None:
    """HEAD of config.json at the pinned commit: a gated repository without access fails here."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    e = _errors()
    try:
        get_hf_file_metadata(hf_hub_url(model, "config.json", revision=sha))
    except e.GatedRepoError:
        raise HubCheckpointError(f"{model}: gated repository, no access ({_token_hint()})") from None
    except e.EntryNotFoundError:
        raise HubCheckpointError(f"{model}@{sha[:7]}: no config.json (not a transformers checkpoint?)") from None


def chat_template_at(model: str, sha: str, siblings: list[str]) -> str | None:
    """The chat template stored at the commit (chat_template.jinja/.json or tokenizer_config.json), or None."""
    e = _errors()
    try:
        return _chat_template_at(model, sha, siblings)
    except e.GatedRepoError:
        raise HubCheckpointError(f"{model}: gated repository, no access ({_token_hint()})") from None


def _chat_template_at(model: str, sha: str, siblings: list[str]) -> str | None:
    from huggingface_hub import hf_hub_download

    if "chat_template.jinja" in siblings:
        return open(hf_hub_download(model, "chat_template.jinja", revision=sha), encoding="utf-8").read()
    if "chat_template.json" in siblings:
        data = json.load(open(hf_hub_download(model, "chat_template.json", revision=sha), encoding="utf-8"))
        return data.get("chat_template") if isinstance(data, dict) else None
    if "tokenizer_config.json" in siblings:
        data = json.load(open(hf_hub_download(model, "tokenizer_config.json", revision=sha), encoding="utf-8"))
        t = data.get("chat_template")
        return t if isinstance(t, str) and t else (json.dumps(t, sort_keys=True) if t else None)
    return None


def check_checkpoint(name: str, model: str, revision: str, api=None) -> tuple[CheckRow, str | None]:
    """One row of the check table (and the template text, if any). Problems are recorded, not raised."""
    api = api or _api()
    e = _errors()
    row = CheckRow(name=name, model=model, revision=revision)
    try:
        pin = resolve(name, model, revision, api)
    except HubCheckpointError as err:
        row.problem = str(err)
        return row, None
    row.sha = pin.sha
    info = api.model_info(model, revision=pin.sha, files_metadata=True)
    siblings = [s.rfilename for s in info.siblings or []]
    row.size = sum((s.size or 0) for s in info.siblings or []) if info.siblings else None
    row.gated = str(info.gated) if info.gated else "no"
    try:
        check_access(model, pin.sha)
        template = chat_template_at(model, pin.sha, siblings)
    except HubCheckpointError as err:
        row.problem = str(err)
        return row, None
    except e.HfHubHTTPError as err:
        row.problem = f"{model}@{pin.short()}: {str(err).splitlines()[0]}"
        return row, None
    row.template = "yes" if template else "none"
    return row, template


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return "?"


def format_table(rows: list[CheckRow], template_source: str) -> str:
    """One table: checkpoint, id@revision, sha, size, gated, chat template (or the one borrowed)."""
    head = ("checkpoint", "model@revision", "commit", "size", "gated", "chat template")
    body = []
    for r in rows:
        if r.problem:
            tmpl = "-"
        elif r.template == "yes":
            tmpl = "own"
        else:
            tmpl = f"none: borrows {template_source}'s"
        body.append((r.name, f"{r.model}@{r.revision}", r.sha[:12] or ("?" if "cannot reach" in r.problem else "MISSING"), human_size(r.size) if r.sha else "-",
                     r.gated if r.sha else "-", tmpl))
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *body]]
    for r in rows:
        if r.problem:
            lines.append(f"error: {r.name}: {r.problem}")
    return "\n".join(lines)


def download(pin: Pin, *, progress: bool = True) -> str:
    """Download the pinned commit into the cache (resumable per file: complete files are never
    fetched again) and verify every file against the Hub's hashes (git blob sha1 / LFS sha256).
    Returns the snapshot directory."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    from .model_loading import hub_offline

    (enable_progress_bars if progress else disable_progress_bars)()
    e = _errors()
    if hub_offline():
        path = cached_snapshot(pin.model, pin.sha)
        if path is None:
            raise HubCheckpointError(f"{pin.model}@{pin.short()}: not in the cache and HF_HUB_OFFLINE=1: run this "
                                     "step on a node with network")
        return path  # complete per the cached file listing; verified when it was downloaded
    try:
        path = snapshot_download(pin.model, revision=pin.sha)
    except (e.RepositoryNotFoundError, e.RevisionNotFoundError) as err:
        raise _missing(pin.model, pin.sha, err, _api()) from None
    verify(pin)
    return path


def verify(pin: Pin) -> None:
    """Every file of the cached snapshot matches the Hub's hash for it (raises on a mismatch)."""
    v = _api().verify_repo_checksums(pin.model, revision=pin.sha)
    bad = [*(f"{m['path']} differs ({m['algorithm']})" for m in v.mismatches), *(f"{p} missing" for p in v.missing_paths)]
    if bad:
        raise HubCheckpointError(f"{pin.model}@{pin.short()}: cached snapshot does not match the Hub: {'; '.join(bad[:5])}")


def cached_snapshot(model: str, sha: str) -> str | None:
    """The complete cached snapshot directory of a pinned commit, without any network; None if absent."""
    from huggingface_hub import snapshot_download

    e = _errors()
    try:
        return snapshot_download(model, revision=sha, local_files_only=True)
    except (e.LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None


def pin_record(pin: Pin, **extra: Any) -> dict:
    return {**asdict(pin), "build": "hub", **extra}
