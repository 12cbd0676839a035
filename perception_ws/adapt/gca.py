"""Geodesic correlation alignment (GCA, SqueezeSegV2; docs/algorithms.md §5): the covariance of per-pixel
features and geodesic distances between two such matrices on the manifold of symmetric positive definite
(SPD) matrices.

Both distances go through functions of a symmetric matrix computed from its eigendecomposition. Autograd's
own eigenvector gradient divides by eigenvalue gaps and becomes inf/NaN when two eigenvalues coincide (two
identical batches, an isotropic covariance); here the backward pass is the Daleckii-Krein formula instead,
whose divided differences have finite limits (the function's derivative) for equal eigenvalues.
Everything runs in float64, outside any autocast region, however the features came (bf16 under AMP).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch

from perception_ws.errors import PerceptionError

Distance = Literal["log_euclidean", "affine_invariant"]
DISTANCES: tuple[str, ...] = ("log_euclidean", "affine_invariant")
#: added to the diagonal of every covariance: keeps it positive definite (a constant feature, fewer pixels
#: than channels) and its logarithm finite.
DEFAULT_EPS = 1e-3
#: relative eigenvalue gap under which two eigenvalues count as equal in a divided difference.
_CLOSE = 1e-9

_DividedDifference = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def feature_covariance(features: torch.Tensor, valid: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """(C, C) float64 covariance of the C-dimensional feature vectors of the valid pixels of a batch.

    ``features``: (B, C, H, W); ``valid``: (B, H, W) bool. Centred, divided by (N - 1), plus ``eps`` * I.
    """
    if features.ndim != 4 or valid.shape != (features.shape[0], *features.shape[2:]):
        raise PerceptionError(
            f"gca: expected features (B, C, H, W) and a valid mask (B, H, W); got {tuple(features.shape)} "
            f"and {tuple(valid.shape)}"
        )
    count = int(valid.sum())
    if count < 2:
        raise PerceptionError(f"gca: a batch needs at least 2 valid pixels for a covariance; it has {count}")
    with torch.autocast(features.device.type, enabled=False):  # bf16 sums over ~10^5 pixels lose digits
        vectors = features.permute(0, 2, 3, 1)[valid.to(torch.bool)].double()  # (N, C)
        centred = vectors - vectors.mean(dim=0, keepdim=True)
        covariance = centred.T @ centred / (count - 1)
        return covariance + eps * torch.eye(covariance.shape[0], dtype=torch.float64, device=covariance.device)


def _log_divided(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(log a - log b) / (a - b), and 1 / a where a == b; log1p keeps it accurate for close a, b."""
    gap = a - b
    close = gap.abs() <= _CLOSE * torch.maximum(a, b)
    safe_gap = torch.where(close, torch.ones_like(gap), gap)
    return torch.where(close, 2.0 / (a + b), torch.log1p(gap / b) / safe_gap)


def _inv_sqrt_divided(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(a^-1/2 - b^-1/2) / (a - b) in closed form, which is also right (-a^-3/2 / 2) where a == b."""
    ra, rb = a.sqrt(), b.sqrt()
    return -1.0 / (ra * rb * (ra + rb))


_FUNCTIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], _DividedDifference]] = {
    "log": (torch.log, _log_divided),
    "inv_sqrt": (torch.rsqrt, _inv_sqrt_divided),
}


class _SymmetricFunction(torch.autograd.Function):
    """f(A) = V f(Λ) Vᵀ for symmetric positive definite A, with the Daleckii-Krein backward:
    dL/dA = V (D ∘ (Vᵀ G V)) Vᵀ, D_ij the divided difference of f at (λ_i, λ_j), G the symmetrised grad.
    """

    @staticmethod
    def forward(ctx: Any, matrix: torch.Tensor, name: str) -> torch.Tensor:
        values, vectors = torch.linalg.eigh(matrix)
        if not bool((values > 0).all()):
            raise PerceptionError(f"gca: a covariance is not positive definite (smallest eigenvalue {values.min():g})")
        function = _FUNCTIONS[name][0]
        ctx.name = name
        ctx.save_for_backward(values, vectors)
        result: torch.Tensor = (vectors * function(values)) @ vectors.T
        return result

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        values: torch.Tensor
        vectors: torch.Tensor
        values, vectors = ctx.saved_tensors
        divided = _FUNCTIONS[ctx.name][1](values[:, None], values[None, :])
        symmetric = (grad + grad.T) / 2
        inner = vectors.T @ symmetric @ vectors
        return vectors @ (divided * inner) @ vectors.T, None


def spd_log(matrix: torch.Tensor) -> torch.Tensor:
    """The matrix logarithm of a symmetric positive definite matrix (differentiable, stable backward)."""
    result: torch.Tensor = _SymmetricFunction.apply(matrix, "log")  # type: ignore[no-untyped-call]  # torch's stub
    return result


def spd_inv_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """A^-1/2 of a symmetric positive definite matrix (differentiable, stable backward)."""
    result: torch.Tensor = _SymmetricFunction.apply(matrix, "inv_sqrt")  # type: ignore[no-untyped-call]  # torch's stub
    return result


def log_euclidean_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||logm(A) - logm(B)||_F² for SPD matrices A and B."""
    return (spd_log(a) - spd_log(b)).square().sum()


def affine_invariant_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||logm(A^-1/2 B A^-1/2)||_F² for SPD matrices A and B (unchanged by any congruence X A Xᵀ, X B Xᵀ)."""
    root = spd_inv_sqrt(a)
    inner = root @ b @ root
    return spd_log((inner + inner.T) / 2).square().sum()  # symmetrised: rounding leaves it a hair asymmetric


def geodesic_distance(a: torch.Tensor, b: torch.Tensor, distance: str = "log_euclidean") -> torch.Tensor:
    """The squared geodesic distance ``distance`` (one of :data:`DISTANCES`) between SPD matrices A and B."""
    if distance == "log_euclidean":
        return log_euclidean_distance(a, b)
    if distance == "affine_invariant":
        return affine_invariant_distance(a, b)
    raise PerceptionError(f"gca: distance {distance!r}; expected one of {', '.join(DISTANCES)}")


def correlation_distance(
    source: torch.Tensor,
    source_valid: torch.Tensor,
    target: torch.Tensor,
    target_valid: torch.Tensor,
    distance: str = "log_euclidean",
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """The GCA term: geodesic distance between the feature covariances of two batches (float64 scalar)."""
    return geodesic_distance(
        feature_covariance(source, source_valid, eps), feature_covariance(target, target_valid, eps), distance
    )
