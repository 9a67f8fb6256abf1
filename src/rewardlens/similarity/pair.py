"""The statistics of a pair of representations that the measures are formulas of.

Every linear-kernel measure (RV, RV2, linear and debiased CKA) is a formula of a few scalars:
||X'Y||_F^2 = <XX', YY'>, ||X'X||_F^2, sums of squared row norms and their dot products.
Procrustes needs the nuclear norm of X'Y and CCA the canonical correlations; all of them come from
either side of the Gram/feature duality, so `Pair` picks the cheaper side and never builds an
n x n matrix when n exceeds both feature counts.
"""

from __future__ import annotations

import torch

from rewardlens.similarity.representation import FeatureSide, Representation, frobenius_dot, product


class Pair:
    """Two sides with the same stimuli (rows), and their memoized cross statistics."""

    def __init__(self, a: FeatureSide, b: FeatureSide, cross: torch.Tensor | None = None) -> None:
        self.a, self.b = a, b
        self.n = a.n
        self.in_memory = isinstance(a, Representation) and isinstance(b, Representation)
        # Kornblith et al.: Gram matrices when n <= d, feature space otherwise.
        self.use_gram = self.in_memory and a.n <= max(a.d, b.d)
        self._cross = cross

    def representations(self) -> tuple[Representation, Representation]:
        """Both sides as in-memory representations (for measures that need n x n matrices)."""
        a, b = self.a, self.b
        assert isinstance(a, Representation) and isinstance(b, Representation)
        return a, b

    @property
    def cross(self) -> torch.Tensor:
        """X'Y (d_x x d_y)."""
        if self._cross is None:
            a, b = self.representations()
            self._cross = product(a.features, b.features)
        return self._cross

    def cross_hsic(self, drop_copies: bool = True) -> float:
        """||X'Y||_F^2 = tr(XX'YY'), less the pairs of copies of one stimulus when `drop_copies`."""
        if self.use_gram:
            a, b = self.representations()
            total = frobenius_dot(a.gram, b.gram)
        else:
            total = frobenius_dot(self.cross, self.cross)
        if drop_copies and isinstance(self.a, Representation):
            total -= self.a.copy_pair_sum(self.a.row_sq_norms, self.b.row_sq_norms)
        return total

    def row_norm_dot(self) -> float:
        """sum_i ||x_i||^2 ||y_i||^2 (the diagonal part of tr(XX'YY'))."""
        return float(self.a.row_sq_norms @ self.b.row_sq_norms)

    def nuclear_cross(self) -> float:
        """||X'Y||_* (sum of singular values), from the narrower of features and Gram factors."""
        if self.in_memory:
            a, b = self.representations()
            small = a.reduced().T @ b.reduced()
        else:
            small = self.cross
        return float(torch.linalg.svdvals(small).sum())

    def canonical_sum_sq(self) -> tuple[float, int]:
        """(sum of squared canonical correlations, number of canonical pairs min(rank X, rank Y))."""
        if self.in_memory:
            a, b = self.representations()
            basis_a, basis_b = a.basis(), b.basis()
            between = basis_a.T @ basis_b
            ranks = (basis_a.shape[1], basis_b.shape[1])
        else:
            whiten_a, whiten_b = self.a.whitener(), self.b.whitener()
            between = whiten_a.T @ self.cross @ whiten_b
            ranks = (whiten_a.shape[1], whiten_b.shape[1])
        return float(torch.sum(between**2)), min(ranks)
