"""Engines turn score requests into per-request results; `reference` is the truth."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rewardlens.config import ENGINES
from rewardlens.engine.attention import grouped_query_sdpa
from rewardlens.engine.batched import run_batched
from rewardlens.engine.cached import run_cached
from rewardlens.engine.readouts import LogprobReadout, Readout, RewardReadout
from rewardlens.engine.reference import run_reference
from rewardlens.engine.requests import ScoreRequest, group_by_prompt
from rewardlens.errors import UserError


def check_engine(engine: str) -> str:
    """Engine names are checked here, so that every job and command refuses a bad one with the same line."""
    if engine not in ENGINES:
        raise UserError(f"unknown engine '{engine}' (use {', '.join(ENGINES)})")
    return engine


def check_batch_size(batch_size: int | None) -> None:
    """None (chosen from memory) or at least 1."""
    if batch_size is not None and batch_size < 1:
        raise UserError("--batch-size must be at least 1")


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
