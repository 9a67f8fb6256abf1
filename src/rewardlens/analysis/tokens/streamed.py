"""The per-model x prompt token analyses over a stream of groups, so that no analysis holds every run at once.

`analyze_tokens` computes each analysis on one frame of all rows. Here the same functions run on one
model x prompt at a time (`SweepRows.groups` reads them from DuckDB in sorted order, rows in load order) and
their pieces are concatenated: every analysis of this module is computed within a model x prompt, or within
a model (framing), so the concatenation equals the one-frame result; the few statistics taken over the whole
table (Benjamini-Hochberg adjustments, the frequency fits) are computed after it, on the joined pieces.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

import numpy as np
import pandas as pd

from rewardlens.analysis.multiplicity import benjamini_hochberg
from rewardlens.analysis.tokens._frame import scored_tokens, token_text
from rewardlens.analysis.tokens.agreement import texts_vocabulary
from rewardlens.analysis.tokens.framing import framing_tables, model_pairs
from rewardlens.analysis.tokens.frequency import english_zipf, word_features
from rewardlens.analysis.tokens.histograms import ScoreHistogram, score_histogram
from rewardlens.analysis.tokens.identity import GROUP_COLUMNS, IDENTITY_COLUMNS, identity_groups, identity_percentiles
from rewardlens.analysis.tokens.moments import COLUMNS as MOMENT_COLUMNS
from rewardlens.analysis.tokens.moments import moments
from rewardlens.analysis.tokens.top_bottom import COLUMNS as TOP_BOTTOM_COLUMNS
from rewardlens.analysis.tokens.top_bottom import top_bottom
from rewardlens.errors import UserError

# What the group analyses read; the prompt text and raw token string are never needed.
GROUP_COLUMNS_READ = ["token_id", "response", "score", "is_special", "leading_space", "is_word"]
# What is kept of the word features (the frequency fits and scatter read no more).
FEATURE_COLUMNS = ["model", "prompt_id", "word", "score", "zipf", "sentiment", "polarity"]
POLARITY = pd.CategoricalDtype(["negative", "positive"])


class GroupSource(Protocol):
    """What the stream needs of the runs (`rewardlens.runs.query.SweepRows` provides it)."""

    columns: list[str]

    def groups(self, columns: list[str], scored_only: bool = True) -> Iterator[tuple[str, str, pd.DataFrame]]: ...


@dataclass
class GroupResults:
    """The tables the group analyses produce, and the bin counts the histogram figure draws."""

    top_bottom: pd.DataFrame
    moments: pd.DataFrame
    identity: pd.DataFrame
    identity_groups: pd.DataFrame
    features: pd.DataFrame | None
    framing: tuple[pd.DataFrame, pd.DataFrame] | None
    # (model, token_id, text, n_ids) of every scored token, as `agreement.texts_vocabulary` gives it.
    vocabulary: pd.DataFrame
    histograms: list[ScoreHistogram] | None = None
    notes: list[str] = field(default_factory=list)


def _concat(pieces: list[pd.DataFrame], empty: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    kept = [piece for piece in pieces if not piece.empty]
    return pd.concat(kept, ignore_index=True) if kept else empty()


def group_analyses(
    source: GroupSource,
    *,
    k: int,
    seed: int,
    n_resamples: int,
    framing_pairs: list[tuple[str, str]] | None,
    identity_terms: pd.DataFrame,
    figures: bool,
    step: Callable[[str], None] | None = None,
) -> GroupResults:
    """Top/bottom tokens, moments, identity terms, word features and framing pairs over the group stream."""
    has_words = "is_word" in source.columns
    zipf = cache(english_zipf)  # a vocabulary repeats in every model x prompt: look each word up once
    histograms: list[ScoreHistogram] | None = [] if figures else None
    tops, shapes, terms, term_groups, features = [], [], [], [], []
    framed_prompts = {prompt for pair in framing_pairs or [] for prompt in pair}
    summaries: list[pd.DataFrame] = []
    movers: list[pd.DataFrame] = []
    held: dict[str, pd.DataFrame] = {}
    shared: tuple[np.ndarray, pd.DataFrame, pd.Series] | None = None  # ids, raw text columns, token text
    texts: list[pd.DataFrame] = []  # (model, token_id, text) pieces of the vocabulary
    current_model: str | None = None

    def finish_model() -> None:
        if current_model is not None and framing_pairs:
            # One pair's table at a time (a row per shared token): summarised before the next is made.
            summary, moved = framing_tables(model_pairs(current_model, held, framing_pairs))
            summaries.append(summary)
            movers.append(moved)
        held.clear()
        _return_freed_memory()

    for model, prompt_id, all_rows in source.groups(GROUP_COLUMNS_READ, scored_only=False):
        _refuse_repeats(model, prompt_id, all_rows)
        rows = scored_tokens(all_rows)
        if rows.empty:
            continue  # as in `groups` of one frame: a model x prompt without a scored token is not analysed
        if model != current_model:
            finish_model()
            current_model = model
            shared = None
            if step is not None:
                step(f"token analyses: {model}")
        tops.append(top_bottom(rows, k=k))
        shapes.append(moments(rows, n_resamples=n_resamples, seed=seed))
        terms.append(identity_percentiles(rows, identity_terms))
        term_groups.append(identity_groups(rows, identity_terms))
        if has_words:
            # Only what the fits and the scatter read: a study keeps these for every model x prompt.
            words = word_features(rows, zipf=zipf)[FEATURE_COLUMNS]
            features.append(words.astype({"polarity": POLARITY}))
        if histograms is not None:
            histograms.append(score_histogram(model, prompt_id, rows["score"].to_numpy(dtype=np.float64)))
        # A sweep lists one vocabulary under every prompt: when the token ids and texts equal the last ones
        # of this model, the prompt shares that text column (not a copy) and adds nothing to the vocabulary.
        ids = rows["token_id"].to_numpy()
        raw = rows[[c for c in ("response", "leading_space") if c in rows.columns]]
        if shared is not None and np.array_equal(shared[0], ids) and shared[1].equals(raw):
            text = shared[2]
        else:
            text = token_text(rows)
            shared = (ids, raw, text)
            texts.append(pd.DataFrame({"model": model, "token_id": ids, "text": text.to_numpy()}, copy=False))
        if prompt_id in framed_prompts:  # only what a framed pair reads
            held[prompt_id] = pd.DataFrame(
                {"token_id": rows["token_id"], "score": rows["score"], "response": text}, copy=False
            )
    finish_model()

    identity_table = _concat(terms, lambda: pd.DataFrame(columns=IDENTITY_COLUMNS))
    group_table = _concat(term_groups, lambda: pd.DataFrame.from_records([], columns=GROUP_COLUMNS))
    group_table["p_adjusted"] = benjamini_hochberg(group_table["p_value"])
    return GroupResults(
        top_bottom=_concat(tops, lambda: pd.DataFrame(columns=TOP_BOTTOM_COLUMNS)),
        moments=_concat(shapes, lambda: pd.DataFrame.from_records([], columns=MOMENT_COLUMNS)),
        identity=identity_table,
        identity_groups=group_table,
        features=pd.concat(features, ignore_index=True) if features else None,
        framing=_framing_result(summaries, movers) if framing_pairs is not None else None,
        vocabulary=texts_vocabulary(_concat(texts, lambda: pd.DataFrame(columns=["model", "token_id", "text"]))),
        histograms=histograms,
    )


def _return_freed_memory() -> None:
    """Give the heap freed by one model's frames back to the OS (glibc keeps it otherwise, and the next
    model's frames land elsewhere: resident memory would grow by a model's worth each time)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to give back
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _refuse_repeats(model: str, prompt_id: str, rows: pd.DataFrame) -> None:
    """Refuse runs that score one token twice under one prompt (`load_token_runs`'s overlap check).

    Checked per model x prompt as the rows stream; the token named is the first repeat of that model x prompt.
    """
    repeated = rows["token_id"].duplicated().to_numpy()
    if repeated.any():
        token_id = rows["token_id"].to_numpy()[repeated.argmax()]
        raise UserError(f"runs overlap: model {model} scored token {token_id} under prompt {prompt_id} more than once")


def _framing_result(summaries: list[pd.DataFrame], movers: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    empty_summary, empty_movers = framing_tables([])
    return (
        _concat(summaries, lambda: empty_summary),
        _concat(movers, lambda: empty_movers),
    )


__all__ = ["GroupResults", "group_analyses"]
