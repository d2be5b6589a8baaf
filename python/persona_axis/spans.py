"""Response token spans: which tokens of a rebuilt conversation are the response's own content.

A conversation is rebuilt exactly as it was generated::

    text = render_prompt(system_prompt, question)      # ... + assistant header (the generation prompt)
         + response                                    # the generated text, verbatim
         + suffix                                      # what the template appends (end-of-turn token ...)

``render_conversation`` must give exactly this text (checked: the prompt is a prefix and the response
follows it verbatim). A template that rewrites the assistant content (e.g. ``| trim``) would not give
what the model saw, so then the text is built as ``prompt + response + suffix`` with the suffix taken
from a render with a sentinel response (counted as ``rewritten_by_template``).

The span is found by tokenizing the whole text once (fast tokenizer offsets): the response occupies
characters ``[start, end)``; span = every token whose character range intersects it. Boundary rule:
a token that straddles the header/response boundary (e.g. the header's ``\\n`` merged with a
response's leading ``\\n`` into ``\\n\\n``, or ``Assistant:`` + ``:)`` giving ``::)``) carries response
content and IS included; likewise a token straddling the response's end and the suffix. Header-only
and suffix-only tokens (the end-of-turn token) are never included. A safety check decodes the span
and requires it to contain the response text.

Offsets are taken as the tokenizer's model produces them, whatever its offset conventions: a fast
tokenizer whose post-processor trims whitespace from offsets (ByteLevel / RoBERTa ``trim_offsets``)
would shrink a whitespace token at a response's edge to zero width (and drop it from the span, or
find no token at all for a whitespace-only response). Whitespace at a response's edges is response
content, so offsets come from a copy of the tokenizer with every ``trim_offsets`` turned off (token
ids are unchanged: checked).

Only tokens up to the span's end are run through the model: later tokens cannot change the span's
activations in a causal model, so they are cut (``input_ids`` holds ``tokens[:span_end]``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import InputError
from .prompts import render_conversation, render_prompt

_SENTINEL = "QZXW-response-sentinel-QZXW"


class SpanError(InputError):
    """A conversation could not be rebuilt or its response located; the message names the record."""


@dataclass(frozen=True)
class ConversationText:
    text: str
    start: int  # response's first character in text
    end: int  # one past its last character
    rewritten_by_template: bool = False


@dataclass(frozen=True)
class EncodedConversation:
    """Token ids to run (the conversation cut after the span) and the span within them."""

    input_ids: tuple[int, ...]
    span_start: int
    span_end: int  # exclusive; == len(input_ids) unless truncated
    full_length: int  # tokens of the whole conversation (header, response and suffix)
    merged_start: bool  # the first span token also holds header characters
    merged_end: bool  # the last span token also holds suffix characters
    truncated: bool  # cut at max_length: the span lost tokens

    @property
    def span_length(self) -> int:
        return self.span_end - self.span_start


def conversation_text(tokenizer: Any, system_prompt: str, question: str, response: str, where: str = "") -> ConversationText:
    """The full conversation text and the response's character range in it."""
    prefix = render_prompt(tokenizer, system_prompt, question)
    full = render_conversation(tokenizer, system_prompt, question, response)
    start, end = len(prefix), len(prefix) + len(response)
    if full.startswith(prefix) and full[start:end] == response:
        return ConversationText(full, start, end)
    # The template changed the assistant content (or the prompt) when closing the turn: rebuild what
    # the model saw (the generation prompt + the response) with the template's suffix.
    sentinel = render_conversation(tokenizer, system_prompt, question, _SENTINEL)
    if not sentinel.startswith(prefix + _SENTINEL):
        raise SpanError(
            f"{where}: the chat template renders the conversation differently from the generation prompt "
            "(the prompt rendered with add_generation_prompt=True is not a prefix of the conversation with "
            "the assistant turn); this template is not supported for capture"
        )
    suffix = sentinel[len(prefix) + len(_SENTINEL):]
    return ConversationText(prefix + response + suffix, start, end, rewritten_by_template=True)


