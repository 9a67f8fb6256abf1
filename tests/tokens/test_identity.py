import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from rewardlens.analysis.tokens import identity_groups, identity_percentiles, load_identity_terms
from rewardlens.analysis.tokens.identity import mid_rank_percentiles
from rewardlens.errors import UserError

GROUPS = {"religion", "ethnicity", "nationality", "gender", "sexual_orientation", "disability", "politics"}


def test_bundled_list_covers_the_seven_groups_in_every_spelling():
    terms = load_identity_terms()
    assert set(terms["group"]) == GROUPS
    muslim = set(terms.loc[terms["term"] == "Muslim", "text"])
    assert {"Muslim", " Muslim", "muslim", " muslim", "Muslims", " Muslims", "muslims"} <= muslim
    women = set(terms.loc[terms["term"] == "woman", "text"])
    assert {"woman", " Woman", "women", " Women"} <= women
    assert not terms.duplicated(["group", "text"]).any()


def test_custom_list_and_malformed_lists(tmp_path):
    good = tmp_path / "terms.yaml"
    good.write_text("animals:\n  - [cat, cats]\n  - dog\n")
    terms = load_identity_terms(good)
    assert set(terms["text"]) == {"cat", " cat", "Cat", " Cat", "cats", " cats", "Cats", " Cats"} | {
        "dog",
        " dog",
        "Dog",
        " Dog",
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just a list\n")
    with pytest.raises(UserError):
        load_identity_terms(bad)
    with pytest.raises(UserError):
        load_identity_terms(tmp_path / "missing.yaml")


def test_percentiles_equal_scipy_and_ties_share_a_percentile():
    scores = np.array([3.0, 1.0, 2.0, 2.0, 5.0, 0.5])
    expected = [stats.percentileofscore(scores, s, kind="mean") for s in scores]
    np.testing.assert_allclose(mid_rank_percentiles(scores), expected)


def test_planted_low_identity_terms_are_flagged_and_summarised(sweep, texts):
    rng = np.random.default_rng(1)
    vocab = texts(400) + [" Muslims", "gay", " Catholic", " women"]
    scores = np.concatenate([rng.normal(size=400), [-10.0, -9.0, 0.0, 0.1]])
    frame = sweep("m", vocab, {"best": scores, "worst": -scores})
    result = identity_percentiles(frame)
    best = result[result["prompt_id"] == "best"].set_index("text")
    assert set(best.index) == {" Muslims", "gay", " Catholic", " women"}
    assert best.loc[" Muslims", "group"] == "religion" and best.loc["gay", "group"] == "sexual_orientation"
    assert best.loc[" Muslims", "percentile"] == pytest.approx(100 * 0.5 / 404)
    assert best.loc[" Muslims", "bottom_1pct"] and best.loc["gay", "bottom_1pct"]
    assert not best.loc[" Catholic", "bottom_1pct"]
    religion_median = np.median(best.loc[[" Muslims", " Catholic"], "percentile"])
    assert best.loc[" Muslims", "group_median_percentile"] == pytest.approx(religion_median)
    worst = result[result["prompt_id"] == "worst"].set_index("text")
    assert not worst["bottom_1pct"].any()  # under the sign-flipped prompt they are at the top

    summary = identity_groups(frame).set_index(["prompt_id", "group"])
    row = summary.loc[("best", "religion")]
    assert row["n_tokens"] == 2 and row["n_bottom_1pct"] == 1
    others = np.delete(scores, [400, 402])
    test = stats.mannwhitneyu(scores[[400, 402]], others, alternative="two-sided")
    assert row["mannwhitney_u"] == pytest.approx(test.statistic) and row["p_value"] == pytest.approx(test.pvalue)
    assert row["prob_higher"] == pytest.approx(test.statistic / (2 * len(others)))
    assert row["median_percentile"] == pytest.approx(religion_median)
    # Benjamini-Hochberg over every group test of the table, both prompts included.
    everything = identity_groups(frame)
    expected = multipletests(everything["p_value"], method="fdr_bh")[1]
    assert everything["p_adjusted"].to_numpy() == pytest.approx(expected, abs=1e-12)


def test_no_identity_term_gives_an_empty_table(sweep, texts):
    frame = sweep("m", texts(20), {"p": np.arange(20.0)})
    assert identity_percentiles(frame).empty and identity_groups(frame).empty
    assert isinstance(identity_groups(frame), pd.DataFrame)
