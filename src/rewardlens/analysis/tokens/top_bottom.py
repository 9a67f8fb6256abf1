"""Optimal and pessimal tokens: the k highest- and lowest-scored tokens per model x prompt."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rewardlens.analysis.tokens._frame import groups, require_columns, scored_tokens, token_text
from rewardlens.errors import UserError

COLUMNS = ["model", "prompt_id", "end", "rank", "token_id", "text", "score"]


def top_bottom(frame: pd.DataFrame, k: int = 20, include_special: bool = False) -> pd.DataFrame:
    """Top and bottom `k` tokens of every model x prompt.

    `end` is "top" (rank 1 = highest score) or "bottom" (rank 1 = lowest score). Equal scores are ordered by
    token id so the output is reproducible. A vocabulary smaller than 2k gives overlapping ends.
    """
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    require_columns(frame, ["model", "prompt_id", "token_id", "response", "score"], "top/bottom tokens")
    rows = scored_tokens(frame, include_special)
    pieces: list[pd.DataFrame] = []
    for model, prompt_id, group in groups(rows):
        scores = group["score"].to_numpy(dtype=np.float64)
        ids = group["token_id"].to_numpy(dtype=np.int64)
        text = token_text(group).to_numpy()
        for end, order in (("top", np.lexsort((ids, -scores))), ("bottom", np.lexsort((ids, scores)))):
            chosen = order[:k]
            pieces.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "prompt_id": prompt_id,
                        "end": end,
                        "rank": np.arange(1, len(chosen) + 1),
                        "token_id": ids[chosen],
                        "text": text[chosen],
                        "score": scores[chosen],
                    }
                )
            )
    if not pieces:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(pieces, ignore_index=True)[COLUMNS]
