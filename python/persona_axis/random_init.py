"""The random-init control: a study model's architecture (its config, from the Hub id + revision or a
local directory) with freshly initialised weights, seeded; no weights are downloaded. Captured on the
same transcripts, it is the floor every checkpoint is compared with: with fixed texts, much of the
persona-space structure (e.g. a high cos(axis, PC1)) can come from the tokens alone.
"""
from __future__ import annotations

from typing import Any

import torch

#: Recorded as the capture's checkpoint, so a random-init capture is never taken for a trained one.
MARK = "random-init"


def random_init_model(model_name: str, revision: str | None, seed: int, dtype: torch.dtype,
                      attn_implementation: str = "sdpa") -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    kw = {"revision": revision} if revision else {}
    config = AutoConfig.from_pretrained(model_name, **kw)
    config._attn_implementation = attn_implementation
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    return model.to(dtype)


def checkpoint_label(revision: str, seed: int) -> str:
    return f"{revision}+{MARK}:{int(seed)}" if revision else f"{MARK}:{int(seed)}"
