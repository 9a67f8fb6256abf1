"""What the engines read off the final hidden states: a reward, or response log-probabilities.

Engines hand a readout, per batch, the final hidden states of the prompt parts and of the continuation
tokens (right-padded); the readout turns them into one result per request. Applying the head only to
the rows that matter keeps the big vocabulary matmul small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from rewardlens.engine.requests import ScoreRequest
from rewardlens.models.gated import gating_position
from rewardlens.models.heads import ScoreHead
from rewardlens.models.loading import text_config
from rewardlens.models.read_rule import ReadRule


@dataclass(frozen=True)
class BatchStates:
    """The final hidden states of one batch of requests, as an engine produced them.

    `prompt_hidden` [B, P, H] holds at least each request's prompt part (the cached engine's shared prompt
    broadcast over the batch; the batched engine's whole padded sequences); `continuation_hidden` [B, L, H]
    the continuation tokens, right-padded and starting at column 0.
    """

    requests: Sequence[ScoreRequest]
    prompt_hidden: torch.Tensor
    continuation_hidden: torch.Tensor
    continuation_ids: torch.Tensor
    lengths: torch.Tensor

    @cached_property  # read by every `at` (gated heads gather twice per batch)
    def prompt_lengths(self) -> torch.Tensor:
        return torch.tensor([len(r.prompt_ids) for r in self.requests], device=self.lengths.device)

    def at(self, positions: Sequence[int]) -> torch.Tensor:
        """[B, H]: each request's hidden state at an index into its own ids (prompt or continuation)."""
        device = self.lengths.device
        where = torch.tensor(positions, device=device)
        n_prompt = self.prompt_lengths
        rows = torch.arange(len(positions), device=device)
        in_prompt = where < n_prompt
        from_prompt = self.prompt_hidden[rows, where.clamp(max=self.prompt_hidden.shape[1] - 1)]
        from_continuation = self.continuation_hidden[
            rows, (where - n_prompt).clamp(min=0, max=self.continuation_hidden.shape[1] - 1)
        ]
        return torch.where(in_prompt[:, None], from_prompt, from_continuation)

    @property
    def prompt_last(self) -> torch.Tensor:
        """[B, H]: the hidden state of each prompt's last token (it predicts the first continuation token)."""
        return self.at([len(r.prompt_ids) - 1 for r in self.requests])


class Readout(Protocol):
    def __call__(self, states: BatchStates) -> list[Any]:
        """One result per request of the batch."""
        ...

    def own_forward(self, request: ScoreRequest, ids: torch.Tensor) -> Any | None:
        """The result from the model's own forward on the unpadded sequence `ids` [1, L], or None where the
        model has no forward of its own that gives it (the reference engine then reads the backbone itself)."""
        ...


class RewardReadout:
    """The raw score (no sigmoid) where the model's own forward reads it; the head runs in float32."""

    def __init__(self, model: nn.Module, head: ScoreHead, rule: ReadRule) -> None:
        self.model = model
        self.head = head
        self.rule = rule
        self.gating_pattern: tuple[int, ...] | None = getattr(model, "gating_pattern", None) if head.gated else None

    def __call__(self, states: BatchStates) -> list[Any]:
        requests = states.requests
        hidden = states.at([self.rule.position(r.ids) for r in requests]).float()
        gate = None
        if self.gating_pattern is not None:
            # The gating token sits in the prompt: the cached engine computed its state once per prompt.
            gate = states.at([gating_position(r.ids, self.gating_pattern) for r in requests]).float()
        return [float(x) for x in self.head.read(self.model, hidden, gate).cpu()]

    def own_forward(self, request: ScoreRequest, ids: torch.Tensor) -> Any | None:
        score = self.head.forward_score(self.model, ids)
        return None if score is None else float(score[0])


def lm_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Next-token logits, with the final soft-capping that Gemma-2 style models apply."""
    head: Any = getattr(model, "get_output_embeddings")()  # noqa: B009 - typed as Module attribute
    logits = head(hidden).float()
    cap = getattr(text_config(model), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


class LogprobReadout:
    """log p(token | everything before it) for every continuation token of each request."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def own_forward(self, request: ScoreRequest, ids: torch.Tensor) -> Any | None:
        logits = self.model(input_ids=ids, use_cache=False).logits[0].float()
        n_prompt = len(request.prompt_ids)
        # Position t predicts token t + 1: the continuation is predicted by positions n_prompt - 1 .. L - 2.
        logprobs = torch.log_softmax(logits[n_prompt - 1 : -1], dim=-1)
        continuation = torch.tensor(request.continuation_ids, device=logits.device)
        return logprobs.gather(1, continuation[:, None])[:, 0].double().cpu().numpy()

    def __call__(self, states: BatchStates) -> list[Any]:
        lengths, continuation_ids = states.lengths, states.continuation_ids
        # Token j of the continuation is predicted by the hidden state just before it.
        predictors = torch.cat([states.prompt_last[:, None, :], states.continuation_hidden[:, :-1, :]], dim=1)
        width = predictors.shape[1]
        valid = torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]
        logits = lm_logits(self.model, predictors[valid])
        logprobs = torch.log_softmax(logits, dim=-1)
        picked = logprobs.gather(1, continuation_ids[valid][:, None])[:, 0].double().cpu().numpy()
        splits = np.cumsum(lengths.cpu().numpy())[:-1]
        return list(np.split(picked, splits))
