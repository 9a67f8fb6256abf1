"""The reference engine: one plain forward pass per sequence, no padding, no cache. The truth."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rewardlens.engine.readouts import Readout
from rewardlens.engine.requests import ScoreRequest


@torch.inference_mode()
def run_reference(
    backbone: nn.Module,
    readout: Readout,
    requests: Sequence[ScoreRequest],
    device: torch.device,
    progress: Callable[[int], None] | None = None,
) -> list[Any]:
    results: list[Any] = []
    for request in requests:
        ids = torch.tensor([request.ids], device=device)
        hidden = backbone(input_ids=ids, use_cache=False).last_hidden_state
        n_prompt = len(request.prompt_ids)
        continuation = torch.tensor([request.continuation_ids], device=device)
        lengths = torch.tensor([len(request.continuation_ids)], device=device)
        results.extend(readout(hidden[:, n_prompt - 1], hidden[:, n_prompt:], continuation, lengths))
        if progress:
            progress(1)
    return results
