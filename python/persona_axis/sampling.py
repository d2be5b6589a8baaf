"""Token sampling by inverse CDF with one uniform draw per row (the row's own generator).

``sample_full``: the reference algorithm: softmax at the temperature, a full sort, the smallest prefix
of the sorted tokens whose mass reaches top_p (the first token always stays), and the row's uniform
``u`` scaled to the kept mass picks a token.

``sample_fast``: the same answer without sorting the whole vocabulary:
- top_p >= 1: nothing is cut, so the CDF runs over the vocabulary in index order (no sort at all);
- top_p < 1: ``torch.topk`` takes the K most probable tokens (sorted); where their mass reaches
  top_p, the nucleus lies inside them and the sorted-prefix rule is applied to them alone. A row
  whose top-K mass falls short is flagged ``covered = False``; the caller re-samples it with
  ``sample_full`` (exact, rare for a trained model at temperature 0.7).
Every operation works row by row, so a row's token depends only on its own logits and ``u``.
All shapes are fixed (no host synchronisation), so ``sample_fast`` can run inside a CUDA graph.
"""
from __future__ import annotations

import torch

TOP_K_PREFILTER = 256


def _pick(kept_probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index into ``kept_probs`` (rows of non-negative masses) chosen by inverse CDF with ``u``."""
    cum = kept_probs.cumsum(dim=-1)
    target = (u.to(cum.device, torch.float64) * cum[:, -1].double()).unsqueeze(-1).to(cum.dtype)
    pos = torch.searchsorted(cum, target, right=True)
    # Never step onto a zero-probability position (rounding at the very end of the CDF).
    last = (kept_probs > 0).sum(dim=-1, keepdim=True) - 1
    return torch.minimum(pos, last.clamp(min=0))


def _nucleus(sorted_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero every sorted probability past the smallest prefix whose mass reaches top_p."""
    keep = (sorted_probs.cumsum(dim=-1) - sorted_probs) < top_p
    return sorted_probs * keep


def sample_full(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, sorted_idx = torch.sort(probs, dim=-1, descending=True)
    if top_p < 1.0:
        sorted_probs = _nucleus(sorted_probs, top_p)
    return sorted_idx.gather(-1, _pick(sorted_probs, u)).squeeze(-1)


def sample_fast(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float,
                top_k: int = TOP_K_PREFILTER) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, covered): ``covered[i]`` False means row i must be re-sampled with ``sample_full``."""
    rows = logits.shape[0]
    if temperature <= 0:
        return logits.argmax(dim=-1), torch.ones(rows, dtype=torch.bool, device=logits.device)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1.0:
        return _pick(probs, u).squeeze(-1), torch.ones(rows, dtype=torch.bool, device=logits.device)
    k = min(top_k, probs.shape[-1])
    top_probs, top_idx = torch.topk(probs, k, dim=-1, sorted=True)
    covered = top_probs.sum(dim=-1) >= top_p if k < probs.shape[-1] else torch.ones(rows, dtype=torch.bool,
                                                                                      device=logits.device)
    kept = _nucleus(top_probs, top_p)
    return top_idx.gather(-1, _pick(kept, u)).squeeze(-1), covered


def sample_exact(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """``sample_fast`` with the fallback applied (eager: the fallback needs a host check)."""
    toks, covered = sample_fast(logits, u, temperature, top_p)
    if not bool(covered.all()):
        idx = (~covered).nonzero().squeeze(-1)
        toks = toks.clone()
        toks[idx] = sample_full(logits[idx], u[idx], temperature, top_p)
    return toks
