"""Representational similarity analysis: compare the stimulus-by-stimulus dissimilarity matrices.

An RDM holds the dissimilarity of every pair of stimuli (correlation distance 1 - r between
patterns, Euclidean distance, or cosine distance), of the patterns as given: columns are centred only
with `center=True` (the standard RDM, as rsatoolbox's `calc_rdm`, does not); two representations are
compared through the upper triangles of their RDMs by Spearman's rho, Kendall's tau-a or Pearson's r (Kriegeskorte et
al. 2008; Nili et al. 2014 recommend tau-a when models predict tied dissimilarities).

Bootstrap samples repeat stimuli. The copies of one stimulus are at distance zero from each other
by construction, not by measurement, so — as rsatoolbox does — those pairs are left out of the
comparison (`Representation.stimulus_ids` says which rows are copies of the same stimulus).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy import stats

from rewardlens.errors import UserError
from rewardlens.similarity.pair import Pair
from rewardlens.similarity.registry import (
    ISOTROPIC_SCALING,
    OFFSET,
    ROTATION,
    Measure,
    Option,
    register,
)
from rewardlens.similarity.representation import Representation

RDM_KINDS = ("correlation", "euclidean", "cosine")
COMPARISONS = ("spearman", "kendall-tau-a", "pearson")


def _unit_rows(rows: torch.Tensor, name: str, problem: str, distance: str) -> torch.Tensor:
    norms = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
    zero = torch.nonzero(norms[:, 0] == 0)
    if zero.numel():
        raise UserError(f"stimulus {int(zero[0])} of {name} is {problem}; its {distance} distance is undefined")
    return rows / norms


def rdm(rep: Representation, kind: str) -> torch.Tensor:
    """The n x n dissimilarity matrix of a representation's rows (column-centred only if it centres)."""
    if not rep.has_copies:
        return _rdm_of_rows(rep, kind, None)
    # A bootstrap sample repeats rows. Copies of a stimulus are at exactly equal dissimilarity to every
    # other row, but a BLAS product may round two identical rows differently by their position, which
    # turns exact ties into near-ties and moves rank comparisons (Spearman, tau). Each distinct row is
    # computed once and the matrix expanded, so copies stay exact ties (and at distance 0 from each other).
    _, group = torch.unique(rep.stimulus_ids, return_inverse=True)
    positions = torch.arange(rep.n, device=rep.device)
    first = torch.full((int(group.max()) + 1,), rep.n, dtype=positions.dtype, device=rep.device)
    first = first.scatter_reduce(0, group, positions, reduce="amin")
    return _symmetric(_rdm_of_rows(rep, kind, first))[group][:, group]


def _symmetric(matrix: torch.Tensor) -> torch.Tensor:
    """The upper triangle mirrored: a product's (i, j) and (j, i) may differ in the last bit, and an expanded
    RDM reads a pair of stimuli from either side depending on where their copies fall."""
    upper = torch.triu(matrix, diagonal=1)
    return upper + upper.T


def _rdm_of_rows(rep: Representation, kind: str, rows: torch.Tensor | None) -> torch.Tensor:
    """The RDM of the rows `rows` of a representation (all rows when None)."""
    features = rep.features if rows is None else rep.features[rows]
    if kind == "euclidean":
        norms, gram = rep.row_sq_norms, rep.gram
        if rows is not None:
            norms, gram = norms[rows], gram[rows][:, rows]
        squared = (norms[:, None] + norms[None, :] - 2 * gram).clamp(min=0.0)
        squared.fill_diagonal_(0.0)
        return torch.sqrt(squared)
    if kind == "cosine":
        unit = _unit_rows(features, rep.name, "all zeros", "cosine")
    elif kind == "correlation":
        if rep.d < 2:
            raise UserError(f"correlation distance needs at least 2 features; {rep.name} has {rep.d}")
        centred_rows = features - features.mean(dim=1, keepdim=True)
        unit = _unit_rows(centred_rows, rep.name, "constant across features", "correlation")
    else:
        raise UserError(f"unknown RDM {kind!r}; choose from: {', '.join(RDM_KINDS)}")
    dissimilarity = 1.0 - unit @ unit.T
    dissimilarity.fill_diagonal_(0.0)
    return dissimilarity


def rdm_vector(rep: Representation, kind: str) -> np.ndarray:
    """The upper triangle (i < j) of the RDM, row by row, as float64 on the CPU."""

    def compute() -> np.ndarray:
        rows, cols = torch.triu_indices(rep.n, rep.n, offset=1, device=rep.device)
        return rdm(rep, kind)[rows, cols].cpu().numpy()

    return rep.cached(("rdm", kind), compute)


