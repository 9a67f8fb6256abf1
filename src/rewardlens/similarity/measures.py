"""Kernel, shape and subspace measures: RV, RV2, linear/RBF/debiased CKA, Procrustes, CCA.

Notation: X (n x p) and Y (n x q), centred by column; K = XX', L = YY' (n x n); k_i = ||x_i||^2,
l_i = ||y_i||^2 (the diagonals of K and L). Each formula is written the way `Pair` can evaluate it
from either the Gram or the feature side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from rewardlens.errors import UserError
from rewardlens.similarity.pair import Pair
from rewardlens.similarity.registry import (
    CENTER,
    INVERTIBLE_LINEAR,
    ISOTROPIC_SCALING,
    OFFSET,
    ROTATION,
    Measure,
    Option,
    ratio,
    register,
)
from rewardlens.similarity.representation import Representation, double_center

SIMILARITY_INVARIANCES = frozenset({ROTATION, ISOTROPIC_SCALING, OFFSET})


@register
class RV(Measure):
    """tr(KL) / sqrt(tr(K^2) tr(L^2)) = ||X'Y||^2 / (||X'X|| ||Y'Y||). On centred data this is linear CKA."""

    name = "rv"
    summary = "RV coefficient (Escoufier 1973)"
    reference = "Robert & Escoufier (1976), Applied Statistics 25:257"
    invariances = SIMILARITY_INVARIANCES

    def value(self, pair: Pair, options: Mapping[str, Any]) -> float:
        return ratio(pair.cross_hsic(), pair.a.self_hsic_distinct * pair.b.self_hsic_distinct, self.name)


@register
class RV2(Measure):
    """RV with the diagonals of K and L set to zero, which removes RV's upward bias when p, q >> n.

    tr(K~L~) = sum_{i != j} K_ij L_ij = ||X'Y||^2 - sum_i k_i l_i, so no n x n matrix is needed.
    """

    name = "rv2"
    summary = "modified RV coefficient, diagonals of XX' and YY' zeroed"
    reference = "Smilde et al. (2009), Bioinformatics 25:401"
    invariances = SIMILARITY_INVARIANCES

    def value(self, pair: Pair, options: Mapping[str, Any]) -> float:
        a, b = pair.a, pair.b
        cross = pair.cross_hsic() - pair.row_norm_dot()
        self_a = a.self_hsic_distinct - float(a.row_sq_norms @ a.row_sq_norms)
        self_b = b.self_hsic_distinct - float(b.row_sq_norms @ b.row_sq_norms)
        return ratio(cross, self_a * self_b, self.name)


@register
class LinearCKA(RV):
    """HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels: ||X'Y||^2 / (||X'X|| ||Y'Y||), the RV
    formula (Kornblith et al. name it for centred data; both centre unless `center=False`)."""

    name = "linear-cka"
    summary = "centred kernel alignment, linear kernel"
    reference = "Kornblith et al. (2019), ICML, arXiv:1905.00414"


def _unbiased_hsic(hsic: float, ka: torch.Tensor, kb: torch.Tensor, counts: torch.Tensor, n: int) -> float:
    """Song et al.'s unbiased HSIC times n(n-3), for centred linear kernels.

    With K~ = K minus its diagonal and X centred (so K~1 = -k and 1'K~1 = -sum k):
    tr(K~L~) + (1'K~1)(1'L~1)/((n-1)(n-2)) - 2/(n-2) 1'K~L~1
      = ||X'Y||^2 - n/(n-2) k.l + (sum k)(sum l)/((n-1)(n-2)).
    In a bootstrap sample K~ also zeroes the entries between copies of one stimulus (identical rows,
    so those entries equal k_i): with c_i copies of row i's stimulus, the terms become
    ||X'Y||^2 - sum c k l + (sum c k)(sum c l)/((n-1)(n-2)) - 2/(n-2) sum c^2 k l (c = 1: the above).
    """
    weighted_a, weighted_b = counts * ka, counts * kb
    return (
        hsic
        - float(weighted_a @ kb)
        + float(weighted_a.sum() * weighted_b.sum()) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * float(weighted_a @ weighted_b)
    )


@register
class DebiasedCKA(Measure):
    """Linear CKA from the unbiased HSIC estimator (Song et al. 2012), as in Kornblith et al. (2019)."""

    name = "debiased-cka"
    summary = "linear CKA with the unbiased HSIC estimator (n >= 4)"
    reference = "Song et al. (2012), JMLR 13:1393; Kornblith et al. (2019)"
    invariances = SIMILARITY_INVARIANCES
    min_rows = 4
    always_centers = True

    def value(self, pair: Pair, options: Mapping[str, Any]) -> float:
        a, b, n = pair.a, pair.b, pair.n
        ka, kb = a.row_sq_norms, b.row_sq_norms
        counts = a.copy_counts() if isinstance(a, Representation) else torch.ones_like(ka)
        cross = _unbiased_hsic(pair.cross_hsic(drop_copies=False), ka, kb, counts, n)
        self_a = _unbiased_hsic(a.self_hsic, ka, ka, counts, n)
        self_b = _unbiased_hsic(b.self_hsic, kb, kb, counts, n)
        if not (self_a > 0 and self_b > 0):
            raise UserError(
                "debiased-cka is undefined here: the unbiased HSIC of an array with itself is not positive "
                f"(n = {n}; use more stimuli)"
            )
        return cross / math.sqrt(self_a * self_b)


