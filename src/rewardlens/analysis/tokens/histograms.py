"""Score histograms per model x prompt: the bin counts the histogram figure draws.

Counted when a model x prompt is read, so the figure of a study never needs its scores (141M of them for ten
models x 54 prompts x 262,144 tokens); each histogram has its own bins over its own range, as
`numpy.histogram` (and matplotlib's `hist`) would choose for those scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rewardlens.analysis.tokens._frame import groups, scored_tokens

BINS = 60


@dataclass(frozen=True)
class ScoreHistogram:
    """`counts[i]` scores fall in [edges[i], edges[i + 1]) (the last bin includes its right edge)."""

    model: str
    prompt_id: str
    counts: np.ndarray
    edges: np.ndarray


def score_histogram(model: str, prompt_id: str, scores: np.ndarray, bins: int = BINS) -> ScoreHistogram:
    counts, edges = np.histogram(np.asarray(scores, dtype=np.float64), bins=bins)
    return ScoreHistogram(model, prompt_id, counts, edges)


def score_histograms(frame: pd.DataFrame, bins: int = BINS) -> list[ScoreHistogram]:
    """The histogram of every model x prompt of a frame of sweep rows (scored tokens only), in sorted order."""
    return [
        score_histogram(model, prompt_id, rows["score"].to_numpy(dtype=np.float64), bins)
        for model, prompt_id, rows in groups(scored_tokens(frame))
    ]


__all__ = ["BINS", "ScoreHistogram", "score_histogram", "score_histograms"]
