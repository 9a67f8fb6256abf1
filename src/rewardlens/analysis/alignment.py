"""Aligning two vocabularies on the decoded text of their tokens (one tokenizer or two).

Each side's first-token log-probabilities are read under its own template, and templates start a response
differently: a chat prefix ends in a newline and the response follows it directly ("love"); the plain
reference prefix ends in "Assistant:" and the response follows one space (" love"). Pairing ids would compare
"love" after a newline with "love" glued to "Assistant:" — a measure of the template boundary, not of the
text. So entries are matched by a text key, and each side says with its `lead` what its template puts
before a response ("" for a chat template, " " for `plain-nospace`):

- `stripped` (default): surrounding whitespace removed, so " love", "love" and "love " are surface variants
  of the one text "love";
- `exact`: the response text exactly — the decoded token after the side's lead (" love" under a lead of " "
  is the response "love"; a token that lacks the lead is glued to the prefix and cannot be aligned).

**One rule for the surface variants of a text:** a side's log-probability of a text is the log-sum-exp over
every id of that side with that key, the probability that the first response token spells the text
(whatever its surrounding whitespace), not the largest of them. Under `exact` the variants are ids that
decode identically (byte-level and SentencePiece duplicates).

**Which texts are compared:** a text is kept when each side holds it in the form its template starts a
response with (lead + text, e.g. "love" for the chat side and " love" for the plain side). A side that lacks
that form can begin a response with the text only in several tokens, and its single-token probability would
measure the boundary again (" family" after a newline), so such texts are dropped and counted. Texts that
are empty, hold U+FFFD (a byte fragment of a multi-byte character) or belong to one side only are dropped
too; the counts of everything left out, on each side, go into `_run.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

TextRule = Literal["exact", "stripped"]
TEXT_RULES: tuple[str, ...] = ("exact", "stripped")
VARIANT_RULE = "logsumexp"
_REPLACEMENT = "\ufffd"


def text_keys(texts: Sequence[str], rule: TextRule = "exact", lead: str = "") -> np.ndarray:
    """The alignment key of each text; "" marks a text that cannot be aligned (empty, a byte fragment, or
    under `exact` a token without the template's `lead`)."""
    if rule not in TEXT_RULES:
        raise ValueError(f"unknown text rule {rule!r} (use {', '.join(TEXT_RULES)})")
    keys = np.empty(len(texts), dtype=object)
    for index, text in enumerate(texts):
        keys[index] = _key(text, rule, lead)
    return keys


def _key(text: str, rule: TextRule, lead: str) -> str:
    if rule == "stripped":
        key = text.strip()
    elif text.startswith(lead):
        key = text[len(lead) :]
    else:
        return ""  # glued to the prefix: not a response the template can render
    return "" if _REPLACEMENT in key else key


@dataclass(frozen=True)
class AlignedSide:
    """One vocabulary's part of an alignment: every id that spells a shared text, grouped by that text."""

    ids: np.ndarray  # int64, the variants of the shared texts, sorted by text then id
    codes: np.ndarray  # int64, index into `TextAlignment.texts` of each id (non-decreasing)
    response_ids: np.ndarray  # int64, per shared text the lowest id in the form its template starts a response with
    lead: str
    counts: dict[str, int]

    def logsumexp(self, logprobs: np.ndarray) -> np.ndarray:
        """Per shared text: log of the summed probabilities of its ids (`logprobs` is indexed by token id)."""
        if not len(self.response_ids):
            return np.empty(0, dtype=np.float64)
        values = np.asarray(logprobs, dtype=np.float64)[self.ids]
        starts = np.flatnonzero(np.r_[True, self.codes[1:] != self.codes[:-1]])
        peak = np.maximum.reduceat(values, starts)
        # Shifting by the largest value keeps exp() in range; a text whose ids are all -inf stays -inf.
        shift = np.where(np.isfinite(peak), peak, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(np.add.reduceat(np.exp(values - shift[self.codes]), starts)) + shift


@dataclass(frozen=True)
class TextAlignment:
    """The texts that both vocabularies can start a response with, and each side's ids of them."""

    texts: np.ndarray  # object, sorted
    sides: tuple[AlignedSide, AlignedSide]
    text_rule: str

    def describe(self, names: tuple[str, str] = ("first", "second")) -> dict[str, Any]:
        """The rule and the counts of kept and dropped entries on each side (for _run.json)."""
        return {
            "by": "text",
            "text_rule": self.text_rule,
            "variants": VARIANT_RULE,
            "rule": describe_rule(self.text_rule),
            "response_lead": {name: side.lead for name, side in zip(names, self.sides, strict=True)},
            "n_shared_texts": len(self.texts),
            **{name: dict(side.counts) for name, side in zip(names, self.sides, strict=True)},
        }


def describe_rule(text_rule: str) -> str:
    """The alignment rule in words (_run.json records it)."""
    if text_rule == "stripped":
        key = "decoded text with surrounding whitespace stripped"
    else:
        key = "exact response text (the decoded token after what its template puts before a response)"
    return (
        f"aligned on {key}; a text is kept when each side holds it in the form its template starts a response "
        "with; a side's log-probability of a text is the log-sum-exp over all its ids with that text (the "
        "probability that the first response token spells it), not the largest; empty and U+FFFD texts and "
        "texts of only one side dropped"
    )


def _prepare_side(
    ids: Sequence[int], texts: Sequence[str], rule: TextRule, lead: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """A side's ids, keys, mask of ids in response-start form, and its counts before sharing."""
    id_array = np.asarray(ids, dtype=np.int64)
    keys = text_keys(list(texts), rule, lead)
    usable = keys != ""
    as_text = np.asarray(list(texts), dtype=object)
    response_form = usable & (as_text == np.asarray([lead + key for key in keys], dtype=object))
    distinct, counts = np.unique(keys[usable], return_counts=True)
    n_response_texts = len(np.unique(keys[response_form]))
    summary = {
        "n_ids": len(keys),
        "n_unusable_ids": int((~usable).sum()),
        "n_texts": len(distinct),
        "n_texts_with_variants": int((counts > 1).sum()),
        "n_texts_without_response_form": len(distinct) - n_response_texts,
    }
    return id_array, keys, response_form, summary


def _aligned_side(
    ids: np.ndarray, keys: np.ndarray, response_form: np.ndarray, shared: np.ndarray, lead: str, counts: dict[str, int]
) -> AlignedSide:
    # np.isin on object arrays compares every pair; the sorted texts are searched instead.
    positions = np.minimum(np.searchsorted(shared, keys), max(len(shared) - 1, 0))
    in_shared = shared[positions] == keys if len(shared) else np.zeros(len(keys), dtype=bool)
    codes = positions[in_shared].astype(np.int64)
    order = np.lexsort((ids[in_shared], codes))
    kept_ids, kept_codes = ids[in_shared][order], codes[order]
    response = response_form[in_shared][order]
    # The first response-form id of each text (ids are sorted within a text); every shared text has one.
    response_codes = kept_codes[response]
    first = np.ones(len(response_codes), dtype=bool)
    first[1:] = response_codes[1:] != response_codes[:-1]
    n_response_texts = counts["n_texts"] - counts["n_texts_without_response_form"]
    full = {**counts, "n_unshared_texts": n_response_texts - len(shared), "n_kept_ids": len(kept_ids)}
    return AlignedSide(kept_ids, kept_codes, kept_ids[response][first], lead, full)


def align_vocabularies(
    first: tuple[Sequence[int], Sequence[str]],
    second: tuple[Sequence[int], Sequence[str]],
    text_rule: TextRule = "stripped",
    leads: tuple[str, str] = ("", ""),
) -> TextAlignment:
    """Align two (ids, decoded texts) vocabularies on text; `leads` is what each side's template puts before
    a response. See the module docstring for the rules."""
    prepared = [
        _prepare_side(ids, texts, text_rule, lead) for (ids, texts), lead in zip((first, second), leads, strict=True)
    ]
    startable = [np.unique(keys[response_form]) for _, keys, response_form, _ in prepared]
    shared = np.intersect1d(startable[0], startable[1])
    sides = [
        _aligned_side(ids, keys, response_form, shared, lead, counts)
        for (ids, keys, response_form, counts), lead in zip(prepared, leads, strict=True)
    ]
    return TextAlignment(shared, (sides[0], sides[1]), text_rule)


__all__ = [
    "TEXT_RULES",
    "VARIANT_RULE",
    "AlignedSide",
    "TextAlignment",
    "TextRule",
    "align_vocabularies",
    "describe_rule",
    "text_keys",
]
