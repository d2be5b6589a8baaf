"""Per-request interventions on the residual stream: steering (add a vector) and capping (clamp the
projection onto a direction from below), applied to the output of decoder block L - the very point
capture reads (``model_blocks``: layer i = output of block i), so a captured projection and a steered
or capped one mean the same thing.

At a layer ``l`` a row's hidden state ``h`` (every position: prompt and generated tokens) becomes
    h <- h + a_l                                (steering: a_l = alpha * v_l, already scaled)
    h <- h + u_l * max(tau_l - <h, u_l>, 0)     (capping: u_l unit, so <h, u_l> >= tau_l afterwards)
in that order when a request has both. The projection and the correction are computed in float32 and
added in the model's dtype. A row without an intervention at a layer adds exact zeros, so its tokens
are those of a run without interventions (in eager mode; the compiled step rounds its own way).

Two ways in, one arithmetic (``apply_rows``):
- ``hooks(model, per_row)``: forward hooks on the blocks, one intervention per batch row - prefill,
  the plain generation loop, teacher-forced perplexity and capture with the intervention on;
- ``RowBuffers``: static per-slot device buffers read by the slot engine's decode step. A slot's
  rows are written in place when a request is admitted, so the buffers keep their addresses and a
  captured CUDA graph (or compiled step) stays valid; which layers have buffers is fixed when the
  engine is built, from every request of the run (``layers_of``).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import torch


@dataclass(frozen=True)
class Intervention:
    """``add``: layer -> vector added after that block; ``cap``: layer -> (direction, tau), the
    projection onto the unit direction raised to at least tau. Vectors are 1-D CPU or device tensors."""
    add: dict[int, torch.Tensor] = field(default_factory=dict)
    cap: dict[int, tuple[torch.Tensor, float]] = field(default_factory=dict)

    @property
    def layers(self) -> set[int]:
        return set(self.add) | set(self.cap)

    def describe(self) -> dict:
        return {"add_layers": sorted(self.add), "cap_layers": sorted(self.cap),
                "add_norm": {str(k): float(v.float().norm()) for k, v in sorted(self.add.items())},
                "cap_tau": {str(k): float(t) for k, (_, t) in sorted(self.cap.items())}}


def steer(vectors: dict[int, torch.Tensor], alpha: float) -> Intervention:
    return Intervention(add={int(k): float(alpha) * v.to(torch.float32) for k, v in vectors.items()})


def cap(directions: dict[int, torch.Tensor], taus: dict[int, float]) -> Intervention:
    units = {int(k): v.to(torch.float32) / v.to(torch.float32).norm() for k, v in directions.items()}
    return Intervention(cap={k: (units[k], float(taus[k])) for k in units})


def apply_rows(x: torch.Tensor, add: torch.Tensor | None, unit: torch.Tensor | None, tau: torch.Tensor | None,
               on: torch.Tensor | None) -> torch.Tensor:
    """x: (rows, seq, d); add, unit: (rows, d) or None; tau, on: (rows,) float32 (on = 1 where a row caps)."""
    if add is not None:
        x = x + add[:, None, :].to(x.dtype)
    if unit is not None:
        proj = (x.float() * unit[:, None, :]).sum(-1)
        raise_by = torch.clamp(tau[:, None] - proj, min=0.0) * on[:, None]
        x = x + (raise_by[..., None] * unit[:, None, :]).to(x.dtype)
    return x


def layers_of(items: Iterable) -> list[int]:
    """Every layer any item's ``intervention`` touches (items: anything with an ``intervention``)."""
    out: set[int] = set()
    for it in items:
        iv = getattr(it, "intervention", None)
        if iv is not None:
            out |= iv.layers
    return sorted(out)


def _row_tensors(per_row: Sequence[Intervention | None], layer: int, d: int, device, with_add: bool, with_cap: bool):
    n = len(per_row)
    add = torch.zeros((n, d), dtype=torch.float32) if with_add else None
    unit = torch.zeros((n, d), dtype=torch.float32) if with_cap else None
    tau = torch.zeros(n, dtype=torch.float32) if with_cap else None
    on = torch.zeros(n, dtype=torch.float32) if with_cap else None
    for i, iv in enumerate(per_row):
        if iv is None:
            continue
        if with_add and layer in iv.add:
            add[i] = iv.add[layer].float().cpu()
        if with_cap and layer in iv.cap:
            u, t = iv.cap[layer]
            unit[i], tau[i], on[i] = u.float().cpu(), t, 1.0
    mv = (lambda t: None if t is None else t.to(device))
    return mv(add), mv(unit), mv(tau), mv(on)