def distinct_pairs(a: Representation, b: Representation) -> np.ndarray | None:
    """Mask of the pairs (i < j) that are two different stimuli in both; None when all are."""
    if not (a.has_copies or b.has_copies):  # the usual case (no bootstrap): skip the n^2/2 index pairs
        return None
    rows, cols = torch.triu_indices(a.n, a.n, offset=1, device=a.device)
    keep = (a.stimulus_ids[rows] != a.stimulus_ids[cols]) & (b.stimulus_ids[rows] != b.stimulus_ids[cols])
    mask = keep.cpu().numpy()
    return None if bool(mask.all()) else mask


def _pearson(u: np.ndarray, v: np.ndarray) -> float:
    u = u - u.mean()
    v = v - v.mean()
    denominator = float(np.dot(u, u) * np.dot(v, v))
    if not denominator > 0:
        raise UserError("an RDM is constant (all stimulus pairs equally dissimilar); its correlation is undefined")
    return float(np.dot(u, v) / math.sqrt(denominator))


def _tied_pairs(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    return float(np.sum(counts * (counts - 1) / 2))


def kendall_tau_a(u: np.ndarray, v: np.ndarray) -> float:
    """(concordant - discordant) / all pairs, from scipy's O(m log m) tau-b.

    tau_a = tau_b sqrt((n0 - n1)(n0 - n2)) / n0, with n1, n2 the pairs tied in u and in v.
    """
    m = len(u)
    all_pairs = m * (m - 1) / 2
    tau_b = stats.kendalltau(u, v).statistic
    if not np.isfinite(tau_b):
        raise UserError("an RDM is constant (all stimulus pairs equally dissimilar); Kendall's tau is undefined")
    return float(tau_b * math.sqrt((all_pairs - _tied_pairs(u)) * (all_pairs - _tied_pairs(v))) / all_pairs)


def compare_rdm_vectors(u: np.ndarray, v: np.ndarray, how: str) -> float:
    if len(u) < 2:
        raise UserError("rsa needs at least two pairs of distinct stimuli")
    if how == "pearson":
        return _pearson(u, v)
    if how == "spearman":
        return _pearson(stats.rankdata(u), stats.rankdata(v))
    if how == "kendall-tau-a":
        return kendall_tau_a(u, v)
    raise UserError(f"unknown RDM comparison {how!r}; choose from: {', '.join(COMPARISONS)}")


@register
class RSA(Measure):
    """Correlation between the two representations' RDMs."""

    name = "rsa"
    summary = "RDM (correlation|euclidean|cosine) compared by spearman|kendall-tau-a|pearson"
    reference = "Kriegeskorte et al. (2008), Front. Syst. Neurosci. 2:4; Nili et al. (2014)"
    invariances = frozenset({ISOTROPIC_SCALING, OFFSET})
    min_rows = 4
    needs_square = True
    options = {
        # Off by default: the standard RDMs (Kriegeskorte et al. 2008; rsatoolbox's calc_rdm) are of the
        # patterns as measured. Centring columns first changes correlation and cosine RDMs.
        "center": Option(False, "centre each column (subtract its mean over stimuli) before the RDM"),
        "rdm": Option("correlation", "dissimilarity between stimuli", RDM_KINDS),
        "compare": Option("spearman", "how the two RDMs are compared", COMPARISONS),
    }

    def invariances_for(self, options: Mapping[str, Any]) -> frozenset[str]:
        found = set(super().invariances_for(options))
        # Distances and angles between rows survive rotations; correlation distance does not
        # (it centres each row across features, which a rotation mixes).
        if options["rdm"] in ("euclidean", "cosine"):
            found.add(ROTATION)
        if options["rdm"] == "euclidean":
            found.add(OFFSET)  # distances ignore shifts even without centring
        return frozenset(found)

    def value(self, pair: Pair, options: Mapping[str, Any]) -> float:
        a, b = pair.representations()
        kind, how = str(options["rdm"]), str(options["compare"])
        u, v = rdm_vector(a, kind), rdm_vector(b, kind)
        keep = distinct_pairs(a, b)
        if keep is not None:
            return compare_rdm_vectors(u[keep], v[keep], how)
        if how == "spearman":
            ranks_u = a.cached(("rdm-ranks", kind), lambda: stats.rankdata(u))
            ranks_v = b.cached(("rdm-ranks", kind), lambda: stats.rankdata(v))
            return _pearson(ranks_u, ranks_v)
        return compare_rdm_vectors(u, v, how)
