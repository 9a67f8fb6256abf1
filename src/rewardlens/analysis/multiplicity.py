"""Multiplicity corrections of a table of p-values (nan stays nan and does not count as a test).

- Holm (1979): step-down control of the family-wise error rate under any dependence.
- Benjamini & Hochberg (1995): step-up control of the false discovery rate (valid for independent or
  positively dependent tests), for the many exploratory token tests.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def _sorted_tests(p_values: Iterable[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The p-values, an all-nan result of their shape, and the indices of the finite ones in ascending order."""
    p = np.asarray(list(p_values), dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(p))
    return p, np.full(p.shape, np.nan), finite[np.argsort(p[finite], kind="stable")]


def holm(p_values: Iterable[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values."""
    p, adjusted, order = _sorted_tests(p_values)
    m = len(order)
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (m - position) * p[index]))
        adjusted[index] = running
    return adjusted


def benjamini_hochberg(p_values: Iterable[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values of the step-up procedure)."""
    p, adjusted, order = _sorted_tests(p_values)
    m = len(order)
    if m == 0:
        return adjusted
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return adjusted


__all__ = ["benjamini_hochberg", "holm"]
