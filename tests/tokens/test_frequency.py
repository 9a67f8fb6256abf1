import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from rewardlens.analysis.tokens import frequency_bias, word_features
from rewardlens.analysis.tokens.frequency import afinn_lexicon, english_zipf


def planted(sweep, n_words: int, zipf_slope: float, sentiment_slope: float, seed: int):
    """Made-up words with known frequency and sentiment; scores = 1 + slopes x predictors + noise."""
    rng = np.random.default_rng(seed)
    words = [f"w{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676)}" for i in range(n_words)]
    zipf = dict(zip(words, rng.uniform(1.0, 7.0, n_words), strict=True))
    sentiment = dict(zip(words, rng.choice([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5], n_words).astype(float), strict=True))
    scores = {
        prompt: [1.0 + zipf_slope * zipf[w] + sentiment_slope * sentiment[w] + rng.normal(scale=0.5) for w in words]
        for prompt in ("best", "worst")
    }
    texts = [(" " if i % 2 else "") + (w.capitalize() if i % 3 == 0 else w) for i, w in enumerate(words)]
    return sweep("m", texts, scores), zipf, sentiment


def test_planted_frequency_slope_is_recovered_with_a_ci_covering_the_truth(sweep):
    frame, zipf, sentiment = planted(sweep, 600, zipf_slope=0.4, sentiment_slope=-0.3, seed=2)
    result = frequency_bias(frame, sentiment=sentiment, zipf=zipf.__getitem__)
    assert set(result["polarity"]) == {"positive", "negative"} and set(result["prompt_id"]) == {
        "best",
        "worst",
    }
    for term, truth in (("zipf", 0.4), ("sentiment", -0.3), ("intercept", 1.0)):
        rows = result[result["term"] == term]
        assert len(rows) == 4
        assert ((rows["ci_low"] < truth) & (truth < rows["ci_high"])).all(), rows
    # Each polarity is fitted on its own words: the n of the two fits add up to all the words.
    counts = result[result["term"] == "zipf"].groupby("prompt_id")["n"].sum()
    assert (counts == 600).all()


def test_coefficients_equal_least_squares_on_the_same_rows(sweep):
    frame, zipf, sentiment = planted(sweep, 200, zipf_slope=-0.2, sentiment_slope=0.5, seed=4)
    result = frequency_bias(frame, sentiment=sentiment, zipf=zipf.__getitem__)
    features = word_features(frame, sentiment=sentiment, zipf=zipf.__getitem__)
    rows = features[(features["prompt_id"] == "best") & (features["polarity"] == "negative")]
    design = np.column_stack([np.ones(len(rows)), rows["zipf"], rows["sentiment"]])
    expected, *_ = np.linalg.lstsq(design, rows["score"].to_numpy(), rcond=None)
    fitted = result[(result["prompt_id"] == "best") & (result["polarity"] == "negative")].set_index("term")
    np.testing.assert_allclose(fitted.loc[["intercept", "zipf", "sentiment"], "coef"], expected, rtol=1e-9)


def test_join_is_on_the_stripped_lower_cased_text_of_word_tokens(sweep):
    sentiment = {"happy": 3.0, "sad": -2.0}
    zipf = {"happy": 5.0, "sad": 4.5}
    frame = sweep(
        "m",
        [" Happy", "happy", "HAPPY", " sad", "sad!", "table", " happy"],
        {"p": np.arange(7.0)},
        is_word=[True, True, True, True, False, True, True],
        is_special=[False, False, False, False, False, False, True],
    )
    features = word_features(frame, sentiment=sentiment, zipf=zipf.__getitem__)
    # 'sad!' is not a word token, 'table' has no sentiment, the last ' happy' is special.
    assert list(features["token_id"]) == [0, 1, 2, 3]
    assert list(features["word"]) == ["happy", "happy", "happy", "sad"]
    assert list(features["polarity"]) == ["positive"] * 3 + ["negative"]


def test_real_lexicons_ship_with_the_packages():
    lexicon = afinn_lexicon()
    assert lexicon["good"] > 0 > lexicon["terrible"]
    assert all(" " not in word for word in lexicon)
    assert english_zipf("the") > english_zipf("happiness") > english_zipf("xqzvjk") == 0.0


def test_real_lexicons_end_to_end(sweep):
    words = [
        "good",
        "great",
        "happy",
        "love",
        "nice",
        "best",
        "win",
        "bad",
        "sad",
        "hate",
        "awful",
        "worst",
        "lost",
    ]
    words += [
        "terrible",
        "fun",
        "joy",
        "pain",
        "angry",
        "kind",
        "evil",
        "hope",
        "fear",
        "jubilant",
        "abhorrent",
    ]
    rng = np.random.default_rng(0)
    frame = sweep("m", [" " + w for w in words], {"p": rng.normal(size=len(words))})
    features = word_features(frame)
    assert set(features["word"]) == set(words)  # every one is in AFINN and in wordfreq
    result = frequency_bias(frame)
    assert set(result["polarity"]) == {"positive", "negative"}
    assert result[["coef", "ci_low", "ci_high"]].notna().all().all()


def test_groups_too_small_to_fit_are_left_out(sweep):
    frame = sweep("m", ["happy", "sad"], {"p": [1.0, 2.0]})
    result = frequency_bias(frame, sentiment={"happy": 3.0, "sad": -2.0}, zipf={"happy": 5.0, "sad": 4.0}.get)
    assert isinstance(result, pd.DataFrame) and result.empty


def test_case_and_space_variants_of_a_word_are_one_observation(sweep):
    # Every word is scored under three spellings; the fit must use one row per word (the mean score),
    # not three observations that share one frequency and one sentiment.
    frame, zipf, sentiment = planted(sweep, 60, zipf_slope=0.3, sentiment_slope=0.2, seed=5)
    words = frame.drop_duplicates("response")
    tripled = []
    for offset, spell in enumerate((str.strip, lambda t: " " + t.strip().capitalize(), lambda t: t.strip().upper())):
        tripled.append(
            frame.assign(
                response=frame["response"].map(spell),
                token_id=frame["token_id"] + offset * 1000,
                score=frame["score"] + offset * 0.1,
            )
        )
    variants = pd.concat(tripled, ignore_index=True)
    result = frequency_bias(variants, sentiment=sentiment, zipf=zipf.__getitem__)
    fitted = result[(result["prompt_id"] == "best") & (result["polarity"] == "positive")].set_index("term")
    assert (fitted["n_tokens"] == 3 * fitted["n"]).all()
    features = word_features(variants, sentiment=sentiment, zipf=zipf.__getitem__)
    rows = features[(features["prompt_id"] == "best") & (features["polarity"] == "positive")]
    per_word = rows.groupby("word").agg(
        score=("score", "mean"), zipf=("zipf", "first"), sentiment=("sentiment", "first")
    )
    assert fitted.loc["zipf", "n"] == len(per_word) == rows["word"].nunique() < len(words)
    design = np.column_stack([np.ones(len(per_word)), per_word["zipf"], per_word["sentiment"]])
    expected, *_ = np.linalg.lstsq(design, per_word["score"].to_numpy(), rcond=None)
    np.testing.assert_allclose(fitted.loc[["intercept", "zipf", "sentiment"], "coef"], expected, rtol=1e-9)
    zipf_rows = result[result["term"] == "zipf"]
    assert zipf_rows["p_adjusted"].to_numpy() == pytest.approx(
        multipletests(zipf_rows["p_value"], method="fdr_bh")[1], abs=1e-12
    )
