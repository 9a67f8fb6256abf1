"""How to read the scalar a reward model's authors intended, one registry entry per kind of head.

Every reader takes the final hidden state at the last real (non-pad) token of each sequence —
located from the sequence lengths, never from the pad id, because many RMs pad with EOS and
the end-of-turn token is often EOS too — and returns the raw score (no sigmoid).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ScoreHead:
    """One kind of reward-model head."""

    name: str
    reason: str
    matches: Callable[[nn.Module, str], bool]
    module: Callable[[nn.Module], Any]
    sign: float = 1.0
    # Heads whose score needs the model's own forward (no backbone/head split) cannot reuse a
    # prompt KV cache through the backbone; the scorer falls back to full sequences for them.
    needs_full_forward: bool = False

    def read(self, model: nn.Module, last_hidden: torch.Tensor) -> torch.Tensor:
        """Scores of shape [B] from hidden states [B, H] at the last real token."""
        logits = self.module(model)(last_hidden)
        return self.sign * logits[..., 0].float()


def _has_linear(attribute: str) -> Callable[[nn.Module, str], bool]:
    def check(model: nn.Module, name: str) -> bool:
        return isinstance(getattr(model, attribute, None), nn.Module)

    return check


def _is_cost_model(model: nn.Module, name: str) -> bool:
    return "cost" in name.lower().replace("_", "-").split("/")[-1].split("-") and hasattr(model, "score")


def _armorm_like(model: nn.Module, name: str) -> bool:
    return "RewardModelWithGating" in type(model).__name__


# Order matters: the first entry that matches a model wins.
SCORE_HEADS: list[ScoreHead] = [
    ScoreHead(
        name="cost-model",
        reason="cost models (e.g. PKU beaver-*-cost) score harm: their cards say lower is better, so the "
        "sign is flipped to give a preference score",
        matches=_is_cost_model,
        module=lambda model: model.score,
        sign=-1.0,
    ),
    ScoreHead(
        name="armorm-gating",
        reason="ArmoRM-style models combine many objectives through a gating network in their own forward "
        "and return an object whose documented preference score is `.score`",
        matches=_armorm_like,
        module=lambda model: model,
        needs_full_forward=True,
    ),
    ScoreHead(
        name="sequence-classification",
        reason="AutoModelForSequenceClassification: a linear `score` layer on the final hidden state "
        "(Skywork, QRM, URM, most RMs)",
        matches=_has_linear("score"),
        module=lambda model: model.score,
    ),
    ScoreHead(
        name="value-head",
        reason="GRM-style models put a value head `v_head` on a causal LM backbone",
        matches=_has_linear("v_head"),
        module=lambda model: model.v_head,
    ),
]


def find_score_head(model: nn.Module, name: str) -> ScoreHead | None:
    """The registry entry for this model, or None when it has no reward head."""
    for head in SCORE_HEADS:
        if head.matches(model, name):
            return head
    return None


def full_forward_scores(model: nn.Module, **inputs: Any) -> torch.Tensor:
    """Scores from a model's own forward for heads that return an object with `.score`."""
    output = model(**inputs)
    score = output.score if hasattr(output, "score") else output["score"]
    return score.reshape(score.shape[0], -1)[:, 0].float()


def backbone_of(model: nn.Module) -> nn.Module:
    """The transformer body that returns final (normalised) hidden states."""
    prefix = getattr(model, "base_model_prefix", "model")
    body = getattr(model, prefix, None)
    if body is None:
        body = getattr(model, "model", None)
    if body is None:
        raise TypeError(f"cannot find the backbone of {type(model).__name__}")
    return body
