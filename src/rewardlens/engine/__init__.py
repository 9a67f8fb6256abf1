"""Engines turn score requests into per-request results; `reference` is the truth."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rewardlens.engine.attention import grouped_query_sdpa
from rewardlens.engine.batched import run_batched
from rewardlens.engine.cached import run_cached
from rewardlens.engine.readouts import LogprobReadout, Readout, RewardReadout
from rewardlens.engine.reference import run_reference
from rewardlens.engine.requests import ScoreRequest, group_by_prompt

ENGINES = ("cached", "batched", "reference")


def run_engine(
    engine: str,
    backbone: nn.Module,
    readout: Readout,
    requests: Sequence[ScoreRequest],
    device: torch.device,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> list[Any]:
    """Run `requests` through the named engine; results come back in request order."""
    with grouped_query_sdpa(device):
        if engine == "cached":
            return run_cached(backbone, readout, requests, device, batch_size, progress)
        if engine == "batched":
            return run_batched(backbone, readout, requests, device, batch_size, progress)
        if engine == "reference":
            return run_reference(backbone, readout, requests, device, progress)
    raise ValueError(f"unknown engine {engine!r}")


__all__ = [
    "ENGINES",
    "LogprobReadout",
    "Readout",
    "RewardReadout",
    "ScoreRequest",
    "group_by_prompt",
    "run_engine",
]
