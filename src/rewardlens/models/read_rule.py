"""Where a reward model reads its score: the position rule of the model's own forward, from the ids alone.

transformers' sequence-classification pooling reads the rightmost token whose id is not
`config.pad_token_id` (index 0 when every token is the pad id). Many Llama-3 RMs were trained with
pad = eos = end of turn, so for them this is the token *before* the trailing `<|eot_id|>`; reading at the
last token instead differs from the model's own forward. The published gated heads (ArmoRM, QRM) read at
the token before the *first* pad id, modulo the length (the last token when no pad id occurs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

RuleName = Literal["rightmost-non-pad", "before-first-pad", "last"]


@dataclass(frozen=True)
class ReadRule:
    """A position rule and the pad id it looks for (None: no pad id, the last token is read)."""

    name: RuleName
    pad_token_id: int | None = None

    def position(self, ids: Sequence[int]) -> int:
        """The index in `ids` whose final hidden state is scored."""
        pad = self.pad_token_id
        if pad is None or self.name == "last":
            return len(ids) - 1
        if self.name == "rightmost-non-pad":
            for index in range(len(ids) - 1, -1, -1):
                if ids[index] != pad:
                    return index
            return 0
        for index, token in enumerate(ids):
            if token == pad:
                return (index - 1) % len(ids)
        return len(ids) - 1

    def describe(self) -> dict[str, Any]:
        """What _run.json records."""
        return {"rule": self.name, "pad_token_id": self.pad_token_id}


def _pad_id(config: Any) -> int | None:
    pad = getattr(config, "pad_token_id", None)
    return int(pad) if pad is not None else None


def sequence_classification_rule(config: Any) -> ReadRule:
    """transformers' pooling for `*ForSequenceClassification` models: the pad id of the language part's config
    (multimodal models such as Gemma 3 nest it as `text_config`)."""
    return ReadRule("rightmost-non-pad", _pad_id(getattr(config, "text_config", None) or config))


def gated_rule(config: Any) -> ReadRule:
    """The published gated heads' reward position (ArmoRM, QRM): before the first pad id of their config."""
    return ReadRule("before-first-pad", _pad_id(config))


def rule_for_config(config: Any) -> ReadRule:
    """The rule of a reward model with this config, known without loading its weights (`rewardlens render`).

    The published gated architectures (`*ForRewardModelWithGating*`, matched by name as the head registry
    does) read before the first pad id of their config; every other reward model is pooled as transformers'
    sequence classification pools, with the pad id of its language part.
    """
    architectures = list(getattr(config, "architectures", None) or [])
    if any("RewardModelWithGating" in name for name in architectures):
        return gated_rule(config)
    return sequence_classification_rule(config)
