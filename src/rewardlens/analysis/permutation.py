"""Two-sample permutation t-test: Welch's t statistic, its null distribution by relabelling.

Welch's t (unequal variances) as in the value-bias study's analysis (MKinfer's `perm.t.test` default).

Exact (every split enumerated) when the number of distinct splits is at most the permutation budget,
Monte Carlo otherwise with p = (1 + #{|t*| >= |t|}) / (1 + N) so that p is never 0. Two-sided.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

# Exact enumeration builds a splits x n index matrix; beyond this n the budget rules it out anyway.
_MAX_EXACT_N = 40
_CHUNK = 2048
# Relative tolerance for "as extreme as observed": equal statistics must count despite rounding.
_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PermutationResult:
    t: float
    p_value: float
    n_permutations: int
    exact: bool


def welch_t(first: np.ndarray, second: np.ndarray) -> float:
    """Welch's two-sample t (unequal variances); nan when undefined (a group of < 2 or no variance)."""
    return float(_t_from_sums(*_sums(first[None, :]), *_sums(second[None, :]))[0])


def permutation_t_test(
    first: np.ndarray, second: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> PermutationResult:
    """Two-sided permutation test of a difference in means between two independent samples."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    observed = welch_t(a, b)
    if not math.isfinite(observed):
        return PermutationResult(observed, math.nan, 0, False)
    pooled = np.concatenate([a, b])
    n, n_a = len(pooled), len(a)
    total, total_sq = pooled.sum(), (pooled**2).sum()
    threshold = abs(observed) * (1 - _TIE_TOLERANCE)
    if n <= _MAX_EXACT_N and math.comb(n, n_a) <= n_permutations:
        splits = np.array(list(itertools.combinations(range(n), n_a)), dtype=np.int64)
        t = _split_t(pooled[splits], total, total_sq, n)
        extreme = int(np.count_nonzero(np.abs(t) >= threshold))  # nan (zero variance) never counts
        return PermutationResult(observed, extreme / len(splits), len(splits), True)
    extreme, done = 0, 0
    while done < n_permutations:
        size = min(_CHUNK, n_permutations - done)
        order = rng.permuted(np.tile(np.arange(n), (size, 1)), axis=1)[:, :n_a]
        t = _split_t(pooled[order], total, total_sq, n)
        extreme += int(np.count_nonzero(np.abs(t) >= threshold))
        done += size
    return PermutationResult(observed, (1 + extreme) / (1 + n_permutations), n_permutations, False)


def _sums(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    return values.sum(axis=1), (values**2).sum(axis=1), values.shape[1]


def _split_t(group_a: np.ndarray, total: float, total_sq: float, n: int) -> np.ndarray:
    """t for many splits at once: group A's values per row; group B is the rest of the pooled sample."""
    sum_a, sq_a, n_a = _sums(group_a)
    return _t_from_sums(sum_a, sq_a, n_a, total - sum_a, total_sq - sq_a, n - n_a)


def _t_from_sums(
    sum_a: np.ndarray, sq_a: np.ndarray, n_a: int, sum_b: np.ndarray, sq_b: np.ndarray, n_b: int
) -> np.ndarray:
    if n_a < 2 or n_b < 2:
        return np.full(np.shape(sum_a), np.nan)
    mean_a, mean_b = sum_a / n_a, sum_b / n_b
    # Variances from sums and sums of squares (float64; values here are ranks, so no cancellation
    # worth a second pass); clipped at 0 against rounding.
    var_a = np.maximum(sq_a - n_a * mean_a**2, 0.0) / (n_a - 1)
    var_b = np.maximum(sq_b - n_b * mean_b**2, 0.0) / (n_b - 1)
    scale = var_a / n_a + var_b / n_b
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mean_a - mean_b) / np.sqrt(scale)
    return np.where(scale > 0, t, np.nan)


def bonferroni(p_values: np.ndarray) -> np.ndarray:
    """Bonferroni-adjusted p-values over the finite ones (nan stays nan), capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = int(np.count_nonzero(np.isfinite(p)))
    return np.minimum(p * max(m, 1), 1.0)


def stars(p_value: float) -> str:
    """The usual significance marks: *** < .001, ** < .01, * < .05, else `ns`."""
    if not math.isfinite(p_value):
        return ""
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*")):
        if p_value < cut:
            return mark
    return "ns"


__all__ = ["PermutationResult", "bonferroni", "permutation_t_test", "stars", "welch_t"]
