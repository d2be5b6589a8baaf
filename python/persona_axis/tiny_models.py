"""Tiny random-init models built locally (no Hub): OLMo-2 and GPT-NeoX, each with its own
byte-level BPE tokenizer and chat template, saved with ``save_pretrained`` so they load through the
same ``from_pretrained`` path as real checkpoints. Used by the tests and by the CPU demo.

- OLMo-2 uses OLMo-2-Instruct's chat template (``<|system|>``/``<|user|>``/``<|assistant|>`` as plain
  text, so the newline after the assistant header can merge with a response's leading whitespace).
- GPT-NeoX uses a template WITHOUT a system role (it raises), exercising the fallback that puts the
  instruction into the user turn.
- ``perturb_model`` writes a copy with Gaussian noise on every weight: stand-in "checkpoints".
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

OLMO2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'assistant' %}{% if not loop.last %}"
    "{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}"
    "{% else %}{{ '<|assistant|>\n' + message['content'] + eos_token }}{% endif %}{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}"
)

NEOX_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Assistant:' + message['content'] + eos_token + '\n' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

_CORPUS = """
You are a pirate captain who has sailed the seven seas. Arr, matey! What be the best way to find treasure?
You are a helpful AI assistant. I am an AI language model, and I can help you with that question.
How should I handle a difficult boss at work? What principles should guide human action?
The relationship between law and morality has been debated by philosophers for centuries.
Let me think about this step by step. First, consider the evidence; second, weigh the options.
Once upon a time, in a kingdom by the sea, there lived a knight who feared nothing but boredom.
The detective lit a cigarette and stared at the rain. Nobody in this city tells the truth.
Breathe in. Breathe out. How does that make you feel? Tell me more about your week.
Stoicism teaches that we control our judgments, not events. Virtue is the only good.
<|system|> <|user|> <|assistant|> User: Assistant: System: ### Question: Answer:
0123456789 , . ; : ! ? ' " ( ) [ ] { } - _ / \\ * & % $ # @ + = < > | ~ ` ^
"""


def build_tokenizer(template: str, extra_texts: list[str] | None = None, vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [_CORPUS] * 4 + list(extra_texts or [])
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|pad|>",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = template
    return fast


def build_tiny_model(
    output_dir: str | os.PathLike,
    arch: str = "olmo2",
    *,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 4,
    num_heads: int = 4,
    intermediate_size: int = 128,
    vocab_size: int = 1024,
    extra_texts: list[str] | None = None,
) -> Path:
    """Build, save and return the directory of a tiny random-init model with tokenizer + template."""
    import torch
    from transformers import GenerationConfig

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    template = OLMO2_CHAT_TEMPLATE if arch == "olmo2" else NEOX_CHAT_TEMPLATE
    tok = build_tokenizer(template, extra_texts, vocab_size)
    v = len(tok)
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    if arch == "olmo2":
        from transformers import Olmo2Config, Olmo2ForCausalLM

        cfg = Olmo2Config(
            vocab_size=v, hidden_size=hidden_size, intermediate_size=intermediate_size,
            num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
            max_position_embeddings=4096, tie_word_embeddings=False, **ids,
        )
        cls = Olmo2ForCausalLM
    elif arch == "gpt_neox":
        from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

        cfg = GPTNeoXConfig(
            vocab_size=v, hidden_size=hidden_size, intermediate_size=intermediate_size,
            num_hidden_layers=num_layers, num_attention_heads=num_heads, max_position_embeddings=4096,
            rotary_pct=0.25, use_parallel_residual=True, tie_word_embeddings=False, **ids,
        )
        cls = GPTNeoXForCausalLM
    else:
        raise ValueError(f"unknown arch {arch!r}: use olmo2 or gpt_neox")
    torch.manual_seed(seed)
    model = cls(cfg).to(torch.float32).eval()
    model.generation_config = GenerationConfig(**ids)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def perturb_model(src: str | os.PathLike, dst: str | os.PathLike, *, scale: float, seed: int) -> Path:
    """Copy a model directory, adding N(0, (scale * std(W))^2) noise to every floating weight."""
    import torch
    from safetensors.torch import load_file, save_file

    src, dst = Path(src), Path(dst)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    g = torch.Generator().manual_seed(seed)
    for f in sorted(dst.glob("*.safetensors")):
        tensors = load_file(str(f))
        out = {}
        for name in sorted(tensors):
            t = tensors[name]
            if t.is_floating_point() and t.numel() > 1:
                noise = torch.randn(t.shape, generator=g, dtype=torch.float32) * (scale * t.float().std())
                t = (t.float() + noise).to(t.dtype)
            out[name] = t.contiguous()
        save_file(out, str(f), metadata={"format": "pt"})
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="persona-axis-tiny-model", description="Build a tiny random-init model (+tokenizer, chat template) locally.")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--arch", choices=["olmo2", "gpt_neox"], default="olmo2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--perturb-from", help="instead of building, copy this model dir with noise added")
    p.add_argument("--scale", type=float, default=0.05, help="noise scale relative to each weight's std")
    p.add_argument("--roles-dir", help="also train the tokenizer on this role data (more natural tokens)")
    a = p.parse_args(argv)
    if a.perturb_from:
        perturb_model(a.perturb_from, a.output_dir, scale=a.scale, seed=a.seed)
    else:
        extra = []
        if a.roles_dir:
            for f in sorted(Path(a.roles_dir).glob("*.json")):
                extra.append(json.dumps(json.loads(f.read_text()), ensure_ascii=False))
        build_tiny_model(a.output_dir, a.arch, seed=a.seed, hidden_size=a.hidden_size, num_layers=a.num_layers,
                         extra_texts=extra)
    print(f"wrote {a.output_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
