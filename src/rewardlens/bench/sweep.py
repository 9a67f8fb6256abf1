"""`bench sweep`: what a sweep (vocabulary metadata, store, progress) adds to the cached engine.

Both are timed side by side in one process on the same loaded model, prompt and candidate ids; the
ratio `sweep_s / engine_s` is the sweep's overhead (target: at most 1.2).
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import torch

from rewardlens.bench.engine import BENCH_PROMPT, bench_scorer
from rewardlens.config import DEFAULT_SHARD_SIZE
from rewardlens.errors import UserError
from rewardlens.jobs.sweep import run_sweep
from rewardlens.prompts import prompts_from_texts
from rewardlens.scorers import ModelScorer


def _synchronize(scorer: ModelScorer) -> None:
    if scorer.loaded.device.type == "cuda":
        torch.cuda.synchronize()


def _time_engine(scorer: ModelScorer, ids: list[int], batch_size: int) -> float:
    _synchronize(scorer)
    began = time.perf_counter()
    scorer.score_token_ids(BENCH_PROMPT, ids, engine="cached", batch_size=batch_size)
    _synchronize(scorer)
    return time.perf_counter() - began


class _EngineClock:
    """Wraps a scorer's `score_token_ids` to time the engine's share of a sweep, inside the same run."""

    def __init__(self, scorer: ModelScorer) -> None:
        self.scorer = scorer
        self.seconds = 0.0

    def score_token_ids(self, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return self.scorer.score_token_ids(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - began

    def __getattr__(self, name: str) -> Any:
        return getattr(self.scorer, name)


def _time_sweep(
    scorer: ModelScorer, first: int, count: int, batch_size: int, shard_size: int
) -> tuple[float, float, float]:
    """Wall time of a sweep, the part of it spent in the engine, and the process's CPU time."""
    clock = _EngineClock(scorer)
    with tempfile.TemporaryDirectory(prefix="rewardlens-bench-") as directory:
        _synchronize(scorer)
        began, began_cpu = time.perf_counter(), time.process_time()
        run_sweep(
            clock,
            prompts_from_texts([BENCH_PROMPT]),
            directory,
            tokens=f"{first}:{first + count}",
            include_special=True,  # exactly `count` rows: the engine's ids
            shard_size=shard_size,
            batch_size=batch_size,
            engine="cached",
        )
        _synchronize(scorer)
        return time.perf_counter() - began, clock.seconds, time.process_time() - began_cpu


def benchmark_sweep(
    model: str,
    *,
    candidates: int = 2048,
    batch_size: int = 256,
    shard_size: int = DEFAULT_SHARD_SIZE,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    seed: int = 0,
    repeats: int = 1,
) -> dict[str, Any]:
    """Time `run_sweep` and the cached engine alone on the same ids; the best of `repeats` of each."""
    if candidates < 1:
        raise UserError("--candidates must be at least 1")
    scorer, head = bench_scorer(model, dtype=dtype, device=device, trust_remote_code=trust_remote_code, seed=seed)
    size = len(scorer.tokenizer)
    if candidates > size:
        raise UserError(f"--candidates {candidates}: the vocabulary has only {size} tokens")
    first = min(1000, size - candidates)  # past the control tokens at the start of most vocabularies
    ids = list(range(first, first + candidates))
    scorer.score_token_ids(BENCH_PROMPT, ids[:8], batch_size=batch_size)  # warm-up (allocations, kernels)
    engine_times, sweep_times, own_times, cpu_times = [], [], [], []
    for _ in range(max(1, repeats)):  # alternating, so that drift in machine load hits both
        engine_times.append(_time_engine(scorer, ids, batch_size))
        sweep_s, inside_s, cpu_s = _time_sweep(scorer, first, candidates, batch_size, shard_size)
        sweep_times.append(sweep_s)
        cpu_times.append(cpu_s)
        own_times.append(sweep_s - inside_s)
    engine_s, sweep_s = min(engine_times), min(sweep_times)
    return {
        "model": scorer.name,
        "head": head,
        "device": str(scorer.loaded.device),
        "dtype": str(scorer.loaded.dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "candidates": candidates,
        "batch_size": batch_size,
        "shard_size": shard_size,
        "sweep_s": round(sweep_s, 4),
        "engine_s": round(engine_s, 4),
        "overhead_ratio": round(sweep_s / engine_s, 4),
        # The sweep's own work (vocabulary metadata, store, manifest), timed inside the same sweep:
        # unlike the ratio, it does not move with the machine's load between the two timings.
        "sweep_own_s": round(min(own_times), 4),
        "candidates_per_s": round(candidates / sweep_s, 2),
        # CPU seconds of all threads: on a shared, oversubscribed machine, cpu_s / threads estimates the
        # wall time the sweep would take with its cores to itself.
        "sweep_cpu_s": round(min(cpu_times), 4),
    }
