"""Chat prompts, built with the tokenizer's own chat template.

The same functions serve generation (prompt + generation header) and capture (prompt + the
response as the assistant turn), so a conversation is rebuilt exactly as it was generated.

- An empty system prompt means no system turn at all.
- A template without a system role (it raises, or drops the system text) gets the instruction
  before the question in the user turn, separated by a blank line.
- Checkpoints without a chat template (base models) borrow one: pass ``chat_template`` (e.g. the
  final checkpoint's), which is what the pipeline does for capture on base/SFT/DPO models.
"""
from __future__ import annotations

from typing import Any

from .errors import InputError

_SENTINEL = "ZQXJ-system-sentinel-ZQXJ"


class ChatTemplateError(InputError):
    pass


def ensure_chat_template(tokenizer: Any, chat_template: str | None = None, source: str = "") -> None:
    """Install ``chat_template`` on the tokenizer if given; fail clearly if it ends up with none."""
    if chat_template:
        tokenizer.chat_template = chat_template
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError(
            f"tokenizer {source or ''} has no chat template; pass one from the checkpoint that generated the "
            "transcripts (--chat-template-from MODEL) so prompts are rebuilt exactly"
        )


def load_chat_template(source: str) -> str:
    """A chat template from a file (Jinja text) or from a tokenizer (local directory or Hub id)."""
    from pathlib import Path

    if Path(source).is_file():
        return Path(source).read_text(encoding="utf-8")
    from .model_loading import load_tokenizer

    template = load_tokenizer(source).chat_template
    if not template:
        raise ChatTemplateError(f"--chat-template-from {source}: that tokenizer has no chat template")
    return template


def supports_system_role(tokenizer: Any) -> bool:
    """True when the template renders a system turn (does not raise and keeps the system text)."""
    cached = getattr(tokenizer, "_persona_axis_supports_system", None)
    if cached is not None:
        return cached
    msgs = [{"role": "system", "content": _SENTINEL}, {"role": "user", "content": "hi"}]
    try:
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        ok = _SENTINEL in text
    except Exception:
        ok = False
    try:
        tokenizer._persona_axis_supports_system = ok
    except Exception:
        pass
    return ok


def build_messages(system_prompt: str, question: str, supports_system: bool) -> list[dict[str, str]]:
    if not system_prompt:
        return [{"role": "user", "content": question}]
    if supports_system:
        return [{"role": "system", "content": system_prompt}, {"role": "user", "content": question}]
    return [{"role": "user", "content": f"{system_prompt}\n\n{question}"}]


def render_prompt(tokenizer: Any, system_prompt: str, question: str) -> str:
    """The text the model is asked to continue: conversation + assistant header."""
    msgs = build_messages(system_prompt, question, supports_system_role(tokenizer))
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def render_conversation(tokenizer: Any, system_prompt: str, question: str, response: str) -> str:
    """The full conversation with ``response`` as the assistant turn (as the template closes it)."""
    msgs = build_messages(system_prompt, question, supports_system_role(tokenizer))
    msgs = msgs + [{"role": "assistant", "content": response}]
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)


def prompt_token_ids(tokenizer: Any, prompt_text: str) -> list[int]:
    """Tokenize a rendered prompt without adding special tokens twice (templates already hold BOS)."""
    return tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
