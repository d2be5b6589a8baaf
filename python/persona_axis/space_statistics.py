"""Is the persona space's structure more than noise, and how precise are its numbers?

* Label-shuffle null: the labels of the responses (the default's included, as one more label) are
  permuted N times, keeping each label's count; role vectors, axis and PCA are recomputed each time.
  This is the null of "responses carry no information about which role (or the default) produced
  them". Every label answers the same questions under the same system-prompt slots, so responses are
  exchangeable only within a (slot, question) cell: the default, ``stratified``, permutes labels within
  each cell (each label keeps its count in every cell, so each shuffled role keeps the design's
  question mix); ``plain`` permutes across all rows, which gives each shuffled role an uneven question
  mix, makes that mix a direction of persona space and inflates the null (docs/statistics.md).
  p-value (one-sided, upper): ``(1 + #{null >= observed}) / (N + 1)``, so N = 1000 permutations
  resolve p < 0.01. It does NOT test whether the structure comes from the texts rather than the
  model: that is the random-init control checkpoint's job.
* Paired bootstrap: questions (and, optionally, system-prompt slots) are resampled with replacement;
  a resampled cell (prompt, question) enters with weight (times prompt drawn) x (times question drawn).
  The weights depend only on the seed and the cells present, so every checkpoint captured on the same
  transcripts gets the same resamples (paired). 95% percentile intervals. Resampling with replacement
  adds noise to the role vectors, so variance-type numbers (PC1's variance fraction) resample below
  their value; ``bootstrap_mean`` shows that bias. Differences between checkpoints share it (paired).

Each is vectorised: a shuffle is one scatter-add of the rows (n x d); a bootstrap chunk is one GEMM of
the (B, cells) weight matrix with the (cells, labels x d) per-cell sums; the PCAs of a chunk are one
batched R x R eigenproblem (:mod:`persona_axis.batched_space`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from persona_axis.batched_space import HEADLINE_KEYS, batched_space, headline
from persona_axis.layer_rows import Cells, LayerRows, weighted_means

#: Memory for one chunk of (B, L, d) float64 role vectors.
CHUNK_BYTES = 256 * 2 ** 20
CI_LEVEL = 0.95
#: statistics.null: how the label-shuffle null permutes (module docstring).
NULLS = ("stratified", "plain")
NULL_DESCRIPTIONS = {
    "stratified": "label shuffle within each (system-prompt slot, question) cell: responses' labels (roles and "
                  "the default) permuted among the responses to the same question under the same slot, each "
                  "label's count kept in every cell",
    "plain": "label shuffle across all responses: labels (roles and the default) permuted, each label's count kept "
             "(ignores the design: shuffled roles get uneven question mixes, which inflates the null)",
}


def chunk_size(n_labels: int, d: int, budget: int = CHUNK_BYTES) -> int:
    return max(1, budget // (n_labels * d * 8 * 3))


def strata(data: LayerRows) -> torch.Tensor:
    """(n,) int64 stratum of each row: its (system-prompt slot, question) cell."""
    q = int(data.question.max()) + 1 if len(data.question) else 1
    return torch.from_numpy(data.prompt * q + data.question)


class Permuter:
    """Draws label permutations: ``plain`` over all rows, ``stratified`` within each stratum (a row's
    label is replaced by the label of a random row of the same stratum, each drawn once)."""

    def __init__(self, labels: torch.Tensor, stratum: torch.Tensor, null: str, seed: int):
        if null not in NULLS:
            raise ValueError(f"null must be one of {', '.join(NULLS)}, got {null!r}")
        self.labels, self.null = labels, null
        self.g = torch.Generator().manual_seed(int(seed))
        self.stratum = stratum.to(torch.float64)
        #: rows grouped by stratum, in row order: position j of the grouping belongs to row grouped[j].
        self.grouped = torch.argsort(stratum, stable=True).to(labels.device)

    def draw(self) -> torch.Tensor:
        n = len(self.labels)
        if self.null == "plain":
            return self.labels[torch.randperm(n, generator=self.g).to(self.labels.device)]
        # rows grouped by stratum in a random order within each stratum: same group sizes as ``grouped``
        shuffled = torch.argsort(self.stratum + torch.rand(n, generator=self.g, dtype=torch.float64) * 0.5)
        out = torch.empty_like(self.labels)
        out[self.grouped] = self.labels[shuffled.to(self.labels.device)]
        return out


def label_shuffle_null(data: LayerRows, n_perm: int, seed: int, null: str = "stratified") -> dict[str, np.ndarray]:
    """N shuffles -> each headline number's null distribution, (N,) arrays."""
    n, d = data.rows.shape
    L = len(data.labels)
    counts = data.counts.to(torch.float64)
    # Each shuffle reads all n x d rows once (memory-bound): on a GPU, when there is one, it is ~100x faster.
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows, labels = data.rows.to(dev), data.label.to(dev)
    perm = Permuter(labels, strata(data), null, seed)
    out: dict[str, list[np.ndarray]] = {k: [] for k in HEADLINE_KEYS}
    step = chunk_size(L, d)
    for start in range(0, n_perm, step):
        b = min(step, n_perm - start)
        means = torch.empty(b, L, d, dtype=torch.float64)
        for i in range(b):
            lab = perm.draw()
            sums = torch.zeros(L, d, dtype=torch.float32, device=dev).index_add_(0, lab, rows)
            means[i] = sums.cpu().to(torch.float64) / counts[:, None]
        stats = headline(batched_space(means[:, :-1], means[:, -1], k=1))
        for k in HEADLINE_KEYS:
            out[k].append(stats[k].numpy())
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def resample_weights(cells: Cells, n_boot: int, seed: int, resample_prompts: bool = True) -> torch.Tensor:
    """(n_boot, C) cell weights: questions (and prompt slots) drawn with replacement. Depends only on
    the seed and on which cells exist, so it is the same for every checkpoint of a study."""
    rng = np.random.default_rng(int(seed))
    qs, ps = cells.questions, cells.prompts
    wq = np.zeros((n_boot, cells.Q))
    wq[:, qs] = rng.multinomial(len(qs), np.full(len(qs), 1 / len(qs)), size=n_boot)
    wp = np.zeros((n_boot, cells.P))
    if resample_prompts:
        wp[:, ps] = rng.multinomial(len(ps), np.full(len(ps), 1 / len(ps)), size=n_boot)
    else:
        wp[:, ps] = 1.0
    return torch.from_numpy((wp[:, :, None] * wq[:, None, :]).reshape(n_boot, -1))


