"""Framing: how a model's token ranking changes between a positively and a negatively framed prompt.

People judge the same options differently when a question is framed as a gain or as a loss. A reward model
asked for "the best thing" and for "the worst thing" ranks one vocabulary twice; Kendall's tau between the two
rankings measures how much of the ranking survives the change of frame (1: the frame is ignored, -1: the
ranking is reversed), and the tokens whose rank moves most show what the model reads into the frame.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from rewardlens.analysis.tokens._frame import descending_ranks, require_columns, scored_tokens, token_text
from rewardlens.errors import UserError

FRAMING_COLUMNS = [
    "model",
    "positive_prompt",
    "negative_prompt",
    "n",
    "kendall_tau",
    "spearman_rho",
    "top_falling",
    "top_rising",
]
MOVER_COLUMNS = [
    "model",
    "positive_prompt",
    "negative_prompt",
    "direction",
    "token_id",
    "text",
    "rank_positive",
    "rank_negative",
    "rank_shift",
]
_ALIASES = {
    "pos": "positive",
    "positive": "positive",
    "+": "positive",
    "neg": "negative",
    "negative": "negative",
    "-": "negative",
}


def normalise_framing(value: str) -> str:
    """'pos'/'positive'/'+' -> 'positive', 'neg'/'negative'/'-' -> 'negative'; else a user error."""
    framing = _ALIASES.get(value.strip().lower())
    if framing is None:
        raise UserError(f"framing must be pos or neg, got {value!r}")
    return framing


def framing_pairs(
    framings: Mapping[str, str], known: set[str], match: Mapping[str, Hashable] | None
) -> list[tuple[str, str]]:
    """The (positive, negative) prompt pairs to compare, sorted; a framing of an unknown prompt is an error.

    With `match`, a positive and a negative prompt are paired only when their keys are equal (prompts without
    a key pair with every prompt of the other frame).
    """
    unknown = sorted(set(framings) - known)
    if unknown:
        raise UserError(f"framing given for prompt id(s) no run has: {', '.join(unknown)}")
    framed = {prompt: normalise_framing(value) for prompt, value in framings.items()}
    keys = dict(match or {})
    return [
        (positive, negative)
        for positive in sorted(p for p, f in framed.items() if f == "positive")
        for negative in sorted(p for p, f in framed.items() if f == "negative")
        if positive not in keys or negative not in keys or keys[positive] == keys[negative]
    ]


def _framed_pairs(
    frame: pd.DataFrame,
    framings: Mapping[str, str],
    include_special: bool,
    match: Mapping[str, Hashable] | None,
) -> Iterator[tuple[str, str, str, pd.DataFrame]]:
    """(model, positive prompt, negative prompt, tokens scored under both with their ranks) for each pair."""
    require_columns(frame, ["model", "prompt_id", "token_id", "response", "score"], "framing")
    pairs = framing_pairs(framings, set(frame["prompt_id"].astype(str)), match)
    rows = scored_tokens(frame, include_special)
    for model, model_rows in rows.groupby("model", sort=True, observed=True):
        by_prompt = {str(prompt): group for prompt, group in model_rows.groupby("prompt_id", observed=True)}
        yield from model_pairs(str(model), by_prompt, pairs)


def model_pairs(
    model: str, by_prompt: Mapping[str, pd.DataFrame], pairs: list[tuple[str, str]]
) -> Iterator[tuple[str, str, str, pd.DataFrame]]:
    """The framed pairs of one model, from its scored rows by prompt (token_id, score, response columns)."""
    for positive, negative in pairs:
        if positive in by_prompt and negative in by_prompt:
            yield model, positive, negative, _paired_ranks(by_prompt[positive], by_prompt[negative])


def _paired_ranks(positive: pd.DataFrame, negative: pd.DataFrame) -> pd.DataFrame:
    """Tokens scored under both prompts with ranks (1 = best) within the shared tokens."""
    left = positive[["token_id", "score"]].assign(text=token_text(positive).to_numpy())
    paired = left.merge(negative[["token_id", "score"]], on="token_id", suffixes=("_positive", "_negative"))
    ids = paired["token_id"].to_numpy(dtype=np.int64)
    for side in ("positive", "negative"):
        paired[f"rank_{side}"] = descending_ranks(paired[f"score_{side}"].to_numpy(dtype=np.float64), ids)
    paired["rank_shift"] = paired["rank_negative"] - paired["rank_positive"]
    return paired


def _movers(paired: pd.DataFrame, n_movers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The n tokens that fall most (rank_shift largest) and rise most under the negative frame."""
    ordered = paired.sort_values(["rank_shift", "token_id"], kind="stable")
    falling = ordered[ordered["rank_shift"] > 0].iloc[::-1].head(n_movers)
    rising = ordered[ordered["rank_shift"] < 0].head(n_movers)
    return falling, rising


