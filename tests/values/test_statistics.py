"""Value-bias statistics against independent computations, planted effects and null data."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from values_synthetic import make_lexicon, make_scores

from rewardlens.analysis.family import assign_families, infer_family, parse_family_options
from rewardlens.analysis.permutation import bonferroni, permutation_t_test, stars, welch_t
from rewardlens.analysis.ranks import rank_responses
from rewardlens.analysis.values import (
    PUBLISHED_STRUCTURE,
    analyze_values,
    family_tests,
    fit_mixed_model,
    model_medians,
    prompt_medians,
    rank_lexicon_words,
)
from rewardlens.errors import UserError

FAMILIES = {f"{family}-{i}": family for family in ("llama", "gemma") for i in range(3)}


def test_welch_t_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=7), rng.normal(1, 3, size=11)
    assert welch_t(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).statistic, rel=1e-10)
    assert np.isnan(welch_t(np.array([1.0]), b))  # one observation: no variance
    assert np.isnan(welch_t(np.ones(3), np.ones(4)))  # no variance at all


def test_exact_permutation_p_equals_brute_force() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=4), rng.normal(0.8, 1, size=6)
    pooled = np.concatenate([a, b])
    observed = abs(stats.ttest_ind(a, b, equal_var=False).statistic)
    extreme = []
    for chosen in itertools.combinations(range(10), 4):
        mask = np.zeros(10, dtype=bool)
        mask[list(chosen)] = True
        t = stats.ttest_ind(pooled[mask], pooled[~mask], equal_var=False).statistic
        extreme.append(abs(t) >= observed - 1e-12)
    result = permutation_t_test(a, b, 10_000, rng)
    assert result.exact and result.n_permutations == 210
    assert result.p_value == pytest.approx(np.mean(extreme), abs=1e-12)


def test_monte_carlo_p_approaches_exact_and_is_seeded() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=6), rng.normal(0.7, 1, size=6)
    exact = permutation_t_test(a, b, 10_000, np.random.default_rng(0)).p_value  # 924 splits: exact
    sampled = permutation_t_test(a, b, 900, np.random.default_rng(5))  # < 924: Monte Carlo
    assert not sampled.exact
    assert abs(sampled.p_value - exact) < 0.04
    again = permutation_t_test(a, b, 900, np.random.default_rng(5))
    assert again.p_value == sampled.p_value


def test_null_permutation_p_values_are_roughly_uniform() -> None:
    rng = np.random.default_rng(4)
    p = np.array(
        [permutation_t_test(rng.normal(size=9), rng.normal(size=9), 199, rng).p_value for _ in range(300)]
    )
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.01 < np.mean(p < 0.05) < 0.10


def test_bonferroni_and_stars() -> None:
    adjusted = bonferroni(np.array([0.01, 0.2, np.nan, 0.5]))
    assert adjusted[:2].tolist() == pytest.approx([0.03, 0.6])
    assert np.isnan(adjusted[2]) and adjusted[3] == 1.0
    assert [stars(p) for p in (0.0005, 0.005, 0.04, 0.2)] == ["***", "**", "*", "ns"]


def test_ranks_match_scipy_with_ties_and_duplicates() -> None:
    scores = pd.DataFrame(
        {
            "model": ["m"] * 6,
            "prompt_id": ["p"] * 6,
            "response": ["x", "y", "z", "w", "x", "v"],
            "score": [3.0, 1.0, 2.0, 2.0, 3.0, 5.0],
        }
    )
    ranked = rank_responses(scores).set_index("response")["rank"]
    assert len(ranked) == 5  # "x" scored twice, counted once
    expected = stats.rankdata([-3.0, -1.0, -2.0, -2.0, -5.0])
    assert ranked[["x", "y", "z", "w", "v"]].tolist() == expected.tolist()


def test_family_inference_and_overrides() -> None:
    assert infer_family("Skywork/Skywork-Reward-Gemma-2-27B") == "gemma"
    assert infer_family("LxzGordon/URM-LLaMa-3.1-8B") == "llama"
    assert infer_family("smollm2-135m-instruct") == "smollm"
    assert infer_family("Qwen/Qwen2.5-0.5B") == "qwen"
    assert infer_family("my-rm") == "unknown"
    overrides = parse_family_options(["runs/mine=llama"])
    assert assign_families({"org/x": ["runs/mine", "mine"]}, overrides) == {"org/x": "llama"}
    with pytest.raises(UserError, match="no analysed model"):
        assign_families({"org/x": ["x"]}, {"typo": "llama"})
    with pytest.raises(UserError, match="KEY=FAMILY"):
        parse_family_options(["llama"])


def test_planted_family_effect_is_recovered_and_significant() -> None:
    scores = make_scores(FAMILIES, n_words=15, n_prompts=4, effect=1.0, seed=7)
    result = analyze_values(scores, make_lexicon(15), FAMILIES, n_permutations=500, seed=1)
    assert result.compare == "families"
    summary = result.summary.set_index(["framing", "category", "family"])["mean_median_rank"]
    # Rank 1 is the best: llama ranks agency better, gemma communion, under positive prompts.
    assert summary["positive", "Agency", "llama"] < summary["positive", "Agency", "gemma"]
    assert summary["positive", "Communion", "gemma"] < summary["positive", "Communion", "llama"]
    assert summary["negative", "Agency", "llama"] > summary["negative", "Agency", "gemma"]
    paper_unit = result.tests[result.tests["unit"] == "model x prompt"]
    assert len(paper_unit) == 4 and (paper_unit["p_bonferroni"] < 0.05).all()
    mixed = result.mixed_model
    assert mixed is not None
    terms = mixed[mixed["structure"] == PUBLISHED_STRUCTURE].set_index("term")
    # Reference levels gemma, Agency, negative: under negative prompts llama ranks agency words as the
    # worst things more rarely than gemma, so its communion words come out better ranked (negative
    # estimate); positive prompts flip it (three-way interaction, positive).
    two_way = terms.loc["family[T.llama]:category[T.Communion]"]
    three_way = terms.loc["family[T.llama]:category[T.Communion]:framing[T.positive]"]
    assert two_way["estimate"] < 0 and two_way["p_value"] < 0.001
    assert three_way["estimate"] > 0 and three_way["p_value"] < 0.001


def test_summary_matches_a_direct_computation() -> None:
    scores = make_scores(FAMILIES, n_words=6, n_prompts=2, effect=0.5, seed=3)
    result = analyze_values(scores, make_lexicon(6), FAMILIES, n_permutations=50)
    # Independent: rank with scipy inside each model x prompt, median per model, mean per family.
    scores = scores.assign(category=np.where(scores["response"].str.startswith("a"), "Agency", "Communion"))
    scores["rank"] = scores.groupby(["model", "prompt_id"])["score"].transform(
        lambda s: pd.Series(stats.rankdata(-s.to_numpy()), index=s.index)
    )
    medians = scores.groupby(["model", "framing", "category"])["rank"].median().reset_index()
    medians["family"] = medians["model"].map(FAMILIES)
    expected = medians.groupby(["framing", "category", "family"])["rank"].mean()
    got = result.summary.set_index(["framing", "category", "family"])["mean_median_rank"]
    assert got.sort_index().to_numpy() == pytest.approx(expected.sort_index().to_numpy())


def test_mixed_model_fixed_effects_equal_ols_on_a_balanced_design() -> None:
    # With a balanced design and a random intercept per model nested in family, the REML fixed
    # effects equal ordinary least squares: a closed-form check independent of statsmodels.
    scores = make_scores(FAMILIES, n_words=8, n_prompts=3, effect=0.6, seed=11)
    result = analyze_values(scores, make_lexicon(8), FAMILIES, n_permutations=20)
    rows = result.prompt_medians
    design = np.column_stack(
        [
            np.ones(len(rows)),
            (rows["family"] == "llama").to_numpy(float),
            (rows["category"] == "Communion").to_numpy(float),
            (rows["framing"] == "positive").to_numpy(float),
        ]
    )
    f, c, p = design[:, 1], design[:, 2], design[:, 3]
    design = np.column_stack([design, f * c, f * p, c * p, f * c * p])
    ols, *_ = np.linalg.lstsq(design, rows["median_rank"].to_numpy(float), rcond=None)
    assert result.mixed_model is not None
    # Balanced: generalized least squares equals OLS whatever the covariance of the random effects,
    # so every structure (the published one and the random slopes) has these fixed effects.
    for structure, table in result.mixed_model.groupby("structure"):
        fixed = table[table["term"] != "Group Var"]["estimate"].to_numpy()
        assert fixed == pytest.approx(ols, abs=1e-4), structure
    assert result.mixed_model["structure"].nunique() >= 2


def test_no_effect_gives_no_systematic_family_difference() -> None:
    families = {f"llama-{i}": "llama" for i in range(3)} | {f"gemma-{i}": "gemma" for i in range(3)}
    p_values = []
    for seed in range(12):
        scores = make_scores(families, n_words=10, n_prompts=2, effect=0.0, seed=100 + seed)
        ranked = rank_lexicon_words(scores, make_lexicon(10), families)
        tests = family_tests(prompt_medians(ranked), model_medians(ranked), n_permutations=99, seed=seed)
        p_values.extend(tests.loc[tests["unit"] == "model", "p_value"])
    assert 0.2 < np.mean(p_values) < 0.8  # uniform p-values average 0.5
    assert np.mean(np.array(p_values) < 0.05) < 0.15


def test_single_family_compares_categories_within_each_model() -> None:
    families = {"only": "llama"}
    scores = make_scores(families, n_words=20, n_prompts=3, effect=1.5, seed=2)
    result = analyze_values(scores, make_lexicon(20), families, n_permutations=300)
    assert result.compare == "categories"
    assert result.mixed_model is None and "at least 2 models" in result.notes[0]
    tests = result.tests.set_index("framing")
    assert (tests["p_bonferroni"] < 0.05).all()
    assert tests.loc["positive", "mean_a"] < tests.loc["positive", "mean_b"]  # agency ranked better
    with pytest.raises(UserError, match="needs at least 2 families"):
        analyze_values(scores, make_lexicon(20), families, compare="families", n_permutations=10)


def test_mixed_model_skipped_with_one_model_in_a_family() -> None:
    families = {"llama-a": "llama", "llama-b": "llama", "gemma-a": "gemma"}
    rows = analyze_values(make_scores(families, n_words=5, n_prompts=2), make_lexicon(5), families,
                          n_permutations=10).prompt_medians
    table, note = fit_mixed_model(rows)
    assert table is None and note is not None and "'gemma' has 1 model" in note


def test_lexicon_matching_no_words_is_a_user_error() -> None:
    scores = make_scores({"m": "llama"}, n_words=3, n_prompts=1)
    other = make_lexicon(3)
    other = type(other)("other", other.entries.assign(word=other.entries["word"] + "zz"))
    with pytest.raises(UserError, match="none of its 6 words"):
        analyze_values(scores, other, {"m": "llama"})
