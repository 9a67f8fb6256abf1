"""What the engines read off the final hidden states: a reward, or response log-probabilities.

Engines hand a readout, per batch, the hidden state of each prompt's last token and the hidden
states of the continuation tokens (right-padded); the readout turns them into one result per
request. Applying the head only to the rows that matter keeps the big vocabulary matmul small.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from rewardlens.models.heads import ScoreHead
from rewardlens.models.loading import text_config


class Readout(Protocol):
    def __call__(
        self,
        prompt_last: torch.Tensor,
        continuation_hidden: torch.Tensor,
        continuation_ids: torch.Tensor,
        lengths: torch.Tensor,
    ) -> list[Any]:
        """prompt_last [B, H]; continuation_hidden [B, L, H]; continuation_ids [B, L]; lengths [B]."""
        ...


class RewardReadout:
    """The raw score at the last real token of each sequence (no sigmoid)."""

    def __init__(self, model: nn.Module, head: ScoreHead) -> None:
        self.model = model
        self.head = head

    def __call__(
        self,
        prompt_last: torch.Tensor,
        continuation_hidden: torch.Tensor,
        continuation_ids: torch.Tensor,
        lengths: torch.Tensor,
    ) -> list[Any]:
        rows = torch.arange(continuation_hidden.shape[0], device=continuation_hidden.device)
        last = continuation_hidden[rows, lengths - 1]
        return [float(x) for x in self.head.read(self.model, last).cpu()]


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

    def __call__(
        self,
        prompt_last: torch.Tensor,
        continuation_hidden: torch.Tensor,
        continuation_ids: torch.Tensor,
        lengths: torch.Tensor,
    ) -> list[Any]:
        # Token j of the continuation is predicted by the hidden state just before it.
        predictors = torch.cat([prompt_last[:, None, :], continuation_hidden[:, :-1, :]], dim=1)
        width = predictors.shape[1]
        valid = torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]
        logits = lm_logits(self.model, predictors[valid])
        logprobs = torch.log_softmax(logits, dim=-1)
        picked = logprobs.gather(1, continuation_ids[valid][:, None])[:, 0].double().cpu().numpy()
        splits = np.cumsum(lengths.cpu().numpy())[:-1]
        return list(np.split(picked, splits))
