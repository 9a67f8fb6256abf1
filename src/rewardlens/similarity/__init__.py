"""Representational similarity: RV, RV2, CKA (linear, RBF, debiased), RSA, Procrustes and CCA.

`compare(X, Y, measure="rv2", **options)` compares two arrays with one row per stimulus;
`MEASURES` is the registry (each entry declares `larger_is_more_similar` and its invariances);
`rewardlens.similarity.inference` adds permutation tests, bootstrap intervals, model comparison
and noise ceilings; `rewardlens.similarity.layers` compares every layer of one or two models.
"""

from rewardlens.similarity import measures, rsa  # noqa: F401  (registers the measures)
from rewardlens.similarity.api import compare
from rewardlens.similarity.registry import MEASURES, Measure, get_measure
from rewardlens.similarity.representation import Representation

__all__ = ["MEASURES", "Measure", "Representation", "compare", "get_measure"]
