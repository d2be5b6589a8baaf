"""Which comparisons are valid between two checkpoints.

Checkpoints of one pretraining run (base -> SFT -> DPO -> RLVR steps) share a residual-stream basis:
projecting one onto another's axis or PCs, cosines between their vectors and L2 shifts are meaningful.
Separate pretraining runs (the alignment-pretraining models, a random-init control) share no basis;
between them only basis-free numbers are valid: each model's own PCA and cos(axis, PC1), the default's
position among its own roles, own-unit norms, correlations of PC loadings over the common roles, and
the similarity of their role-by-role geometry (linear CKA, RSA).
"""
from __future__ import annotations

from persona_axis.errors import InputError

#: Numbers that need the reference's basis (its axis, PCs or vectors).
SHARED_BASIS_REF = (
    "cos_axis_ref", "default_axis_projection", "default_axis_position", "mean_role_axis_projection",
    "default_pc1", "default_pc2", "default_pc3", "default_pc4", "default_pc5", "cos_own_pc1_ref_pc1",
    "abs_cos_own_pc2_ref_pc2", "abs_cos_own_pc3_ref_pc3", "own_unit_default_axis",
)
#: Numbers that need the previous checkpoint's basis (and, for the axis shifts, the reference's).
SHARED_BASIS_PREV = ("mean_role_shift_l2", "mean_role_shift_axis", "default_shift_axis", "own_unit_role_shift")
#: Numbers valid between any two models.
BASIS_FREE = (
    "own_unit_axis_norm", "own_explained_variance_pc1", "own_explained_variance_pc2", "own_explained_variance_pc3",
    "own_cos_pc1_axis", "own_default_pc1_position", "pc1_loading_corr_ref", "pc2_abs_loading_corr_ref",
    "pc3_abs_loading_corr_ref", "cka_ref", "rsa_ref",
)


class LineageError(InputError):
    """A shared-basis comparison between checkpoints of different pretraining runs."""


def require_same_lineage(what: str, a: str, lineage_a: str, b: str, lineage_b: str) -> None:
    if lineage_a != lineage_b:
        raise LineageError(
            f"{what}: checkpoint {a} (lineage {lineage_a}) and {b} (lineage {lineage_b}) come from different "
            "pretraining runs; their residual streams share no basis, so this shared-basis comparison is refused. "
            f"Compare them with basis-free numbers ({', '.join(BASIS_FREE)})")


def refusal(name: str, lineage: str, other: str, other_lineage: str, role: str) -> str | None:
    """The message recorded when ``name``'s shared-basis numbers against ``other`` (its ``role``:
    reference or previous checkpoint) are refused; None when the lineages agree."""
    try:
        require_same_lineage(f"{role} comparison", name, lineage, other, other_lineage)
    except LineageError as e:
        return str(e)
    return None


def parse_lineages(specs: list[str] | None, names: list[str], default: str = "main") -> dict[str, str]:
    """``NAME=LINEAGE`` items -> {checkpoint: lineage}; unnamed checkpoints get ``default``."""
    out = {n: default for n in names}
    for spec in specs or []:
        name, sep, lin = spec.partition("=")
        if not sep or not lin:
            raise InputError(f"--lineage {spec!r}: expected NAME=LINEAGE")
        if name not in out:
            raise InputError(f"--lineage {spec!r}: {name!r} is not one of the --checkpoint names {names}")
        out[name] = lin
    return out