def char_range_to_token_span(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """Tokens whose character range intersects ``[start, end)`` -> (first, one past last), or None.

    Zero-width tokens never count as intersecting on their own (they are included only when they lie
    between two intersecting tokens)."""
    first = last = None
    for i, (s, e) in enumerate(offsets):
        if e > s and e > start and s < end:
            if first is None:
                first = i
            last = i
        elif first is not None and s >= end:
            break
    if first is None:
        return None
    return first, last + 1


def _turn_off_trim_offsets(node: Any) -> bool:
    changed = False
    if isinstance(node, dict):
        if node.get("trim_offsets") is True:
            node["trim_offsets"] = False
            changed = True
        for v in node.values():
            changed = _turn_off_trim_offsets(v) or changed
    elif isinstance(node, list):
        for v in node:
            changed = _turn_off_trim_offsets(v) or changed
    return changed


def untrimmed_backend(tokenizer: Any) -> Any | None:
    """A copy of a fast tokenizer's backend (``tokenizers.Tokenizer``) with offset trimming off, or None
    when nothing in it trims offsets (then its own offsets are already untrimmed). Cached on the tokenizer."""
    cached = getattr(tokenizer, "_persona_axis_untrimmed", False)
    if cached is not False:
        return cached
    from tokenizers import Tokenizer

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    copy = Tokenizer.from_str(json.dumps(spec)) if _turn_off_trim_offsets(spec) else None
    try:
        tokenizer._persona_axis_untrimmed = copy
    except Exception:
        pass
    return copy


def token_ids_and_offsets(tokenizer: Any, texts: Sequence[str], where: Sequence[str] | None = None):
    """Token ids (the tokenizer's own) and untrimmed character offsets of each text."""
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    backend = untrimmed_backend(tokenizer)
    if backend is None:
        return ids, offsets
    raw = backend.encode_batch(list(texts), add_special_tokens=False)
    for k, e in enumerate(raw):
        if list(e.ids) != list(ids[k]):
            label = where[k] if where is not None else f"conversation {k}"
            raise SpanError(f"{label}: the tokenizer without offset trimming gives other token ids; "
                            "this tokenizer is not supported for capture")
    return ids, [list(e.offsets) for e in raw]


def encode_conversations(
    tokenizer: Any,
    texts: Sequence[ConversationText],
    *,
    max_length: int | None = None,
    where: Sequence[str] | None = None,
    check_decode: bool = True,
) -> list[EncodedConversation | None]:
    """Tokenize conversations (one batched call) and locate each response span.

    Returns None for a conversation whose span has no tokens (empty response, or cut entirely by
    ``max_length``)."""
    if not getattr(tokenizer, "is_fast", False):
        raise SpanError(
            "capture needs a fast tokenizer (offset mappings) to locate response tokens; "
            f"{type(tokenizer).__name__} is not one (install `tokenizers`, or load with use_fast=True)"
        )
    all_ids, all_offsets = token_ids_and_offsets(tokenizer, [t.text for t in texts], where)
    out: list[EncodedConversation | None] = []
    for k, t in enumerate(texts):
        ids = all_ids[k]
        offsets = all_offsets[k]
        if t.end <= t.start:
            out.append(None)
            continue
        span = char_range_to_token_span(offsets, t.start, t.end)
        label = where[k] if where is not None else f"conversation {k}"
        if span is None:
            raise SpanError(f"{label}: no token covers the response's characters (tokenizer offsets look wrong)")
        first, stop = span
        if check_decode:
            decoded = tokenizer.decode(ids[first:stop], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            body = t.text[t.start:t.end].strip()
            if body and body not in decoded:
                raise SpanError(
                    f"{label}: the located response tokens decode to {decoded[:80]!r}..., which does not contain the "
                    "response; the tokenizer's offset mapping is unreliable for this model"
                )
        merged_start = offsets[first][0] < t.start
        merged_end = offsets[stop - 1][1] > t.end
        truncated = False
        if max_length is not None and stop > max_length:
            truncated = True
            stop = max_length
            if stop <= first:
                out.append(None)
                continue
        out.append(EncodedConversation(tuple(ids[:stop]), first, stop, len(ids), merged_start, merged_end, truncated))
    return out
