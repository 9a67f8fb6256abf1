"""The batched engine: full sequences right-padded in batches (the published pipelines' approach)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rewardlens.engine.padding import pad_right
from rewardlens.engine.readouts import BatchStates, Readout
from rewardlens.engine.requests import ScoreRequest


@torch.inference_mode()
def run_batched(
    backbone: nn.Module,
    readout: Readout,
    requests: Sequence[ScoreRequest],
    device: torch.device,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> list[Any]:
    results: list[Any] = [None] * len(requests)
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].ids))
    for start in range(0, len(order), batch_size):
        batch = [requests[i] for i in order[start : start + batch_size]]
        ids, mask = pad_right([r.ids for r in batch], device)
        hidden = backbone(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        prompt_lengths = [len(r.prompt_ids) for r in batch]
        rows = torch.arange(len(batch), device=device)
        # Re-align each continuation to start at column 0, as the readout expects.
        continuation_ids, _ = pad_right([r.continuation_ids for r in batch], device)
        width = continuation_ids.shape[1]
        offsets = torch.tensor(prompt_lengths, device=device)[:, None] + torch.arange(width, device=device)[None]
        offsets = offsets.clamp(max=hidden.shape[1] - 1)
        continuation_hidden = hidden[rows[:, None], offsets]
        lengths = torch.tensor([len(r.continuation_ids) for r in batch], device=device)
        # The whole padded sequences serve as the prompt parts: each prompt occupies columns [0, P_b).
        outputs = readout(BatchStates(batch, hidden, continuation_hidden, continuation_ids, lengths))
        for index, output in zip(order[start : start + batch_size], outputs, strict=True):
            results[index] = output
        if progress:
            progress(len(batch))
    return results
