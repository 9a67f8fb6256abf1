"""How to read the scalar a reward model's authors intended, one registry entry per kind of head.

Every reader takes final hidden states at the position where the model's own forward reads its score
(`models.read_rule`) and returns the raw score (no sigmoid). Heads run in float32 on the upcast hidden
state: a bf16 head maps a 128k-token sweep onto a few thousand distinct values, and ties then decide
ranks, top-k lists and RBO.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rewardlens.models.gated import GatedRewardModel
from rewardlens.models.read_rule import ReadRule, sequence_classification_rule


def _no_forward(model: nn.Module, ids: torch.Tensor) -> torch.Tensor | None:
    return None


@dataclass(frozen=True)
class ScoreHead:
    """One kind of reward-model head."""

    name: str
    reason: str
    matches: Callable[[nn.Module, str], bool]
    module: Callable[[nn.Module], Any]
    sign: float = 1.0
    # The model's own forward on one unpadded sequence [1, L] -> its documented score [1] (before `sign`),
    # or None where the checkpoint has no forward of its own that transformers runs (the reference engine then
    # applies `module` at the read position itself).
    own_forward: Callable[[nn.Module, torch.Tensor], torch.Tensor | None] = _no_forward
    # Heads whose score only the (remote) model's own forward computes: no backbone/head split, so every
    # engine falls back to the reference engine's one full forward per sequence.
    needs_full_forward: bool = False
    # Gated heads read a second position (the gating token in the prompt) besides the reward position.
    gated: bool = False

    def read(self, model: nn.Module, hidden: torch.Tensor, gate_hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Scores [B] from float32 hidden states [B, H] at the read position (and the gating position)."""
        module = self.module(model)
        logits = module(hidden, gate_hidden) if self.gated else module(hidden)
        return self.sign * logits.reshape(logits.shape[0], -1)[:, 0].float()

    def forward_score(self, model: nn.Module, ids: torch.Tensor) -> torch.Tensor | None:
        """The model's own forward score [1] (sign applied), or None where there is none to run."""
        score = self.own_forward(model, ids)
        return None if score is None else self.sign * score.reshape(score.shape[0], -1)[:, 0].float()

    def rule(self, model: nn.Module) -> ReadRule:
        """Where this head's model reads its score."""
        if isinstance(model, GatedRewardModel):
            return model.rule
        return sequence_classification_rule(getattr(model, "config"))  # noqa: B009 - a PreTrainedModel attribute


def _has_linear(attribute: str) -> Callable[[nn.Module, str], bool]:
    def check(model: nn.Module, name: str) -> bool:
        return isinstance(getattr(model, attribute, None), nn.Module)

    return check


def _is_cost_model(model: nn.Module, name: str) -> bool:
    return "cost" in name.lower().replace("_", "-").split("/")[-1].split("-") and hasattr(model, "score")


def _is_native_gated(model: nn.Module, name: str) -> bool:
    return isinstance(model, GatedRewardModel)


def _remote_code(model: nn.Module, name: str) -> bool:
    """A class from a checkpoint's own modeling file (transformers imports those as `transformers_modules`)."""
    return type(model).__module__.startswith("transformers_modules")


def _classification_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids, use_cache=False).logits


def _gated_scores(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids)


def full_forward_scores(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Scores from a remote-code model's own forward: its `.score` (ArmoRM-style objects) or else its
    `logits[:, 0]` (what such cards document, e.g. URM, whose logits combine several heads in its forward)."""
    output = model(input_ids=ids)
    score = getattr(output, "score", None)
    if score is None:
        score = output["score"] if isinstance(output, dict) and "score" in output else output.logits
    return score.reshape(score.shape[0], -1)[:, 0].float()


# Order matters: the first entry that matches a model wins.
SCORE_HEADS: list[ScoreHead] = [
    ScoreHead(
        name="gated-multi-objective",
        reason="ArmoRM / QRM checkpoints (LlamaForRewardModelWithGating[31]): their published modeling files no "
        "longer import on transformers 5, so the backbone is loaded natively and the regression layer, gating "
        "network and reward transform are read from the safetensors and applied as published (models.gated)",
        matches=_is_native_gated,
        module=lambda model: model.head,
        own_forward=_gated_scores,
        gated=True,
    ),
    ScoreHead(
        name="cost-model",
        reason="cost models (e.g. PKU beaver-*-cost) score harm: their cards say lower is better, so the "
        "sign is flipped to give a preference score",
        matches=_is_cost_model,
        module=lambda model: model.score,
        sign=-1.0,
        own_forward=_classification_logits,
    ),
    ScoreHead(
        name="value-head",
        reason="GRM-style remote-code models put a value head `v_head` on a causal LM backbone",
        matches=_has_linear("v_head"),
        module=lambda model: model.v_head,
    ),
    ScoreHead(
        name="remote-code",
        reason="a model run through its own remote code (--trust-remote-code, no native reader): only its forward "
        "knows how its heads combine (URM's `score` layer holds attribute means and variances that a separate "
        "MLP weighs), so every engine runs that forward and reads `.score`, else `logits[:, 0]`",
        matches=_remote_code,
        module=lambda model: model,
        own_forward=full_forward_scores,
        needs_full_forward=True,
    ),
    ScoreHead(
        name="sequence-classification",
        reason="AutoModelForSequenceClassification: a linear `score` layer on the final hidden state, pooled at "
        "the rightmost non-pad token (Skywork, GRM, most RMs)",
        matches=_has_linear("score"),
        module=lambda model: model.score,
        own_forward=_classification_logits,
    ),
]


def find_score_head(model: nn.Module, name: str) -> ScoreHead | None:
    """The registry entry for this model, or None when it has no reward head."""
    for head in SCORE_HEADS:
        if head.matches(model, name):
            return head
    return None


def upcast_head(model: nn.Module, head: ScoreHead) -> bool:
    """Run the head in float32 on the upcast hidden state, in the model's own forward too; True if it did.

    The head's weights become float32 and a pre-hook upcasts its input, so the fast engines and the model's
    own forward compute the very same float32 head.
    """
    module = head.module(model)
    if module is model or not isinstance(module, nn.Module):
        return False
    module.float()
    module.register_forward_pre_hook(_upcast_inputs)
    return True


def _upcast_inputs(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def backbone_of(model: nn.Module) -> nn.Module:
    """The transformer body that returns final (normalised) hidden states."""
    prefix = getattr(model, "base_model_prefix", "model")
    body = getattr(model, prefix, None)
    if body is None:
        body = getattr(model, "model", None)
    if body is None:
        raise TypeError(f"cannot find the backbone of {type(model).__name__}")
    return body
