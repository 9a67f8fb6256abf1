"""Inference over stimuli: permutation tests, bootstrap intervals, model comparison, noise ceilings.

- Permutation test: shuffle which row of Y belongs to which row of X (the stimulus
  correspondence) and recompute; p = (1 + #{null at least as extreme}) / (N + 1), which is never 0
  and is exact-size under the null (Phipson & Smyth 2010).
- Bootstrap: resample stimuli with replacement (the same rows of X and Y) and take percentile
  intervals. Resampled stimuli appear several times; RSA leaves out the zero-distance pairs
  between copies of one stimulus (see `rsa`), the kernel measures use the rows as drawn.
- Model comparison: every candidate against one target on the same bootstrap samples, so the
  differences between candidates are paired; and, when the target was measured several times, the
  noise ceiling of Nili et al. (2014): the upper bound is each repetition's similarity to the mean of
  all repetitions (itself included, so it is optimistic), the lower bound each repetition's similarity
  to the mean of the others, averaged over repetitions. It bounds a candidate's mean similarity to the
  single repetitions (`per_repetition`), which is what the true, noise-free target would reach, not
  its similarity to the mean of the repetitions. (A Spearman-Brown-corrected similarity of two
  half-averages is no such bound for measures that are not correlations of the data themselves:
  the noise-free target scored above it.) Every count of repetitions >= 2 uses them all.

Everything is seeded: the same seed gives the same permutations and samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
import torch

from rewardlens.errors import UserError
from rewardlens.progress import Progress
from rewardlens.similarity.api import check_inputs, representations
from rewardlens.similarity.pair import Pair
from rewardlens.similarity.registry import Measure, get_measure
from rewardlens.similarity.representation import Representation
from rewardlens.similarity.validation import as_float64

# Values equal to the observed one up to rounding count as "at least as extreme" (the identity
# permutation must not look more extreme than itself because of a last-bit difference).
TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class PermutationResult:
    observed: float
    p_value: float
    null: np.ndarray


@dataclass(frozen=True)
class BootstrapResult:
    observed: float
    ci_low: float
    ci_high: float
    samples: np.ndarray


def _at_least_as_extreme(null: np.ndarray, observed: float, larger_is_more_similar: bool) -> int:
    slack = TIE_TOLERANCE * max(1.0, abs(observed))
    if larger_is_more_similar:
        return int(np.sum(null >= observed - slack))
    return int(np.sum(null <= observed + slack))


def permutation_p_value(null: np.ndarray, observed: float, larger_is_more_similar: bool = True) -> float:
    """(1 + #{null at least as similar as observed}) / (N + 1), one-sided towards "more similar"."""
    return (1 + _at_least_as_extreme(null, observed, larger_is_more_similar)) / (len(null) + 1)


def permutation_null(
    measure: Measure,
    options: Mapping[str, Any],
    a: Representation,
    b: Representation,
    permutations: int,
    seed: int,
    progress: Progress = None,
) -> np.ndarray:
    """The measure after each of `permutations` seeded shuffles of B's rows."""
    generator = np.random.default_rng(seed)
    null = np.empty(permutations)
    for index in range(permutations):
        order = torch.from_numpy(generator.permutation(a.n))
        null[index] = measure.value(Pair(a, b.take(order)), options)
        if progress:
            progress(1)
    return null


def bootstrap_indices(n: int, samples: int, seed: int) -> np.ndarray:
    """`samples` x n row indices drawn with replacement (seeded)."""
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def bootstrap_values(
    measure: Measure,
    options: Mapping[str, Any],
    a: Representation,
    b: Representation,
    indices: np.ndarray,
    progress: Progress = None,
) -> np.ndarray:
    values = np.empty(len(indices))
    for row, index in enumerate(indices):
        taken = torch.from_numpy(index)
        values[row] = measure.value(Pair(a.take(taken, resample=True), b.take(taken, resample=True)), options)
        if progress:
            progress(1)
    return values


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return float(low), float(high)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise UserError(f"confidence level must be between 0 and 1, got {level}")


def _check_count(count: int, what: str) -> None:
    if count < 1:
        raise UserError(f"the number of {what} must be at least 1, got {count}")


def permutation_test(
    X: Any,
    Y: Any,
    measure: str = "rv2",
    *,
    permutations: int = 1000,
    seed: int = 0,
    names: tuple[str, str] = ("X", "Y"),
    progress: Progress = None,
    **options: Any,
) -> PermutationResult:
    """Is X more similar to Y than when the stimuli of Y are shuffled?"""
    _check_count(permutations, "permutations")
    chosen = get_measure(measure)
    resolved = chosen.resolve(options)
    a, b = representations(*check_inputs(X, Y, chosen, names), chosen, resolved, names)
    observed = chosen.value(Pair(a, b), resolved)
    null = permutation_null(chosen, resolved, a, b, permutations, seed, progress)
    return PermutationResult(observed, permutation_p_value(null, observed, chosen.larger_is_more_similar), null)


def bootstrap_ci(
    X: Any,
    Y: Any,
    measure: str = "rv2",
    *,
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    names: tuple[str, str] = ("X", "Y"),
    progress: Progress = None,
    **options: Any,
) -> BootstrapResult:
    """Percentile interval of the measure over bootstrap samples of the stimuli."""
    _check_count(samples, "bootstrap samples")
    _check_level(level)
    chosen = get_measure(measure)
    resolved = chosen.resolve(options)
    a, b = representations(*check_inputs(X, Y, chosen, names), chosen, resolved, names)
    observed = chosen.value(Pair(a, b), resolved)
    values = bootstrap_values(chosen, resolved, a, b, bootstrap_indices(a.n, samples, seed), progress)
    low, high = percentile_interval(values, level)
    return BootstrapResult(observed, low, high, values)


# -- model comparison ------------------------------------------------------------------------------


def _repetitions(target: Any) -> list[torch.Tensor]:
    """A target given as (repetitions, n, d) or a list of n x d arrays, one per repetition."""
    if isinstance(target, np.ndarray | torch.Tensor) and target.ndim == 3:
        items: Sequence[Any] = list(target)
    elif isinstance(target, list | tuple):
        items = target
    else:
        return [as_float64(target, "target")]
    tensors = [as_float64(item, f"target repetition {i}") for i, item in enumerate(items)]
    for i, tensor in enumerate(tensors[1:], start=1):
        if tensor.shape != tensors[0].shape:
            raise UserError(f"target repetition {i} has shape {tuple(tensor.shape)}, not {tuple(tensors[0].shape)}")
    return tensors


@dataclass(frozen=True)
class NoiseCeiling:
    """Nili et al.'s (2014) bounds on the mean similarity of the true target to the repetitions."""

    lower: float  # each repetition against the mean of the others
    upper: float  # each repetition against the mean of all
    repetitions: int


def noise_ceiling(repetitions: Sequence[Any], measure: str = "rv2", **options: Any) -> NoiseCeiling:
    """The noise ceiling of a target measured several times (>= 2 repetitions, odd counts included)."""
    chosen = get_measure(measure)
    if not chosen.larger_is_more_similar:
        raise UserError(f"a noise ceiling needs a similarity; {chosen.name} is a distance")
    resolved = chosen.resolve(options)
    tensors = _repetitions(list(repetitions))
    if len(tensors) < 2:
        raise UserError("a noise ceiling needs at least 2 repeated measurements of the target")
    stacked = torch.stack(tensors)
    center = chosen.centers(resolved)
    total = stacked.sum(0)
    everything = Representation(total / len(tensors), center=center, name="target mean")
    upper, lower = [], []
    for index, tensor in enumerate(tensors):
        single = Representation(tensor, center=center, name=f"target repetition {index}")
        others = Representation((total - tensor) / (len(tensors) - 1), center=center, name="other repetitions")
        upper.append(chosen.value(Pair(single, everything), resolved))
        lower.append(chosen.value(Pair(single, others), resolved))
    return NoiseCeiling(float(np.mean(lower)), float(np.mean(upper)), len(tensors))


@dataclass(frozen=True)
class ModelComparison:
    """Candidates against one target: `scores` per candidate, paired `differences`, optional ceiling.

    `scores` has model, value (similarity to the mean target), ci_low, ci_high (bootstrap over
    stimuli) and, with repetitions, per_repetition: the mean similarity to each repetition, which is
    what `noise_ceiling` bounds.
    """

    measure: str
    scores: pd.DataFrame
    differences: pd.DataFrame  # model_a, model_b, difference, ci_low, ci_high, p_value
    noise_ceiling: NoiseCeiling | None
    stimuli: int = 0
    bootstrap: int = 0
    seed: int = 0
    level: float = 0.95
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """One JSON-ready object: `candidates`, `pairs`, `noise_ceiling` (or None), each saying what it
        generalizes over (`unit`, `generalizes_to`)."""
        candidates = [
            {
                "name": str(row["model"]),
                "score": float(row["value"]),
                "ci_low": float(row["ci_low"]),
                "ci_high": float(row["ci_high"]),
                **({"per_repetition": float(row["per_repetition"])} if "per_repetition" in row else {}),
                "unit": "stimuli",
                "generalizes_to": CANDIDATE_SCOPE,
            }
            for row in self.scores.to_dict("records")
        ]
        pairs = [
            {
                "a": str(row["model_a"]),
                "b": str(row["model_b"]),
                "difference": float(row["difference"]),
                "ci_low": float(row["ci_low"]),
                "ci_high": float(row["ci_high"]),
                "p_value": float(row["p_value"]),
                "test": "paired bootstrap over stimuli, two-sided",
                "unit": "stimuli",
                "generalizes_to": PAIR_SCOPE,
            }
            for row in self.differences.to_dict("records")
        ]
        ceiling = None
        if self.noise_ceiling is not None:
            ceiling = {
                "lower": self.noise_ceiling.lower,
                "upper": self.noise_ceiling.upper,
                "repetitions": self.noise_ceiling.repetitions,
                "bounds": "per_repetition",
                "unit": "repetitions",
                "generalizes_to": CEILING_SCOPE,
            }
        measure = get_measure(self.measure)
        return {
            "measure": self.measure,
            "larger_is_more_similar": measure.larger_is_more_similar,
            "options": dict(self.options),
            "stimuli": self.stimuli,
            "target_repetitions": self.noise_ceiling.repetitions if self.noise_ceiling else 1,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "level": self.level,
            "candidates": candidates,
            "pairs": pairs,
            "noise_ceiling": ceiling,
        }


# What each part of a model comparison generalizes over (it is resampled over stimuli only).
CANDIDATE_SCOPE = (
    "new stimuli like these (bootstrap over stimuli), for this target; the target's repetitions are averaged, "
    "not resampled"
)
PAIR_SCOPE = (
    "new stimuli like these: both candidates on the same bootstrap samples of the stimuli (paired); "
    "not new repetitions of the target"
)
CEILING_SCOPE = (
    "the target's repetitions (Nili et al. 2014): bounds a candidate's mean similarity to single repetitions "
    "(per_repetition), which the noise-free target would reach; the only place repetitions enter"
)


def _two_sided_bootstrap_p(differences: np.ndarray) -> float:
    """Twice the smaller tail of the bootstrap distribution of a difference around zero, (1 + k)/(B + 1)."""
    below = (1 + int(np.sum(differences <= 0))) / (len(differences) + 1)
    above = (1 + int(np.sum(differences >= 0))) / (len(differences) + 1)
    return min(1.0, 2 * min(below, above))


def compare_models(
    candidates: Mapping[str, Any],
    target: Any,
    measure: str = "rv2",
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    progress: Progress = None,
    **options: Any,
) -> ModelComparison:
    """Each candidate's similarity to `target` with bootstrap CIs, and every pairwise difference.

    `target` is n x d, or (repetitions, n, d) / a list of n x d arrays when it was measured several
    times: the candidates are then compared with the mean over repetitions, and the noise ceiling
    (Nili et al. 2014) bounds their mean similarity to the single repetitions (`per_repetition`).
    All candidates share the same bootstrap samples of the stimuli, so the differences are paired;
    p-values are two-sided. The intervals and p-values generalize over stimuli; repetitions enter
    only through the ceiling.
    """
    if not candidates:
        raise UserError("compare_models needs at least one candidate")
    _check_count(bootstrap, "bootstrap samples")
    _check_level(level)
    chosen = get_measure(measure)
    resolved = chosen.resolve(options)
    repeated = _repetitions(target)
    target_mean = torch.stack(repeated).mean(0)
    center = chosen.centers(resolved)
    target_rep = Representation(target_mean, center=center, name="target")
    indices = bootstrap_indices(target_rep.n, bootstrap, seed)

    names = list(candidates)
    observed: dict[str, float] = {}
    samples: dict[str, np.ndarray] = {}
    for name in names:
        check_inputs(candidates[name], target_mean, chosen, names=(name, "target"))
        rep = _candidate(candidates[name], name, center, target_rep)
        observed[name] = chosen.value(Pair(rep, target_rep), resolved)
        samples[name] = bootstrap_values(chosen, resolved, rep, target_rep, indices, progress)

    scores = pd.DataFrame(
        [
            {
                "model": name,
                "value": observed[name],
                **dict(zip(("ci_low", "ci_high"), percentile_interval(samples[name], level), strict=True)),
            }
            for name in names
        ]
    )
    rows = []
    for first, second in combinations(names, 2):
        difference = samples[first] - samples[second]
        low, high = percentile_interval(difference, level)
        rows.append(
            {
                "model_a": first,
                "model_b": second,
                "difference": observed[first] - observed[second],
                "ci_low": low,
                "ci_high": high,
                "p_value": _two_sided_bootstrap_p(difference),
            }
        )
    differences = pd.DataFrame(rows, columns=["model_a", "model_b", "difference", "ci_low", "ci_high", "p_value"])

    ceiling = None
    if len(repeated) >= 2:
        ceiling = noise_ceiling(repeated, measure, **options)
        per_repetition = [
            np.mean(
                [
                    chosen.value(Pair(_candidate(candidates[name], name, center, target_rep), single), resolved)
                    for single in (Representation(t, center=center, name="target repetition") for t in repeated)
                ]
            )
            for name in names
        ]
        scores["per_repetition"] = per_repetition
    return ModelComparison(
        chosen.name,
        scores,
        differences,
        ceiling,
        stimuli=target_rep.n,
        bootstrap=bootstrap,
        seed=seed,
        level=level,
        options=resolved,
    )


def _candidate(values: Any, name: str, center: bool, target: Representation) -> Representation:
    return Representation(as_float64(values, name, device=target.device), center=center, name=name)