def _correlations(paired: pd.DataFrame) -> tuple[float, float]:
    if len(paired) < 2:
        return float("nan"), float("nan")
    positive, negative = paired["score_positive"], paired["score_negative"]
    return (
        float(stats.kendalltau(positive, negative).statistic),
        float(stats.spearmanr(positive, negative).statistic),
    )


def framing_analysis(
    frame: pd.DataFrame,
    framings: Mapping[str, str],
    n_movers: int = 10,
    include_special: bool = False,
    match: Mapping[str, Hashable] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`framing` and `framing_movers` in one pass over the prompt pairs: (summary, movers)."""
    return framing_tables(_framed_pairs(frame, framings, include_special, match), n_movers)


def framing_tables(
    framed: Iterable[tuple[str, str, str, pd.DataFrame]], n_movers: int = 10
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, movers) of the framed pairs `_framed_pairs` or `model_pairs` yield."""
    records: list[dict[str, object]] = []
    pieces: list[pd.DataFrame] = []
    for model, positive, negative, paired in framed:
        falling, rising = _movers(paired, n_movers)
        tau, rho = _correlations(paired)
        records.append(
            {
                "model": model,
                "positive_prompt": positive,
                "negative_prompt": negative,
                "n": len(paired),
                "kendall_tau": tau,
                "spearman_rho": rho,
                "top_falling": " | ".join(map(repr, falling["text"])),
                "top_rising": " | ".join(map(repr, rising["text"])),
            }
        )
        for direction, movers in (("falling", falling), ("rising", rising)):
            # The texts as new strings: a slice of the pair's arrow-backed text column would keep all of it
            # alive (about 90 MB a model of a 65k-token study, for 20 rows a pair).
            labelled = movers.assign(
                text=movers["text"].tolist(),
                model=model,
                positive_prompt=positive,
                negative_prompt=negative,
                direction=direction,
            )
            pieces.append(labelled[MOVER_COLUMNS])
    summary = pd.DataFrame.from_records(records, columns=FRAMING_COLUMNS)
    movers_table = pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=MOVER_COLUMNS)
    return summary, movers_table


def framing(
    frame: pd.DataFrame,
    framings: Mapping[str, str],
    n_movers: int = 10,
    include_special: bool = False,
    match: Mapping[str, Hashable] | None = None,
) -> pd.DataFrame:
    """Per model and (positive, negative) prompt pair: Kendall's tau-b and Spearman's rho between the two
    rankings, and the texts that fall (`top_falling`) and rise (`top_rising`) most under the negative frame,
    joined with ' | '. `match` (prompt id -> key) pairs only prompts with equal keys, e.g. the same scope
    and phrasing, so that a pair differs in its frame alone."""
    return framing_analysis(frame, framings, n_movers, include_special, match)[0]


def framing_movers(
    frame: pd.DataFrame,
    framings: Mapping[str, str],
    n_movers: int = 10,
    include_special: bool = False,
    match: Mapping[str, Hashable] | None = None,
) -> pd.DataFrame:
    """The tokens behind `framing`'s top_falling/top_rising, one row each with both ranks and the shift
    (rank under the negative prompt minus rank under the positive prompt; positive = falls)."""
    return framing_analysis(frame, framings, n_movers, include_special, match)[1]
