import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rewardlens.analysis.tokens import moments
from rewardlens.analysis.tokens.moments import bootstrap_skewness, skewness_kurtosis


def test_moments_equal_scipy(sweep, texts):
    rng = np.random.default_rng(0)
    values = {"a": rng.gamma(2.0, size=400), "b": rng.normal(size=400)}
    frame = sweep("m", texts(400), values)
    result = moments(frame, n_resamples=50, seed=1).set_index("prompt_id")
    for prompt_id, x in values.items():
        row = result.loc[prompt_id]
        assert row["n"] == 400
        assert row["mean"] == pytest.approx(np.mean(x))
        assert row["variance"] == pytest.approx(np.var(x, ddof=1))
        assert row["skewness"] == pytest.approx(stats.skew(x))
        assert row["kurtosis"] == pytest.approx(stats.kurtosis(x))


def test_skewness_ci_covers_the_true_skewness_of_a_known_distribution(sweep, texts):
    # Gamma(shape 4) has skewness 2 / sqrt(4) = 1; a symmetric normal has 0; lognormal(0, 0.25) is positive.
    rng = np.random.default_rng(11)
    n = 20_000
    sigma = 0.25
    true_lognormal = (np.exp(sigma**2) + 2) * np.sqrt(np.exp(sigma**2) - 1)
    values = {
        "gamma": rng.gamma(4.0, size=n),
        "normal": rng.normal(size=n),
        "lognormal": rng.lognormal(0, sigma, n),
    }
    result = moments(sweep("m", texts(n), values), n_resamples=1000, seed=5).set_index("prompt_id")
    for prompt_id, truth in (("gamma", 1.0), ("normal", 0.0), ("lognormal", true_lognormal)):
        row = result.loc[prompt_id]
        assert row["skewness_ci_low"] < truth < row["skewness_ci_high"]
        assert row["skewness_ci_low"] < row["skewness"] < row["skewness_ci_high"]
    # The interval is informative, not the whole line: the normal's excludes the gamma's skewness.
    assert result.loc["normal", "skewness_ci_high"] < 0.5


def test_bootstrap_is_deterministic_under_a_seed_and_independent_of_other_groups(sweep, texts):
    rng = np.random.default_rng(2)
    one = sweep("m1", texts(300), {"p": rng.exponential(size=300)})
    two = sweep("m2", texts(300), {"p": rng.exponential(size=300)})
    alone = moments(one, n_resamples=200, seed=7)
    again = moments(one, n_resamples=200, seed=7)
    other_seed = moments(one, n_resamples=200, seed=8)
    together = moments(pd.concat([one, two]), n_resamples=200, seed=7)
    pd.testing.assert_frame_equal(alone, again)
    assert alone.loc[0, "skewness_ci_low"] != other_seed.loc[0, "skewness_ci_low"]
    pd.testing.assert_frame_equal(alone, together[together["model"] == "m1"].reset_index(drop=True))


def test_chunking_does_not_change_the_resamples():
    values = np.random.default_rng(4).gamma(1.5, size=101)
    small_chunks = bootstrap_skewness(values, 37, np.random.default_rng(9), chunk_values=250)
    one_chunk = bootstrap_skewness(values, 37, np.random.default_rng(9), chunk_values=10**6)
    np.testing.assert_allclose(small_chunks, one_chunk)
    # ... and each resample's skewness is that of a resample of the data.
    rng = np.random.default_rng(9)
    first = values[rng.integers(0, 101, size=(1, 101), dtype=np.uint32)][0]
    assert one_chunk[0] == pytest.approx(stats.skew(first), rel=1e-10)
    second = values[rng.integers(0, 101, size=(1, 101), dtype=np.uint32)][0]
    assert one_chunk[1] == pytest.approx(stats.skew(second), rel=1e-10)


def test_constant_scores_have_undefined_shape(sweep, texts):
    result = moments(sweep("m", texts(10), {"p": [2.0] * 10}), n_resamples=20)
    assert np.isnan(result.loc[0, "skewness"]) and np.isnan(result.loc[0, "skewness_ci_low"])
    skew, kurt = skewness_kurtosis(np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 4.0]]))
    np.testing.assert_allclose(skew, stats.skew([[1, 2, 3], [1, 1, 4]], axis=1))
    np.testing.assert_allclose(kurt, stats.kurtosis([[1, 2, 3], [1, 1, 4]], axis=1))
