"""Frequency bias: do reward models prefer common words, beyond what the words' sentiment explains?

Each word token is joined, by its stripped lower-cased text, to its English word frequency on the Zipf scale
(log10 of occurrences per billion words, from `wordfreq`) and to its AFINN-165 sentiment (integers -5..5, from
the `afinn` package). Per model x prompt, an OLS of `score ~ zipf + sentiment` is fitted separately for
positive and negative words, so that the frequency slope is not confounded by positive words being more common
than negative ones. Observations are words: the tokens that spell one word (" Happy", "happy") share its
frequency and sentiment, so they are not independent observations of the slope; they are collapsed into one
row per word with their mean score (`n` words, `n_tokens` tokens). Words that wordfreq does not know (Zipf 0,
a floor rather than a measurement) are left out. `p_adjusted` is Benjamini-Hochberg FDR over the tests of
one term (e.g. every zipf slope of the table).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm

from rewardlens.analysis.multiplicity import benjamini_hochberg
from rewardlens.analysis.tokens._frame import groups, require_columns, scored_tokens

COLUMNS = [
    "model",
    "prompt_id",
    "polarity",
    "term",
    "coef",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "n",
    "n_tokens",
    "r_squared",
]
TERMS = ["intercept", "zipf", "sentiment"]
# Three coefficients need more than three observations for any residual degrees of freedom.
_MIN_OBSERVATIONS = 5


@cache
def afinn_lexicon() -> dict[str, float]:
    """AFINN-165 single-word valences (multi-word phrases left out), from the word list the package ships."""
    import afinn

    path = Path(afinn.__file__).parent / "data" / "AFINN-en-165.txt"
    lexicon = afinn.Afinn.read_word_file(str(path))
    return {word: float(value) for word, value in lexicon.items() if " " not in word}


def english_zipf(word: str) -> float:
    """Zipf frequency of an English word (0 when wordfreq has never seen it)."""
    from wordfreq import zipf_frequency

    return float(zipf_frequency(word, "en"))


def word_features(
    frame: pd.DataFrame,
    sentiment: Mapping[str, float] | None = None,
    zipf: Callable[[str], float] | None = None,
    include_special: bool = False,
) -> pd.DataFrame:
    """Word tokens with a known frequency and a non-zero sentiment: the rows plus `word`, `zipf`, `sentiment`
    and `polarity` ("positive" / "negative")."""
    require_columns(frame, ["model", "prompt_id", "response", "score", "is_word"], "frequency")
    sentiment = afinn_lexicon() if sentiment is None else sentiment
    zipf = english_zipf if zipf is None else zipf
    rows = scored_tokens(frame, include_special)
    rows = rows[rows["is_word"].to_numpy(dtype=bool)]
    words = rows["response"].astype(str).str.strip().str.lower()
    # Look each distinct word up once: a vocabulary repeats across prompts and models.
    distinct = pd.Index(words.unique())
    valence = pd.Series([sentiment.get(w, 0.0) for w in distinct], index=distinct, dtype=np.float64)
    valued = distinct[valence.to_numpy() != 0]
    frequency = pd.Series([zipf(w) for w in valued], index=valued, dtype=np.float64)
    features = rows.assign(
        word=words.to_numpy(),
        zipf=words.map(frequency).to_numpy(dtype=np.float64),
        sentiment=words.map(valence).to_numpy(dtype=np.float64),
    )
    features = features[(features["sentiment"] != 0) & (features["zipf"] > 0)]
    return features.assign(polarity=np.where(features["sentiment"] > 0, "positive", "negative"))


def one_row_per_word(group: pd.DataFrame) -> pd.DataFrame:
    """The tokens of one word (its case and space variants) as one row: mean score, `n_tokens`."""
    grouped = group.groupby("word", sort=True)
    return grouped.agg(
        score=("score", "mean"), zipf=("zipf", "first"), sentiment=("sentiment", "first"), n_tokens=("score", "size")
    ).reset_index()


def _fit(tokens: pd.DataFrame, confidence: float) -> list[dict[str, object]]:
    """One OLS `score ~ zipf + sentiment` over words; a sentiment column without variance is fitted without it."""
    group = one_row_per_word(tokens)
    predictors = ["zipf", "sentiment"] if group["sentiment"].nunique() > 1 else ["zipf"]
    design = sm.add_constant(group[predictors].to_numpy(dtype=np.float64), has_constant="add")
    result = sm.OLS(group["score"].to_numpy(dtype=np.float64), design).fit()
    intervals = result.conf_int(alpha=1.0 - confidence)
    fitted = dict(zip(["intercept", *predictors], range(len(predictors) + 1), strict=True))
    records: list[dict[str, object]] = []
    for term in TERMS:
        i = fitted.get(term)
        records.append(
            {
                "term": term,
                "coef": float(result.params[i]) if i is not None else float("nan"),
                "ci_low": float(intervals[i, 0]) if i is not None else float("nan"),
                "ci_high": float(intervals[i, 1]) if i is not None else float("nan"),
                "p_value": float(result.pvalues[i]) if i is not None else float("nan"),
                "p_adjusted": float("nan"),
                "n": len(group),
                "n_tokens": len(tokens),
                "r_squared": float(result.rsquared),
            }
        )
    return records


def frequency_bias(
    frame: pd.DataFrame,
    confidence: float = 0.95,
    sentiment: Mapping[str, float] | None = None,
    zipf: Callable[[str], float] | None = None,
    include_special: bool = False,
) -> pd.DataFrame:
    """Per model x prompt x polarity: OLS coefficients of intercept, zipf and sentiment with CIs.

    `sentiment` (word -> valence) and `zipf` (word -> Zipf frequency) default to AFINN-165 and wordfreq's
    English list. Groups with fewer than 5 words or no spread in frequency are left out.
    """
    return fit_word_features(word_features(frame, sentiment, zipf, include_special), confidence)


def fit_word_features(features: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """`frequency_bias` from the `word_features` table (for a caller that also plots the features)."""
    records: list[dict[str, object]] = []
    for model, prompt_id, rows in groups(features):
        for polarity in ("positive", "negative"):
            group = rows[rows["polarity"] == polarity]
            if group["word"].nunique() < _MIN_OBSERVATIONS or group["zipf"].nunique() < 2:
                continue
            for record in _fit(group, confidence):
                records.append({"model": model, "prompt_id": prompt_id, "polarity": polarity, **record})
    table = pd.DataFrame.from_records(records, columns=COLUMNS)
    for _, rows_of_term in table.groupby("term", sort=False):
        table.loc[rows_of_term.index, "p_adjusted"] = benjamini_hochberg(rows_of_term["p_value"])
    return table
