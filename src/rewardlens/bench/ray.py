"""`rewardlens bench ray`: sweep throughput in this process and on Ray with 1..N workers, side by side.

Each configuration sweeps the same candidates of the same prompt into its own temporary run; model
loading is excluded (every pool loads before the clock starts). A causal LM gets a seeded random score
head, as in `bench sweep`, so the numbers are those of a reward-model sweep.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlens.config import ModelOptions
from rewardlens.errors import UserError
from rewardlens.jobs.executor import execute
from rewardlens.jobs.pools import LocalPool, Pool
from rewardlens.jobs.ray_pool import RayOptions, RayPool
from rewardlens.jobs.sweep import SweepJob
from rewardlens.prompts import Prompt

BENCH_PROMPT = "What, in one word, is the greatest thing ever?"


def _timed_sweep(
    pool: Pool, spec: str, directory: Path, tokens: str, shard_size: int, batch_size: int
) -> dict[str, Any]:
    started = time.perf_counter()
    prompts = (Prompt("bench", BENCH_PROMPT),)
    job = SweepJob(spec, prompts, directory, tokens, shard_size=shard_size, batch_size=batch_size)
    summary = execute(job.plan(pool.facts), pool)
    seconds = time.perf_counter() - started
    return {"rows": summary.rows, "seconds": round(seconds, 3), "candidates_per_s": round(summary.rows / seconds, 1)}


def benchmark_ray(
    model: str,
    *,
    candidates: int = 1024,
    shard_size: int = 128,
    batch_size: int = 64,
    workers: Sequence[int] = (1, 2),
    address: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Candidates per second: one process (all its threads), then Ray pools of each size in `workers`."""
    if candidates < 1 or shard_size < 1 or batch_size < 1 or not workers or min(workers) < 1:
        raise UserError("--candidates, --shard-size, --batch-size and --workers must be at least 1")
    load = ModelOptions(dtype=dtype, device=device, random_score_head_seed=seed)
    tokens = f"0:{candidates}"
    import torch

    result: dict[str, Any] = {"model": model, "tokens": tokens, "shard_size": shard_size, "batch_size": batch_size}
    with tempfile.TemporaryDirectory(prefix="rewardlens-bench-ray-") as scratch:
        root = Path(scratch)
        try:
            with LocalPool(model, load) as pool:
                single = _timed_sweep(pool, model, root / "single", tokens, shard_size, batch_size)
        except UserError:
            load = load.with_changes(random_score_head_seed=None)  # already a reward model
            with LocalPool(model, load) as pool:
                single = _timed_sweep(pool, model, root / "single", tokens, shard_size, batch_size)
        result["single_process"] = {**single, "threads": torch.get_num_threads()}
        result["ray"] = []
        for count in workers:
            with RayPool(model, load, RayOptions(address=address, workers=count)) as pool:
                timed = _timed_sweep(pool, model, root / f"ray-{count}", tokens, shard_size, batch_size)
                per_worker = round(timed["candidates_per_s"] / count, 1)
                threads = pool.shape.threads
            result["ray"].append({"workers": count, "threads_per_worker": threads, **timed, "per_worker": per_worker})
    result["cpu_count"] = os.cpu_count()
    return result


__all__ = ["benchmark_ray"]
