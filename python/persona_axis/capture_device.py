"""Capture, device side: token-budget batches of prepared conversations through the truncated forward,
each requested block's output aggregated on the device in float32 and copied to pinned host memory."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .batching import plan_batches
from .capture_prepare import PreparedRole
from .errors import CaptureError
from .model_blocks import TruncatedForward, hidden_size
from .spans import EncodedConversation

AGGREGATIONS = ("mean", "last", "none")


@dataclass
class RoleResult:
    tensors: dict[int, torch.Tensor]  # float32 host tensors, rows in PreparedRole order
    token_offsets: list[int] | None  # aggregation 'none': rows of sample i = offsets[i]:offsets[i+1]
    padded_tokens: int
    batches: int
    seconds: float


class ActivationCapturer:
    """Runs prepared roles through one loaded model; returns host float32 tensors per layer."""

    def __init__(self, model: torch.nn.Module, layers: Sequence[int], aggregation: str = "mean", *,
                 max_batch_tokens: int = 16384, pad_token_id: int = 0):
        if aggregation not in AGGREGATIONS:
            raise CaptureError(f"--aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
        self.model = model
        self.forward = TruncatedForward(model, layers)
        self.layers = self.forward.layers
        self.aggregation = aggregation
        self.max_batch_tokens = int(max_batch_tokens)
        self.pad_token_id = int(pad_token_id)
        self.device = next(model.parameters()).device
        self.hidden = hidden_size(model)
        self.cuda = self.device.type == "cuda"

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(array)
        if self.cuda:
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def _run_batch(self, convs: Sequence[EncodedConversation]) -> torch.Tensor:
        """(rows, n_layers, hidden) float32 on the device: rows = conversations (mean/last) or span tokens (none)."""
        b = len(convs)
        s = max(len(c.input_ids) for c in convs)
        ids = np.full((b, s), self.pad_token_id, dtype=np.int64)
        for r, c in enumerate(convs):
            ids[r, : len(c.input_ids)] = c.input_ids
        agg = self.aggregation
        if agg == "mean":
            mask = np.zeros((b, 1, s), dtype=np.float32)
            for r, c in enumerate(convs):
                mask[r, 0, c.span_start:c.span_end] = 1.0
            counts = np.array([[c.span_length] for c in convs], dtype=np.float32)
            mask_t, counts_t = self._to_device(mask), self._to_device(counts)
        elif agg == "last":
            last_t = self._to_device(np.array([c.span_end - 1 for c in convs], dtype=np.int64))
            rows_t = self._to_device(np.arange(b, dtype=np.int64))
        else:
            flat = np.concatenate([np.arange(r * s + c.span_start, r * s + c.span_end, dtype=np.int64)
                                   for r, c in enumerate(convs)])
            flat_t = self._to_device(flat)
        ids_t = self._to_device(ids)
        out: dict[int, torch.Tensor] = {}

        def on_layer(index: int, h: torch.Tensor) -> None:
            if agg == "mean":
                # float32 masked sum over the span (a batched mat-vec; deterministic), then / count
                out[index] = torch.bmm(mask_t, h.float()).squeeze(1) / counts_t
            elif agg == "last":
                out[index] = h[rows_t, last_t].float()
            else:
                out[index] = h.reshape(-1, h.shape[-1]).index_select(0, flat_t).float()

        self.forward(ids_t, on_layer)
        return torch.stack([out[i] for i in self.layers], dim=1)

    def capture(self, prep: PreparedRole, on_progress: Callable[[int], None] | None = None) -> RoleResult:
        t0 = time.perf_counter()
        n = len(prep.convs)
        nl = len(self.layers)
        lengths = [len(c.input_ids) for c in prep.convs]
        batches = plan_batches(lengths, self.max_batch_tokens) if n else []
        if self.aggregation == "none":
            counts = [c.span_length for c in prep.convs]
            offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).tolist()
            total_rows = offsets[-1]
        else:
            offsets = None
            total_rows = n
        bufs = {layer: torch.empty((total_rows, self.hidden), dtype=torch.float32) for layer in self.layers}
        pending: tuple | None = None

        def drain(p: tuple) -> None:
            staged, event, batch = p
            if event is not None:
                event.synchronize()
            if offsets is None:
                rows = torch.tensor(batch.indices, dtype=torch.long)
                for j, layer in enumerate(self.layers):
                    bufs[layer].index_copy_(0, rows, staged[:, j])
            else:
                pos = 0
                for i in batch.indices:
                    k = offsets[i + 1] - offsets[i]
                    for j, layer in enumerate(self.layers):
                        bufs[layer][offsets[i]:offsets[i + 1]].copy_(staged[pos:pos + k, j])
                    pos += k
            if on_progress is not None:
                on_progress(sum(lengths[i] for i in batch.indices))

        with torch.inference_mode():
            for batch in batches:
                res = self._run_batch([prep.convs[i] for i in batch.indices])
                if self.cuda:
                    staged = torch.empty(res.shape, dtype=res.dtype, pin_memory=True)
                    staged.copy_(res, non_blocking=True)
                    event = torch.cuda.Event()
                    event.record()
                else:
                    staged, event = res, None
                del res
                if pending is not None:
                    drain(pending)
                pending = (staged, event, batch)
            if pending is not None:
                drain(pending)
        assert all(t.shape == (total_rows, self.hidden) for t in bufs.values()) and nl == len(bufs)
        return RoleResult(bufs, offsets, sum(b.padded_tokens for b in batches), len(batches),
                          time.perf_counter() - t0)

