"""Finding the decoder block list of any transformers decoder-only model, and a truncated forward.

Layer ``i`` is the output of decoder block ``i``: the raw residual stream, equal to transformers'
``hidden_states[i + 1]`` for every block except the last (transformers replaces
``hidden_states[num_layers]`` with the final-norm output, ``last_hidden_state``; we keep the raw
block output there too).

The block list is found generically: the ``nn.ModuleList`` in the module tree whose length equals the
text config's ``num_hidden_layers`` (``model.layers`` of Llama/OLMo-2/Qwen/Gemma, ``gpt_neox.layers``,
``transformer.h`` ...); if several qualify, the one holding the most parameters. The forward is
stopped right after the last requested block by an exception raised from that block's forward hook,
so later blocks, the final norm and the LM head never run, for any architecture.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from .errors import InputError


class ModelStructureError(InputError):
    """The model's decoder blocks could not be found, or a layer index is out of range."""


class StopForward(Exception):
    """Raised from the last requested block's hook to end the forward pass early."""


def text_config(config: Any) -> Any:
    get = getattr(config, "get_text_config", None)
    return get() if callable(get) else config


def num_hidden_layers(model: nn.Module) -> int:
    n = getattr(text_config(model.config), "num_hidden_layers", None)
    if not isinstance(n, int) or n <= 0:
        raise ModelStructureError(
            f"{type(model).__name__}: config has no positive integer num_hidden_layers; cannot locate decoder blocks"
        )
    return n


def hidden_size(model: nn.Module) -> int:
    return int(text_config(model.config).hidden_size)


def find_decoder_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """(dotted path, block list). Fails clearly when no ModuleList matches num_hidden_layers."""
    n = num_hidden_layers(model)
    candidates: list[tuple[int, str, nn.ModuleList]] = []
    lists: list[str] = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList):
            continue
        lists.append(f"{name or '<root>'} (len {len(module)})")
        if len(module) != n or n == 0:
            continue
        if len({type(b) for b in module}) != 1:
            continue
        params = sum(p.numel() for p in module.parameters())
        candidates.append((params, name, module))
    if not candidates:
        raise ModelStructureError(
            f"{type(model).__name__}: no nn.ModuleList of {n} identical blocks (config num_hidden_layers) found; "
            f"module lists present: {', '.join(lists) or 'none'}. This architecture is not supported by capture"
        )
    candidates.sort(key=lambda c: (-c[0], c[1]))
    if len(candidates) > 1 and candidates[0][0] == candidates[1][0]:
        raise ModelStructureError(
            f"{type(model).__name__}: ambiguous decoder blocks: {candidates[0][1]} and {candidates[1][1]} both hold "
            f"{n} blocks of the same size"
        )
    return candidates[0][1], candidates[0][2]


def base_model(model: nn.Module) -> nn.Module:
    """The model without its LM head (``model.model``, ``gpt_neox`` ...), or the model itself."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


def normalize_layers(layers: Sequence[int], n: int) -> list[int]:
    """Sorted unique layer indices in [0, n); negative indices count from the end (-1 = last block)."""
    out = set()
    for layer in layers:
        i = int(layer)
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise ModelStructureError(f"layer {i} out of range: the model has {n} decoder blocks (0..{n - 1})")
        out.add(j)
    if not out:
        raise ModelStructureError("no layers requested")
    return sorted(out)


def _block_output(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    for attr in ("last_hidden_state", "hidden_states"):
        hs = getattr(output, attr, None)
        if isinstance(hs, torch.Tensor):
            return hs
    raise ModelStructureError(f"decoder block returned {type(output).__name__}; expected a tensor or a tuple")


class TruncatedForward:
    """Run the base model up to the last requested block, handing each requested block's output
    (batch, seq, hidden) to ``on_layer(layer_index, hidden)`` as soon as it is computed.

    ``on_layer`` must consume the tensor (aggregate it); nothing is kept here."""

    def __init__(self, model: nn.Module, layers: Sequence[int]):
        self.model = model
        self.base = base_model(model)
        self.block_path, self.blocks = find_decoder_blocks(model)
        self.num_layers = len(self.blocks)
        self.layers = normalize_layers(layers, self.num_layers)
        self.max_layer = self.layers[-1]

    @contextmanager
    def _hooks(self, on_layer: Callable[[int, torch.Tensor], None], seen: list[int]) -> Iterator[None]:
        handles = []

        def make(index: int):
            def hook(_module, _args, output):
                on_layer(index, _block_output(output))
                seen.append(index)
                if index == self.max_layer:
                    raise StopForward()

            return hook

        try:
            for i in self.layers:
                handles.append(self.blocks[i].register_forward_hook(make(i)))
            yield
        finally:
            for h in handles:
                h.remove()

    def __call__(self, input_ids: torch.Tensor, on_layer: Callable[[int, torch.Tensor], None], **kwargs: Any) -> None:
        seen: list[int] = []
        with self._hooks(on_layer, seen):
            try:
                self.base(input_ids=input_ids, use_cache=False, **kwargs)
            except StopForward:
                pass
        if seen != self.layers:
            raise ModelStructureError(
                f"{type(self.model).__name__}: the forward pass ran blocks {seen} of {self.block_path}, expected "
                f"{self.layers}; this architecture's forward does not run its block list in order"
            )


class _CompiledForward:
    """A block's forward through torch.compile (dynamic shapes); on a compile failure, warns once
    and falls back to the block's own forward for good. Hooks stay outside the compiled region."""

    def __init__(self, block: nn.Module):
        self.original = block.forward
        self.compiled = torch.compile(self.original, dynamic=True)
        self.failed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            try:
                return self.compiled(*args, **kwargs)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as e:  # noqa: BLE001 - any compiler failure: run eagerly instead
                self.failed = True
                import sys

                print(f"warning: torch.compile failed for a decoder block ({type(e).__name__}: {str(e)[:200]}); "
                      "running it eagerly", file=sys.stderr)
        return self.original(*args, **kwargs)


def compile_blocks(model: nn.Module) -> int:
    """torch.compile every decoder block's forward (fuses norms, rotary and elementwise ops). Returns
    the number of blocks wrapped."""
    import torch._dynamo

    cfg = torch._dynamo.config
    # one compiled graph per block instance may be kept (guards on the module): allow all of them
    for name in ("cache_size_limit", "recompile_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(getattr(cfg, name), 1024))
    if hasattr(cfg, "accumulated_cache_size_limit"):
        cfg.accumulated_cache_size_limit = max(cfg.accumulated_cache_size_limit, 8192)
    if hasattr(cfg, "accumulated_recompile_limit"):
        cfg.accumulated_recompile_limit = max(cfg.accumulated_recompile_limit, 8192)
    _, blocks = find_decoder_blocks(model)
    for block in blocks:
        if not isinstance(block.forward, _CompiledForward):
            block.forward = _CompiledForward(block)
    return len(blocks)


def uncompile_blocks(model: nn.Module) -> None:
    """Undo compile_blocks: every block runs its own forward again."""
    _, blocks = find_decoder_blocks(model)
    for block in blocks:
        if isinstance(block.forward, _CompiledForward):
            del block.forward  # the instance attribute shadowed the class's forward