def _median_all(values: torch.Tensor) -> torch.Tensor:
    """The median of all entries, averaging the two middle ones for an even count (numpy's convention)."""
    flat = values.reshape(-1)
    count = flat.numel()
    upper = torch.kthvalue(flat, count // 2 + 1).values
    if count % 2:
        return upper
    return (torch.kthvalue(flat, count // 2).values + upper) / 2


def centred_rbf_gram(rep: Representation, threshold: float) -> torch.Tensor:
    """H exp(-D / (2 sigma^2)) H, sigma^2 = threshold^2 x median of all squared distances (diagonal too)."""
    gram = rep.gram
    norms = torch.diagonal(gram)
    sq_distances = (norms[:, None] + norms[None, :] - 2 * gram).clamp(min=0.0)
    sq_distances.fill_diagonal_(0.0)
    median = float(_median_all(sq_distances))
    if not median > 0:
        raise UserError(
            f"rbf-cka is undefined for {rep.name}: the median squared distance between stimuli is zero "
            "(most stimuli are identical)"
        )
    return double_center(torch.exp(-sq_distances / (2 * threshold**2 * median)))


@register
class RbfCKA(Measure):
    """CKA with Gaussian kernels whose bandwidth is a fraction of the median distance (Kornblith et al.)."""

    name = "rbf-cka"
    summary = "centred kernel alignment, RBF kernel, sigma = threshold x median distance"
    reference = "Kornblith et al. (2019), ICML, arXiv:1905.00414"
    invariances = SIMILARITY_INVARIANCES
    needs_square = True
    always_centers = True  # distances do not depend on centring; centred data are better conditioned
    options = {
        "center": CENTER,
        "threshold": Option(0.5, "sigma as a fraction of the median distance: sigma^2 = threshold^2 x median d^2"),
    }

    def value(self, pair: Pair, options: Mapping[str, Any]) -> float:
        a, b = pair.representations()
        threshold = float(options["threshold"])
        ka = a.cached(("rbf", threshold), lambda: centred_rbf_gram(a, threshold))
        kb = b.cached(("rbf", threshold), lambda: centred_rbf_gram(b, threshold))
        keep = a.copy_mask()  # pairs of copies of one stimulus left out (see Representation.copy_pair_sum)
        if keep is not None:
            ka, kb = ka * keep, kb * keep
        self_a = a.cached(("rbf-self", threshold, keep is None), lambda: float(torch.sum(ka**2)))
        self_b = b.cached(("rbf-self", threshold, keep is None), lambda: float(torch.sum(kb**2)))
        return ratio(float(torch.sum(ka * kb)), self_a * self_b, self.name)


@register
class Procrustes(Measure):
    """Angular Procrustes shape distance arccos(||X'Y||_* / (||X||_F ||Y||_F)), in radians, 0 = same shape."""

    name = "procrustes"
    summary = "angular Procrustes shape distance (radians; 0 = identical up to rotation and scale)"
    reference = "Williams et al. (2021), NeurIPS, arXiv:2110.14739"
    larger_is_more_similar = False
    invariances = SIMILARITY_INVARIANCES

    def value(self, pair: Pair, options: Mapping[str, Any]) -> float:
        cosine = ratio(pair.nuclear_cross(), pair.a.total_sq * pair.b.total_sq, self.name)
        return math.acos(min(1.0, max(-1.0, cosine)))


@register
class CCA(Measure):
    """Mean squared canonical correlation R^2_CCA = ||Q_Y' Q_X||_F^2 / min(rank X, rank Y).

    When a representation has at least as many features as stimuli its column space is every
    centred direction and all canonical correlations are 1: reduce dimensions first.
    """

    name = "cca"
    summary = "mean squared canonical correlation (R^2_CCA)"
    reference = "Hotelling (1936); Kornblith et al. (2019), eq. for R^2_CCA"
    invariances = SIMILARITY_INVARIANCES | {INVERTIBLE_LINEAR}

    def value(self, pair: Pair, options: Mapping[str, Any]) -> float:
        total, pairs = pair.canonical_sum_sq()
        if pairs == 0:
            raise UserError("cca is undefined: a representation has rank zero")
        return total / pairs
