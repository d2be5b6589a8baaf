"""Capture, host side: a role's transcript records -> checked records -> conversation texts -> tokens and
the response's token span (runs on a prefetch thread while the device captures the previous role)."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from . import transcripts as transcripts_mod
from .capture_verify import PromptVerifier
from .errors import CaptureError
from .spans import ConversationText, EncodedConversation, SpanError, conversation_text, encode_conversations

Key = tuple[int, int, int]


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



def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()



def prepare_role(tokenizer: Any, role: str, path: Path, *, max_length: int | None = None,
                 verifier: PromptVerifier | None = None) -> PreparedRole:
    t0 = time.perf_counter()
    sha = sha256_file(path)
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

