"""`bench sweep`: the cost of a sweep (store, metadata, progress) over the cached engine alone.

Both are timed side by side in one process on the same loaded model, the same prompt and the same
candidate ids; the ratio `sweep_s / engine_s` is what the sweep adds (target: at most 1.2).
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from rewardlens.errors import UserError

BENCH_PROMPT = "What, in one word, is the greatest thing ever?"


def bench_sweep(
    model: str,
    candidates: int,
    *,
    batch_size: int | None = None,
    shard_size: int = 4096,
    device: str = "auto",
    dtype: str = "auto",
    repeats: int = 1,
) -> dict[str, Any]:
    """Time `run_sweep` and `score_token_ids` on `candidates` token ids; the best of `repeats` each."""
    from rewardlens.prompts import prompts_from_texts
    from rewardlens.scorers import load_scorer
    from rewardlens.sweep import run_sweep

    if candidates < 1:
        raise UserError("--candidates must be at least 1")
    # A causal LM gets a seeded random score head, as in `bench engine`: an RM-shaped model offline.
    scorer = load_scorer(model, device=device, dtype=dtype, random_score_head_seed=0)
    size = len(scorer.tokenizer)
    if candidates > size:
        raise UserError(f"--candidates {candidates}: the vocabulary has only {size} tokens")
    start = min(1000, size - candidates)  # past the control tokens at the start of most vocabularies
    ids = list(range(start, start + candidates))
    prompts = prompts_from_texts([BENCH_PROMPT])
    scorer.score_token_ids(BENCH_PROMPT, ids[:8], batch_size=batch_size)  # warm-up (allocations, kernels)
    engine_times, sweep_times = [], []
    for _ in range(max(1, repeats)):
        began = time.perf_counter()
        scorer.score_token_ids(BENCH_PROMPT, ids, engine="cached", batch_size=batch_size)
        engine_times.append(time.perf_counter() - began)
        with tempfile.TemporaryDirectory(prefix="rewardlens-bench-") as directory:
            began = time.perf_counter()
            run_sweep(
                scorer,
                prompts,
                directory,
                tokens=f"{start}:{start + candidates}",
                include_special=True,  # exactly `candidates` rows, the same ids as the engine's
                shard_size=shard_size,
                batch_size=batch_size,
                engine="cached",
            )
            sweep_times.append(time.perf_counter() - began)
    engine_s, sweep_s = min(engine_times), min(sweep_times)
    return {
        "model": model,
        "device": str(scorer.describe().get("device")),
        "candidates": candidates,
        "batch_size": batch_size,
        "sweep_s": round(sweep_s, 4),
        "engine_s": round(engine_s, 4),
        "overhead_ratio": round(sweep_s / engine_s, 4),
        "candidates_per_s": round(candidates / sweep_s, 2),
    }
