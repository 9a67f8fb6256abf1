"""Which policy response meets which reference response: the vocabulary pairing, and one prompt's
log-probabilities on both sides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rewardlens.analysis.alignment import TEXT_RULES, TextAlignment, align_vocabularies, describe_rule
from rewardlens.errors import UserError
from rewardlens.models.vocabulary import select_tokens
from rewardlens.scorers.language import n_logits, response_lead, same_vocabulary
from rewardlens.scorers.model import ModelScorer
from rewardlens.scorers.words import score_words

ALIGN_MODES = ("text", "id")
ID_RULE = "same tokenizer: policy and reference log-probabilities of the same token id (template boundary included)"


def alignment_rule(align: str, text_rule: str) -> str:
    """The pairing rule in words, as _run.json records it."""
    return ID_RULE if align == "id" else describe_rule(text_rule)


@dataclass
class VocabularyPairing:
    """Which policy ids meet which reference ids: the same id (`by="id"`) or the variants of one text."""

    by: str  # "id" or "text"
    policy_table: pd.DataFrame  # candidate metadata of the policy vocabulary (select_tokens), indexed by id
    reference_table: pd.DataFrame
    alignment: TextAlignment | None = None
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        if self.alignment is not None:
            return len(self.alignment.texts)
        return len(self.policy_table)

    def describe(self) -> dict[str, Any]:
        if self.alignment is not None:
            return {**self.alignment.describe(("policy", "reference")), **self.counts}
        return {
            "by": "id",
            "rule": ID_RULE,
            "n_ids": len(self.policy_table),
            **self.counts,
        }

    def frame(self, logp_policy: np.ndarray, logp_reference: np.ndarray) -> pd.DataFrame:
        """Per aligned entry: ids, tokens, response text and both log-probabilities (sweep columns)."""
        if self.alignment is None:
            ids = self.policy_table.index.to_numpy()
            table = self.policy_table
            return pd.DataFrame(
                {
                    "token_id": ids,
                    "token": table["token"].to_numpy(),
                    "response": table["response"].to_numpy(),
                    "reference_token_id": ids,
                    "reference_token": table["token"].to_numpy(),
                    "is_special": table["is_special"].to_numpy(),
                    "leading_space": table["leading_space"].to_numpy(),
                    "is_word": table["is_word"].to_numpy(),
                    "logp_policy": np.asarray(logp_policy, dtype=np.float64)[ids],
                    "logp_reference": np.asarray(logp_reference, dtype=np.float64)[ids],
                }
            )
        policy_side, reference_side = self.alignment.sides
        # The ids shown are the forms each template starts a response with ("love" / " love"), the same for
        # every prompt; the log-probabilities are those of every variant of the text together.
        policy_rows = self.policy_table.loc[policy_side.response_ids]
        texts = self.alignment.texts
        return pd.DataFrame(
            {
                "token_id": policy_side.response_ids,
                "token": policy_rows["token"].to_numpy(),
                "response": texts,
                "reference_token_id": reference_side.response_ids,
                "reference_token": self.reference_table.loc[reference_side.response_ids, "token"].to_numpy(),
                "is_special": policy_rows["is_special"].to_numpy(),
                # Describes the aligned text (the response column), as a sweep's flag describes its response.
                "leading_space": np.fromiter((t.startswith(" ") for t in texts), bool, len(texts)),
                "is_word": policy_rows["is_word"].to_numpy(),
                "logp_policy": policy_side.logsumexp(logp_policy),
                "logp_reference": reference_side.logsumexp(logp_reference),
            }
        )


def _candidates(scorer: ModelScorer, include_special: bool) -> tuple[pd.DataFrame, int]:
    """The scorer's candidate tokens with an id its logits cover, indexed by id; and how many lay outside."""
    table = select_tokens(scorer.tokenizer, "all", include_special)
    inside = table["token_id"].to_numpy() < n_logits(scorer)
    return table[inside].set_index("token_id", drop=False), int((~inside).sum())


def check_alignment(align: str, text_rule: str) -> None:
    if align not in ALIGN_MODES:
        raise UserError(f"unknown alignment '{align}' (use {', '.join(ALIGN_MODES)})")
    if text_rule not in TEXT_RULES:
        raise UserError(f"unknown text rule '{text_rule}' (use {', '.join(TEXT_RULES)})")


def pair_vocabularies(
    policy: Any, reference: Any, align: str = "text", text_rule: str = "stripped", include_special: bool = False
) -> VocabularyPairing:
    """Align the two vocabularies on text (the default, one tokenizer or two) or, with `align="id"` and one
    tokenizer, by id."""
    check_alignment(align, text_rule)
    if align == "id" and not same_vocabulary(policy, reference):
        raise UserError("--align id needs the same tokenizer; the policy and reference vocabularies differ")
    policy_table, policy_outside = _candidates(policy, include_special)
    if align == "id":
        reference_limit = n_logits(reference)
        inside = policy_table.index.to_numpy() < reference_limit
        outside = {"n_ids_outside_logits": policy_outside + int((~inside).sum())}
        return VocabularyPairing("id", policy_table[inside], policy_table[inside], counts=outside)
    reference_table, reference_outside = _candidates(reference, include_special)
    alignment = align_vocabularies(
        (policy_table.index.to_numpy(), policy_table["response"].tolist()),
        (reference_table.index.to_numpy(), reference_table["response"].tolist()),
        text_rule=text_rule,  # type: ignore[arg-type]
        leads=(response_lead(policy), response_lead(reference)),
    )
    if not len(alignment.texts):
        raise UserError(
            "the policy and reference vocabularies share no decoded text that both templates can start a "
            f"response with (text rule {text_rule})"
        )
    counts = {"n_ids_outside_logits": {"policy": policy_outside, "reference": reference_outside}}
    return VocabularyPairing("text", policy_table, reference_table, alignment, counts)


def vocabulary_logprobs(
    policy: Any, reference: Any, pairing: VocabularyPairing, prompt: str
) -> pd.DataFrame:
    """Both models' first-token log-probabilities over the paired vocabulary (one forward pass each)."""
    return pairing.frame(policy.first_token_logprobs(prompt), reference.first_token_logprobs(prompt))


def word_logprobs(
    policy: Any,
    reference: Any,
    prompt: str,
    words: Sequence[str],
    engine: str = "cached",
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Both models' log-probability of each word as the whole response (teacher forcing, summed over tokens)."""
    return pd.DataFrame(
        {
            "response": list(words),
            "logp_policy": score_words(policy, prompt, words, engine=engine, batch_size=batch_size),
            "logp_reference": score_words(reference, prompt, words, engine=engine, batch_size=batch_size),
        }
    )


__all__ = [
    "ALIGN_MODES",
    "ID_RULE",
    "VocabularyPairing",
    "alignment_rule",
    "check_alignment",
    "pair_vocabularies",
    "vocabulary_logprobs",
    "word_logprobs",
]
