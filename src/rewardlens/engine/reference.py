"""The reference engine: the model's own forward on each unpadded sequence, no padding, no cache. The truth.

Where a checkpoint has no forward of its own that transformers runs (a value head of remote code), the
backbone's states are read at the model's read position instead, one unpadded sequence at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rewardlens.engine.readouts import BatchStates, Readout
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
        result = readout.own_forward(request, ids)
        if result is None:
            hidden = backbone(input_ids=ids, use_cache=False).last_hidden_state
            n_prompt = len(request.prompt_ids)
            continuation = torch.tensor([request.continuation_ids], device=device)
            lengths = torch.tensor([len(request.continuation_ids)], device=device)
            states = BatchStates([request], hidden[:, :n_prompt], hidden[:, n_prompt:], continuation, lengths)
            result = readout(states)[0]
        results.append(result)
        if progress:
            progress(1)
    return results
