"""Ranks of scored responses within each model x prompt (1 = the highest score).

Scores of different reward models live on unrelated scales; ranks within a model and prompt make them
comparable. Ties share the average rank. A response scored twice under the same prompt (a word listed
twice in a lexicon, an import with duplicate rows) is counted once, with its mean score, so duplicates
do not shift the ranks of the other words.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

RANK_GROUP: tuple[str, ...] = ("model", "prompt_id")


def rank_responses(
    scores: pd.DataFrame, by: Sequence[str] = RANK_GROUP, item: str = "response"
) -> pd.DataFrame:
    """One row per (`by`..., `item`) with its mean `score` and `rank` (1 = best, ties averaged).

    Other columns are kept from the first row of each item (they describe the prompt or the model).
    """
    keys = [*by, item]
    extra = [column for column in scores.columns if column not in (*keys, "score")]
    grouped = scores.groupby(keys, sort=False, dropna=False)
    deduplicated = grouped["score"].mean().to_frame()
    if extra:
        deduplicated = deduplicated.join(grouped[extra].first())
    deduplicated = deduplicated.reset_index()
    deduplicated["rank"] = deduplicated.groupby(list(by), sort=False)["score"].rank(
        method="average", ascending=False
    )
    return deduplicated


__all__ = ["RANK_GROUP", "rank_responses"]
