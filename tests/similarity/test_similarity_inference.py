"""Inference: permutation p-values, bootstrap intervals with copied stimuli, model comparison, ceilings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from similarity_naive import NAIVE

from rewardlens.errors import UserError
from rewardlens.similarity import compare, get_measure
from rewardlens.similarity.inference import (
    bootstrap_ci,
    compare_models,
    noise_ceiling,
    permutation_p_value,
    permutation_test,
)
from rewardlens.similarity.pair import Pair
from rewardlens.similarity.representation import Representation


def related(n: int, p: int, q: int, seed: int, noise: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    return x, x @ rng.normal(size=(p, q)) / np.sqrt(p) + noise * rng.normal(size=(n, q))


def test_permutation_p_value_formula() -> None:
    null = np.array([0.1, 0.5, 0.7, 0.2])
    assert permutation_p_value(null, 0.6) == pytest.approx((1 + 1) / 5)
    assert permutation_p_value(null, 0.9) == pytest.approx(1 / 5)  # never zero
    assert permutation_p_value(null, 0.5) == pytest.approx((1 + 2) / 5)  # ties count as extreme
    # A distance: smaller is more similar.
    assert permutation_p_value(null, 0.15, larger_is_more_similar=False) == pytest.approx((1 + 1) / 5)


def test_permutation_p_values_are_uniform_under_the_null() -> None:
    rng = np.random.default_rng(0)
    p_values = np.array(
        [
            permutation_test(
                rng.normal(size=(12, 3)), rng.normal(size=(12, 3)), "linear-cka", permutations=49, seed=i
            ).p_value
            for i in range(150)
        ]
    )
    # Binomial bounds at about four standard deviations for 150 draws.
    assert abs(np.mean(p_values) - 0.51) < 0.1
    for level in (0.1, 0.3, 0.5, 0.8):
        share = np.mean(p_values <= level)
        assert abs(share - level) < 4 * np.sqrt(level * (1 - level) / 150), level


@pytest.mark.parametrize("measure", ["rv2", "rsa", "procrustes", "rbf-cka", "debiased-cka"])
def test_permutation_test_finds_a_strong_relation(measure: str) -> None:
    x, y = related(30, 5, 4, seed=1, noise=0.2)
    result = permutation_test(x, y, measure, permutations=99, seed=3)
    assert result.p_value == pytest.approx(1 / 100)
    assert result.observed == pytest.approx(compare(x, y, measure))


def test_inference_is_seeded() -> None:
    x, y = related(20, 4, 3, seed=2)
    first = permutation_test(x, y, "rv2", permutations=30, seed=7)
    again = permutation_test(x, y, "rv2", permutations=30, seed=7)
    other = permutation_test(x, y, "rv2", permutations=30, seed=8)
    assert np.array_equal(first.null, again.null)
    assert not np.array_equal(first.null, other.null)
    boot = bootstrap_ci(x, y, "rv2", samples=30, seed=7)
    assert np.array_equal(boot.samples, bootstrap_ci(x, y, "rv2", samples=30, seed=7).samples)


def test_permuted_null_values_are_the_measure_of_shuffled_rows() -> None:
    x, y = related(15, 20, 18, seed=3)  # Gram side: permutations reuse the permuted Gram matrix
    result = permutation_test(x, y, "linear-cka", permutations=5, seed=11)
    orders = [np.random.default_rng(11).permutation(15)]  # the first shuffle drawn by that seed
    assert result.null[0] == pytest.approx(NAIVE["linear-cka"](x, y[orders[0]]), abs=1e-12)


@pytest.mark.parametrize("measure", ["rv2", "linear-cka", "rbf-cka", "debiased-cka", "rsa"])
def test_bootstrap_interval_brackets_the_estimate(measure: str) -> None:
    """Copies of a stimulus are left out of the pairs, so the resamples are centred on the estimate."""
    x, y = related(60, 8, 6, seed=4)
    result = bootstrap_ci(x, y, measure, samples=200, seed=5)
    assert result.ci_low < result.observed < result.ci_high
    assert abs(np.median(result.samples) - result.observed) < (result.ci_high - result.ci_low) / 4


def _bootstrap_pair(x: np.ndarray, y: np.ndarray, index: np.ndarray, gram_first: bool) -> Pair:
    a = Representation(torch.from_numpy(x), name="X")
    b = Representation(torch.from_numpy(y), name="Y")
    if gram_first:
        _ = a.gram, b.gram  # take() then carries the Gram matrices over instead of rebuilding them
    taken = torch.from_numpy(index)
    return Pair(a.take(taken, resample=True), b.take(taken, resample=True))


@pytest.mark.parametrize("gram_first", [False, True])
@pytest.mark.parametrize("shape", [(14, 20, 16), (40, 6, 5)])
def test_resampled_stimuli_leave_out_pairs_of_copies(shape: tuple[int, int, int], gram_first: bool) -> None:
    x, y = related(*shape, seed=6)
    index = np.random.default_rng(1).integers(0, shape[0], size=shape[0])
    assert len(np.unique(index)) < shape[0]
    pair = _bootstrap_pair(x, y, index, gram_first)
    xs, ys = x[index], y[index]
    for name, naive in [("linear-cka", NAIVE["linear-cka"]), ("rv2", NAIVE["rv2"])]:
        measure = get_measure(name)
        assert measure.value(pair, measure.resolve({})) == pytest.approx(naive(xs, ys, ids=index), abs=1e-10)
    debiased = get_measure("debiased-cka")
    assert debiased.value(pair, debiased.resolve({})) == pytest.approx(
        NAIVE["debiased-cka"](xs, ys, center=True, ids=index), abs=1e-10
    )
    rsa = get_measure("rsa")  # the pair's representations are centred (their default), so is the naive one
    assert rsa.value(pair, rsa.resolve({})) == pytest.approx(NAIVE["rsa"](xs, ys, center=True, ids=index), abs=1e-10)


def test_a_permutation_keeps_every_pair() -> None:
    x, y = related(14, 20, 16, seed=7)
    order = np.random.default_rng(2).permutation(14)
    a, b = Representation(torch.from_numpy(x)), Representation(torch.from_numpy(y))
    _ = b.gram
    measure = get_measure("rv2")
    permuted = Pair(a, b.take(torch.from_numpy(order)))
    assert measure.value(permuted, {"center": True}) == pytest.approx(NAIVE["rv2"](x, y[order]), abs=1e-12)


# -- model comparison and noise ceiling ------------------------------------------------------------


def test_noise_ceiling_of_identical_repetitions_is_one_and_of_noisy_ones_below() -> None:
    x, _ = related(30, 6, 6, seed=8)
    same = noise_ceiling([x, x, x, x], "rv2")
    assert same.lower == pytest.approx(1.0) and same.upper == pytest.approx(1.0)
    rng = np.random.default_rng(9)
    noisy = [x + rng.normal(size=x.shape) for _ in range(5)]  # an odd count: every repetition is used
    ceiling = noise_ceiling(noisy, "rv2")
    assert 0 < ceiling.lower < ceiling.upper < 1 and ceiling.repetitions == 5


def test_noise_ceiling_equals_its_definition() -> None:
    rng = np.random.default_rng(3)
    reps = [rng.normal(size=(20, 4)) for _ in range(3)]
    mean = np.mean(reps, axis=0)
    upper = np.mean([NAIVE["linear-cka"](r, mean) for r in reps])
    lower = np.mean(
        [NAIVE["linear-cka"](r, np.mean([o for j, o in enumerate(reps) if j != i], axis=0)) for i, r in enumerate(reps)]
    )
    ceiling = noise_ceiling(reps, "linear-cka")
    assert (ceiling.lower, ceiling.upper) == pytest.approx((lower, upper), abs=1e-10)


@pytest.mark.parametrize("measure", ["rv2", "linear-cka", "rsa"])
@pytest.mark.parametrize("count", [2, 3, 5])
def test_the_noise_free_target_lies_within_the_ceiling(measure: str, count: int) -> None:
    # The true target, scored like any candidate, must not beat the upper bound (nor, on average,
    # fall below the lower one). Averaged over a few seeded draws: the bounds hold in expectation.
    gaps = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        truth = rng.normal(size=(40, 8))
        repetitions = [truth + 1.5 * rng.normal(size=truth.shape) for _ in range(count)]
        result = compare_models({"truth": truth}, repetitions, measure, bootstrap=1, seed=0)
        assert result.noise_ceiling is not None
        score = float(result.scores["per_repetition"].iloc[0])
        gaps.append((result.noise_ceiling.upper - score, score - result.noise_ceiling.lower))
    upper_gap, lower_gap = np.mean(gaps, axis=0)
    assert upper_gap > 0 and lower_gap > 0


def test_noise_ceiling_needs_repetitions_and_a_similarity() -> None:
    x, _ = related(30, 6, 6, seed=8)
    with pytest.raises(UserError, match="at least 2"):
        noise_ceiling([x], "rv2")
    with pytest.raises(UserError, match="distance"):
        noise_ceiling([x, x], "procrustes")


def test_compare_models_ranks_candidates_with_paired_differences() -> None:
    rng = np.random.default_rng(10)
    truth = rng.normal(size=(50, 6))
    repetitions = np.stack([truth + 0.5 * rng.normal(size=truth.shape) for _ in range(4)])
    candidates = {
        "close": truth @ np.linalg.qr(rng.normal(size=(6, 6)))[0] + 0.1 * rng.normal(size=truth.shape),
        "far": rng.normal(size=(50, 6)),
    }
    result = compare_models(candidates, repetitions, "rv2", bootstrap=200, seed=1)
    scores = result.scores.set_index("model")
    mean_target = repetitions.mean(axis=0)
    assert scores.loc["close", "value"] == pytest.approx(NAIVE["rv2"](candidates["close"], mean_target), abs=1e-10)
    assert scores.loc["close", "ci_low"] > scores.loc["far", "ci_high"]
    difference = result.differences.iloc[0]
    assert (difference.model_a, difference.model_b) == ("close", "far")
    assert difference.ci_low > 0 and difference.p_value < 0.05
    assert result.noise_ceiling is not None
    assert 0 < result.noise_ceiling.lower < result.noise_ceiling.upper <= 1
    per_repetition = np.mean([NAIVE["rv2"](candidates["close"], r) for r in repetitions])
    assert scores.loc["close", "per_repetition"] == pytest.approx(per_repetition, abs=1e-10)
    single = compare_models(candidates, mean_target, "rv2", bootstrap=20)
    assert single.noise_ceiling is None


def test_compare_models_refuses_mismatched_candidates() -> None:
    target = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(UserError, match="rows"):
        compare_models({"short": target[:10]}, target, "rv2", bootstrap=5)
    with pytest.raises(UserError, match="candidate"):
        compare_models({}, target, "rv2")