@contextmanager
def hooks(model, per_row: Sequence[Intervention | None]) -> Iterator[None]:
    """Forward hooks on the decoder blocks applying ``per_row[i]`` to batch row i (no-op when all None)."""
    from .model_blocks import find_decoder_blocks, hidden_size

    live = [iv for iv in per_row if iv is not None]
    if not live:
        yield
        return
    _, blocks = find_decoder_blocks(model)
    d = hidden_size(model)
    device = next(model.parameters()).device
    handles = []

    def make(layer: int, with_add: bool, with_cap: bool):
        tensors = _row_tensors(per_row, layer, d, device, with_add, with_cap)

        def hook(_module, _args, output):
            if isinstance(output, torch.Tensor):
                return apply_rows(output, *tensors)
            return (apply_rows(output[0], *tensors), *output[1:])

        return hook

    try:
        for layer in sorted(set().union(*(iv.layers for iv in live))):
            if not 0 <= layer < len(blocks):
                raise ValueError(f"intervention at layer {layer}: the model has {len(blocks)} decoder blocks")
            with_add = any(layer in iv.add for iv in live)
            with_cap = any(layer in iv.cap for iv in live)
            # prepend: capture's own hooks (registered later or earlier) then read the intervened output
            handles.append(blocks[layer].register_forward_hook(make(layer, with_add, with_cap), prepend=True))
        yield
    finally:
        for h in handles:
            h.remove()


class RowBuffers:
    """Static per-slot buffers for the slot engine's decode step (see the module docstring)."""

    def __init__(self, layers: Sequence[int], rows: int, d: int, device, kinds: dict[int, tuple[bool, bool]]):
        self.layers = sorted(int(x) for x in layers)
        self.kinds = kinds  # layer -> (adds, caps): fixed at construction
        z = lambda *s: torch.zeros(s, dtype=torch.float32, device=device)  # noqa: E731
        self.add = {x: z(rows, d) for x in self.layers if kinds[x][0]}
        self.unit = {x: z(rows, d) for x in self.layers if kinds[x][1]}
        self.tau = {x: z(rows) for x in self.layers if kinds[x][1]}
        self.on = {x: z(rows) for x in self.layers if kinds[x][1]}

    @classmethod
    def for_items(cls, items: Iterable, rows: int, d: int, device) -> "RowBuffers | None":
        ivs = [it.intervention for it in items if getattr(it, "intervention", None) is not None]
        if not ivs:
            return None
        layers = sorted(set().union(*(iv.layers for iv in ivs)))
        kinds = {x: (any(x in iv.add for iv in ivs), any(x in iv.cap for iv in ivs)) for x in layers}
        return cls(layers, rows, d, device, kinds)

    def apply(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        if layer not in self.kinds:
            return x
        return apply_rows(x, self.add.get(layer), self.unit.get(layer), self.tau.get(layer), self.on.get(layer))

    def place(self, slots: torch.Tensor, per_row: Sequence[Intervention | None]) -> None:
        """Write the rows of ``slots`` in place (zeros for a request without an intervention)."""
        d = next(iter((self.add or self.unit).values())).shape[1]
        for iv in per_row:
            if iv is not None and any(x not in self.kinds or (x in iv.add and x not in self.add)
                                      or (x in iv.cap and x not in self.unit) for x in iv.layers):
                raise ValueError(f"intervention at layers {sorted(iv.layers)}: the engine's buffers cover "
                                 f"{self.kinds}; build it from every request of the run")
        for x in self.layers:
            add, unit, tau, on = _row_tensors(per_row, x, d, slots.device, x in self.add, x in self.unit)
            if add is not None:
                self.add[x][slots] = add
            if unit is not None:
                self.unit[x][slots], self.tau[x][slots], self.on[x][slots] = unit, tau, on
