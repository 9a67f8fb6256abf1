"""Shared checks and helpers for the token analyses: column validation and the aligned token text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from rewardlens.errors import UserError

GROUP_KEYS = ["model", "prompt_id"]


def require_columns(frame: pd.DataFrame, columns: Iterable[str], analysis: str) -> None:
    """Refuse a frame that lacks a column the analysis needs (one line, names the missing columns)."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise UserError(f"{analysis} needs sweep columns {', '.join(missing)}; the runs given do not have them")
    if frame.empty:
        raise UserError(f"{analysis}: the runs hold no rows")


def scored_tokens(frame: pd.DataFrame, include_special: bool = False) -> pd.DataFrame:
    """Rows with a finite score, special tokens left out unless asked for: what every analysis ranks."""
    keep = np.isfinite(frame["score"].to_numpy(dtype=np.float64))
    if not include_special and "is_special" in frame.columns:
        keep &= ~frame["is_special"].to_numpy(dtype=bool)
    return frame.loc[keep]


def token_text(frame: pd.DataFrame) -> pd.Series:
    """The decoded text of each token with its leading space kept as part of the text.

    Some tokenizers (SentencePiece with legacy decoding) drop the leading space of a lone token when decoding
    it, so a token flagged `leading_space` whose decoded text does not start with whitespace gets one space
    prepended: " the" of a byte-level BPE and "▁the" of SentencePiece then align as the same text.
    """
    text = frame["response"].astype(str)
    if "leading_space" not in frame.columns:
        return text
    needs_space = frame["leading_space"].to_numpy(dtype=bool) & ~text.str.match(r"\s").to_numpy(dtype=bool)
    return text.where(~needs_space, " " + text)


def groups(frame: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(model, prompt_id, rows) for every model x prompt, in sorted order for reproducible output."""
    for (model, prompt_id), rows in frame.groupby(GROUP_KEYS, sort=True, observed=True):
        yield str(model), str(prompt_id), rows


def descending_ranks(scores: np.ndarray, tie_break: np.ndarray) -> np.ndarray:
    """1-based ranks, 1 = highest score; ties are ordered by `tie_break` so the ranks are a permutation."""
    order = np.lexsort((tie_break, -scores))
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks
