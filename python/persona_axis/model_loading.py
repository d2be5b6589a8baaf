"""One place where checkpoints are loaded (generation, judging, capture): a local directory, or a Hub
id at a revision, normally the commit sha the `models` stage pinned.

GPU stages run with ``HF_HUB_OFFLINE=1``: the pinned snapshot must already be in the cache (the
`models` stage downloaded it), so a job never waits on the network while holding a GPU. When it is
not there, :func:`require_cached` fails at once with one line saying what to run, instead of a
transformers traceback after the GPU was allocated.

vLLM loads by itself; :func:`hub_revision` gives the revision to hand it.
"""
from __future__ import annotations

import os
from typing import Any


class ModelNotCachedError(RuntimeError):
    """A pinned Hub checkpoint that is not in the local cache while the Hub is offline."""


def is_local_model(model_name: str) -> bool:
    return os.path.isdir(model_name)


def hub_revision(model_name: str, revision: str | None) -> str | None:
    """The revision to pass to ``from_pretrained`` / vLLM: none for a local directory."""
    return None if is_local_model(model_name) else (revision or None)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def require_cached(model_name: str, revision: str | None) -> None:
    """Offline and a Hub checkpoint: its snapshot at ``revision`` must be complete in the cache."""
    rev = hub_revision(model_name, revision)
    if is_local_model(model_name) or not hub_offline():
        return
    from .hub_checkpoints import cached_snapshot

    if cached_snapshot(model_name, rev or "main") is None:
        home = os.environ.get("HF_HOME") or "~/.cache/huggingface"
        raise ModelNotCachedError(
            f"{model_name}@{rev or 'main'} is not in the Hugging Face cache (HF_HOME={home}) and the Hub is offline "
            "(HF_HUB_OFFLINE=1): run the models stage first (`tsx run.ts repro models`, on a node with network and "
            "the same HF_HOME)")


def _kw(model_name: str, revision: str | None) -> dict[str, Any]:
    rev = hub_revision(model_name, revision)
    return {"revision": rev} if rev else {}


def load_tokenizer(model_name: str, revision: str | None = None, **kw: Any):
    from transformers import AutoTokenizer

    require_cached(model_name, revision)
    return AutoTokenizer.from_pretrained(model_name, **_kw(model_name, revision), **kw)


def load_causal_lm(model_name: str, revision: str | None = None, **kw: Any):
    """``AutoModelForCausalLM.from_pretrained`` at the revision; ``kw`` as for transformers (dtype,
    attn_implementation, device_map)."""
    from transformers import AutoModelForCausalLM

    require_cached(model_name, revision)
    return AutoModelForCausalLM.from_pretrained(model_name, **_kw(model_name, revision), **kw)
