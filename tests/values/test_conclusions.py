"""The conclusions table: each claim tested at its unit, against brute force, planted effects and nulls."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from values_synthetic import make_lexicon, make_scores

from rewardlens.analysis.conclusions import (
    CONCLUSION_COLUMNS,
    FAMILY_CONTRAST,
    FAMILY_INTERACTION,
    WITHIN_MODEL,
    compare_across_models,
    family_conclusions,
)
from rewardlens.analysis.multiplicity import holm
from rewardlens.analysis.values import PUBLISHED_STRUCTURE, analyze_values, rank_lexicon_words

TWO_BY_TWO = {"llama-0": "llama", "llama-1": "llama", "gemma-0": "gemma", "gemma-1": "gemma"}


def test_holm_matches_statsmodels() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan, 0.001])
    expected = multipletests(p[np.isfinite(p)], method="holm")[1]
    got = holm(p)
    assert np.isnan(got[4])
    assert got[np.isfinite(p)] == pytest.approx(expected, abs=1e-12)


def test_exact_relabelling_p_and_floor_equal_brute_force() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(1.0, 1, size=4), rng.normal(size=5)
    pooled = np.concatenate([a, b])
    observed = abs(stats.ttest_ind(a, b, equal_var=False).statistic)
    extreme = []
    for chosen in itertools.combinations(range(9), 4):
        mask = np.zeros(9, dtype=bool)
        mask[list(chosen)] = True
        t = stats.ttest_ind(pooled[mask], pooled[~mask], equal_var=False).statistic
        extreme.append(abs(t) >= observed * (1 - 1e-9))
    result = compare_across_models(a, b, 10, np.random.default_rng(0))  # budget 10 < 126: still exact
    assert result.exact and result.n_relabellings == 126
    assert result.p_permutation == pytest.approx(np.mean(extreme), abs=1e-12)
    assert result.p_welch == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-10)
    assert result.smallest_p == pytest.approx(1 / 126)
    # Equal groups: a relabelling and its mirror have the same |t|, so the floor doubles.
    two = compare_across_models(np.array([5.0, 6.0]), np.array([0.0, 1.0]), 1000, np.random.default_rng(0))
    assert two.smallest_p == pytest.approx(1 / 3) and two.p_permutation == pytest.approx(1 / 3)


def test_planted_models_within_model_significant_family_level_floored() -> None:
    scores = make_scores(TWO_BY_TWO, n_words=15, n_prompts=3, effect=1.5, seed=4)
    result = analyze_values(scores, make_lexicon(15), TWO_BY_TWO, n_permutations=2000, n_bootstrap=200)
    table = result.conclusions
    assert list(table.columns) == list(CONCLUSION_COLUMNS)
    within = table[table["claim"] == WITHIN_MODEL]
    assert set(within["unit"]) == {"word"} and len(within) == 8  # 4 models x 2 framings
    assert (within["p_value"] < 0.001).all()
    # Llama models rank agency better (lower percentile) under positive prompts, worse under negative
    # ones; gemma models the reverse. The contrast is Agency - Communion.
    for row in within.itertuples():
        sign = -1 if (TWO_BY_TWO[row.scope] == "llama") == (row.framing == "positive") else 1
        assert np.sign(row.estimate) == sign, row
    family = table[table["claim"].isin([FAMILY_CONTRAST, FAMILY_INTERACTION])]
    assert set(family["unit"]) == {"model"} and (family["n_units"] == 4).all()
    permutation = family[family["test"].str.startswith("permutation")]
    assert len(permutation) == 3  # two framings and their interaction
    assert (permutation["p_value"] >= 1 / 3 - 1e-12).all()
    assert permutation["note"].str.contains("2 vs 2 models: the smallest attainable permutation p is 0.33").all()
    assert (family["ci_low"] <= family["estimate"]).all() and (family["estimate"] <= family["ci_high"]).all()
    published = table[table["unit"] == "prompt"]
    assert published["claim"].str.contains(PUBLISHED_STRUCTURE, regex=False).all()
    assert published["generalizes_to"].str.contains("not a test for new reward models").all()


def test_model_x_prompt_tests_carry_no_significance_mark() -> None:
    scores = make_scores(TWO_BY_TWO, n_words=8, n_prompts=3, effect=1.5, seed=2)
    tests = analyze_values(scores, make_lexicon(8), TWO_BY_TWO, n_permutations=200, n_bootstrap=10).tests
    invalid = tests[tests["unit"] == "model x prompt"]
    assert len(invalid) and (invalid["significance"] == "").all()
    assert invalid["validity"].str.startswith("not a valid test").all()
    model_rows = tests[tests["unit"] == "model"]
    assert (model_rows["validity"] == "valid").all() and (model_rows["significance"] != "").all()


def _null_ranked(families: dict[str, str], n_words: int, rng: np.random.Generator) -> pd.DataFrame:
    """Ranked words of models whose category preferences are random and unrelated to their family."""
    words = [f"a{i}" for i in range(n_words)] + [f"c{i}" for i in range(n_words)]
    prompts = ["positive_0", "positive_1", "negative_0", "negative_1"]
    preference = rng.normal(0, 1, (len(families), 1, 1)) * (np.arange(2 * n_words) < n_words)
    scores = rng.normal(size=(len(families), len(prompts), 2 * n_words)) + preference
    ranks = stats.rankdata(-scores, axis=2)
    grid = pd.MultiIndex.from_product([list(families), prompts, words], names=["model", "prompt_id", "word"])
    ranked = grid.to_frame(index=False).assign(score=scores.ravel(), rank=ranks.ravel())
    ranked["family"] = ranked["model"].map(families)
    ranked["framing"] = ranked["prompt_id"].str.split("_").str[0]
    ranked["category"] = np.where(ranked["word"].str.startswith("a"), "Agency", "Communion")
    return ranked.assign(percentile=100 * ranked["rank"] / (2 * n_words))


def test_family_level_p_values_are_uniform_without_a_family_effect() -> None:
    # Each model has its own random category preference; families do not differ. 5 vs 5 models:
    # 252 relabellings, fine enough for a KS test against the uniform.
    families = {f"llama-{i}": "llama" for i in range(5)} | {f"gemma-{i}": "gemma" for i in range(5)}
    p_values = []
    for seed in range(200):
        ranked = _null_ranked(families, 10, np.random.default_rng(seed))
        rows = family_conclusions(ranked, n_permutations=1000, seed=seed, n_bootstrap=0)
        chosen = rows[(rows["framing"] == "positive") & rows["test"].str.startswith("permutation")]
        p_values.append(float(chosen["p_value"].iloc[0]))
    assert stats.kstest(p_values, "uniform").pvalue > 0.01


def test_one_model_in_a_family_keeps_within_model_conclusions() -> None:
    families = {"llama-0": "llama", "llama-1": "llama", "gemma-0": "gemma"}
    scores = make_scores(families, n_words=6, n_prompts=2, effect=1.0, seed=1)
    result = analyze_values(scores, make_lexicon(6), families, n_permutations=100, n_bootstrap=10)
    assert result.family_problem is not None and "'gemma' has 1 model" in result.family_problem
    assert set(result.conclusions["unit"]) == {"word"} and len(result.conclusions) == 6
    assert result.family_problem in result.notes


def test_percentiles_use_each_models_own_word_count() -> None:
    families = {"llama-0": "llama", "gemma-0": "gemma"}
    scores = make_scores(families, n_words=5, n_prompts=1, seed=3)
    fewer = scores[~((scores["model"] == "gemma-0") & scores["response"].isin(["a0", "c0"]))]
    lexicon = make_lexicon(5)
    own = rank_lexicon_words(fewer, lexicon, families, words="all")
    counts = own.groupby(["model", "prompt_id"])["word"].transform("nunique")
    assert own["percentile"].to_numpy() == pytest.approx(100 * own["rank"] / counts)
    assert own.groupby("model")["percentile"].max().tolist() == pytest.approx([100.0, 100.0])
    common = rank_lexicon_words(fewer, lexicon, families, words="common")
    assert set(common["word"]) == {f"a{i}" for i in range(1, 5)} | {f"c{i}" for i in range(1, 5)}
    assert math.isclose(common["rank"].max(), 8)
