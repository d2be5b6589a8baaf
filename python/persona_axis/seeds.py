"""Per-request seeds: each generation gets its own seed derived from the run's ``--seed`` and the
request's identity (role, system prompt, question, rollout), so its sample does not depend on which
other requests run beside it, in what order, or whether the run was interrupted and resumed.
"""
from __future__ import annotations

import hashlib

_INT63 = (1 << 63) - 1


def request_seed(base_seed: int, role: str, system_prompt_idx: int, question_idx: int, rollout_idx: int) -> int:
    """The first 8 bytes of sha256("<seed>/<role>/<sp>/<q>/<rollout>"), as a non-negative int63."""
    key = f"{int(base_seed)}/{role}/{int(system_prompt_idx)}/{int(question_idx)}/{int(rollout_idx)}"
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & _INT63