def bootstrap_headline(cells: Cells, weights: torch.Tensor) -> dict[str, np.ndarray]:
    """Each headline number over the resamples (rows of ``weights``), (B,) arrays (NaN where a
    resample left a label without responses)."""
    C, L, d = cells.sums.shape
    out: dict[str, list[np.ndarray]] = {k: [] for k in HEADLINE_KEYS}
    step = chunk_size(L, d)
    for start in range(0, weights.shape[0], step):
        means = weighted_means(cells, weights[start:start + step])
        stats = headline(batched_space(means[:, :-1], means[:, -1], k=1))
        for k in HEADLINE_KEYS:
            out[k].append(stats[k].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def percentile_interval(samples: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    s = samples[np.isfinite(samples)]
    if not len(s):
        return float("nan"), float("nan")
    lo, hi = np.percentile(s, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def p_value_upper(observed: float, null: np.ndarray) -> float:
    """One-sided permutation p-value, (1 + #{null >= observed}) / (N + 1)."""
    if not np.isfinite(observed) or not len(null):
        return float("nan")
    return float((1 + np.sum(null >= observed)) / (len(null) + 1))


@dataclass
class StatSettings:
    permutations: int = 1000
    bootstrap: int = 1000
    seed: int = 0
    resample_prompts: bool = True
    null: str = "stratified"

    def describe(self) -> dict:
        return {"permutations": self.permutations, "bootstrap": self.bootstrap, "seed": self.seed,
                "resample_prompts": self.resample_prompts, "ci_level": CI_LEVEL, "ci_method": "percentile",
                "null": self.null,
                "null_description": NULL_DESCRIPTIONS[self.null],
                "p_value": "one-sided upper: (1 + #{null >= value}) / (N + 1)",
                "resample_unit": "question" + (" x system-prompt slot" if self.resample_prompts else "")}


def headline_statistics(values: dict[str, float], data: LayerRows, cells: Cells, settings: StatSettings) -> dict:
    """{number: {value, ci_low, ci_high, null_mean, null_p95, p_value}} plus the raw null samples."""
    null = label_shuffle_null(data, settings.permutations, settings.seed, settings.null) if settings.permutations else {}
    boot = (bootstrap_headline(cells, resample_weights(cells, settings.bootstrap, settings.seed, settings.resample_prompts))
            if settings.bootstrap else {})
    out: dict[str, dict] = {}
    for k in HEADLINE_KEYS:
        v = float(values[k])
        lo, hi = percentile_interval(boot[k]) if k in boot else (float("nan"), float("nan"))
        nk = null.get(k, np.zeros(0))
        nf = nk[np.isfinite(nk)]
        out[k] = {"value": v, "ci_low": lo, "ci_high": hi,
                  "null_mean": float(nf.mean()) if len(nf) else float("nan"),
                  "null_p95": float(np.percentile(nf, 95)) if len(nf) else float("nan"),
                  "p_value": p_value_upper(v, nk),
                  "bootstrap_mean": float(np.nanmean(boot[k])) if k in boot and np.isfinite(boot[k]).any() else float("nan"),
                  "bootstrap_failed": int(np.sum(~np.isfinite(boot[k]))) if k in boot else 0}
    return {"numbers": out, "null_samples": null, "settings": settings.describe()}


def persona_space_statistics(ps, settings: StatSettings) -> dict:
    """Null and intervals of a :class:`persona_axis.persona_space.PersonaSpace`'s headline numbers."""
    from persona_axis.layer_rows import cell_sums, load_layer_rows
    from persona_axis.persona_space import summary_dict

    s = summary_dict(ps)
    at_layer = next(r for r in ps.per_layer if r["layer"] == ps.pca_layer)
    values = {"cos_axis_pc1": s["pca"]["cos_axis_pc1"], "explained_variance_pc1": s["pca"]["explained_variance_ratio"][0],
              "default_pc1_position": s["pca"]["default_position"]["pc1"],
              "default_axis_position": at_layer["default_axis_position"]}
    data = load_layer_rows(ps.activations_dir, ps.selection, ps.pca_layer)
    return headline_statistics(values, data, cell_sums(data), settings)
