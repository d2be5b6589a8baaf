"""Token-budget batching: sequences sorted by length, batches of at most ``max_batch_tokens`` padded tokens.

A batch of ``rows`` sequences padded to its longest (``max_len``) costs ``rows * max_len`` tokens,
padding included. Sorting by length (longest first, so a too-large budget fails on the first batch,
not after an hour) makes neighbours nearly equal in length, so padding stays a few percent.
A single sequence longer than the budget gets a batch of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Batch:
    indices: tuple[int, ...]  # into the caller's sequence list, longest first
    max_len: int

    @property
    def padded_tokens(self) -> int:
        return len(self.indices) * self.max_len


def plan_batches(lengths: Sequence[int], max_batch_tokens: int) -> list[Batch]:
    """Deterministic batches (ties broken by index) covering every sequence once."""
    if max_batch_tokens <= 0:
        raise ValueError(f"max_batch_tokens must be positive, got {max_batch_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    batches: list[Batch] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        n = int(lengths[i])
        if n <= 0:
            raise ValueError(f"sequence {i} has length {n}; every sequence needs at least one token")
        if cur and (len(cur) + 1) * max(cur_max, n) > max_batch_tokens:
            batches.append(Batch(tuple(cur), cur_max))
            cur, cur_max = [], 0
        cur.append(i)
        cur_max = max(cur_max, n)
    if cur:
        batches.append(Batch(tuple(cur), cur_max))
    return batches

