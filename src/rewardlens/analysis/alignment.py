"""Aligning two vocabularies that share no token ids, on the decoded text of their tokens.

Two tokenizers give the same text different ids, so entries are matched by a text key:

- `exact`: the text as the model reads it, leading space kept (" love" and "love" differ);
- `stripped`: surrounding whitespace removed (" love" and "love" are one text). A chat template ends its
  prefix with a newline and a plain one with "Assistant:", so a word's natural first token is "love" under
  one and " love" under the other; stripping compares the same word across templates.

A key can come from several ids of one vocabulary (" love" and "love" under `stripped`; byte-level and
SentencePiece duplicates under `exact`). `duplicates` says what stands for such a text: `max` keeps the id
with the highest value (per prompt, as the implicit-reward study did with log-probabilities), `drop` leaves
the text out of the comparison (as the token agreement analysis does, where no id is privileged). Texts that
are empty after stripping or hold U+FFFD (a byte fragment of a multi-byte character) are never aligned. The
counts of everything left out, on each side, are kept for `run.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

TextRule = Literal["exact", "stripped"]
DuplicateRule = Literal["max", "drop"]
TEXT_RULES: tuple[str, ...] = ("exact", "stripped")
DUPLICATE_RULES: tuple[str, ...] = ("max", "drop")
_REPLACEMENT = "\ufffd"


def text_keys(texts: Sequence[str], rule: TextRule = "exact") -> np.ndarray:
    """The alignment key of each text; "" marks a text that cannot be aligned (empty, or a byte fragment)."""
    if rule not in TEXT_RULES:
        raise ValueError(f"unknown text rule {rule!r} (use {', '.join(TEXT_RULES)})")
    keys = np.empty(len(texts), dtype=object)
    for index, text in enumerate(texts):
        key = text.strip() if rule == "stripped" else text
        keys[index] = "" if _REPLACEMENT in key else key
    return keys


@dataclass(frozen=True)
class AlignedSide:
    """One vocabulary's part of an alignment: the ids that map to a shared text and that text's index."""

    ids: np.ndarray  # int64, the ids kept (several may share a code under `max`)
    codes: np.ndarray  # int64, index into `TextAlignment.texts` of each kept id
    counts: dict[str, int]

    def pick(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per shared text: the highest of `values[id]` over its ids, and the id that has it (lowest id on ties).

        `values` is indexed by token id (e.g. a whole-vocabulary log-probability vector).
        """
        picked = np.asarray(values, dtype=np.float64)[self.ids]
        # Sorted by text, then by value descending (NaN last); the first entry of each text is its best.
        order = np.lexsort((self.ids, -picked, self.codes))
        sorted_codes = self.codes[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = sorted_codes[1:] != sorted_codes[:-1]
        best = order[first]
        return picked[best], self.ids[best]


@dataclass(frozen=True)
class TextAlignment:
    """The texts that both vocabularies hold, and how each side maps its ids onto them."""

    texts: np.ndarray  # object, sorted
    sides: tuple[AlignedSide, AlignedSide]
    text_rule: str
    duplicates: str

    def describe(self, names: tuple[str, str] = ("first", "second")) -> dict[str, Any]:
        """The rule and the counts of kept and dropped entries on each side (for run.json)."""
        return {
            "by": "text",
            "text_rule": self.text_rule,
            "duplicates": self.duplicates,
            "rule": describe_rule(self.text_rule, self.duplicates),
            "n_shared_texts": len(self.texts),
            **{name: dict(side.counts) for name, side in zip(names, self.sides, strict=True)},
        }


def describe_rule(text_rule: str, duplicates: str) -> str:
    key = "decoded text with surrounding whitespace stripped" if text_rule == "stripped" else "exact decoded text"
    how = (
        "a text with several ids keeps the highest value per prompt"
        if duplicates == "max"
        else "a text with several ids is dropped"
    )
    return f"aligned on {key}; {how}; empty and U+FFFD texts dropped; texts of only one side dropped"


def _side_keys(keys: np.ndarray, duplicates: DuplicateRule) -> tuple[np.ndarray, dict[str, int]]:
    """Mask of the entries of one side that may be aligned (before sharing), and its counts."""
    usable = keys != ""
    distinct, inverse, counts = np.unique(keys[usable], return_inverse=True, return_counts=True)
    is_duplicate = np.zeros(len(keys), dtype=bool)
    is_duplicate[usable] = counts[inverse] > 1
    n_duplicate_texts = int((counts > 1).sum())
    keep = usable & ~is_duplicate if duplicates == "drop" else usable
    summary = {
        "n_ids": len(keys),
        "n_unusable_ids": int((~usable).sum()),
        "n_texts": len(distinct),
        "n_duplicate_texts": n_duplicate_texts,
        "n_ids_of_duplicate_texts": int(is_duplicate.sum()),
        "n_dropped_duplicate_texts": n_duplicate_texts if duplicates == "drop" else 0,
    }
    return keep, summary


def align_vocabularies(
    first: tuple[Sequence[int], Sequence[str]],
    second: tuple[Sequence[int], Sequence[str]],
    text_rule: TextRule = "stripped",
    duplicates: DuplicateRule = "max",
) -> TextAlignment:
    """Align two (ids, decoded texts) vocabularies on text; see the module docstring for the rules."""
    if duplicates not in DUPLICATE_RULES:
        raise ValueError(f"unknown duplicate rule {duplicates!r} (use {', '.join(DUPLICATE_RULES)})")
    prepared = []
    for ids, texts in (first, second):
        keys = text_keys(list(texts), text_rule)
        keep, counts = _side_keys(keys, duplicates)
        prepared.append((np.asarray(ids, dtype=np.int64)[keep], keys[keep], counts))
    shared = np.intersect1d(prepared[0][1], prepared[1][1])
    sides = []
    for ids, keys, counts in prepared:
        if len(shared):
            codes = np.searchsorted(shared, keys)
            in_shared = shared[np.minimum(codes, len(shared) - 1)] == keys
        else:
            codes, in_shared = np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
        counts = {
            **counts,
            "n_kept_ids": int(in_shared.sum()),
            "n_unshared_texts": len(np.unique(keys)) - len(shared),
        }
        sides.append(AlignedSide(ids[in_shared], codes[in_shared].astype(np.int64), counts))
    return TextAlignment(shared, (sides[0], sides[1]), text_rule, duplicates)


__all__ = [
    "DUPLICATE_RULES",
    "TEXT_RULES",
    "AlignedSide",
    "DuplicateRule",
    "TextAlignment",
    "TextRule",
    "align_vocabularies",
    "describe_rule",
    "text_keys",
]
