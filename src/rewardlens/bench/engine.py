"""`bench engine`: the cached engine against full padded batches on the same candidates, one run."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from rewardlens.bench.flops import gemm_gflops, transformer_flops
from rewardlens.models.loading import infer_kind
from rewardlens.scorers import ModelScorer, load_scorer

BENCH_PROMPT = "What, in one word, is the greatest thing ever?"


def bench_scorer(
    model: str, *, dtype: str, device: str, trust_remote_code: bool, seed: int
) -> tuple[ModelScorer, str]:
    """An RM-shaped scorer: the model's own head, or a seeded random linear head on a causal LM."""
    own_head = infer_kind(model, trust_remote_code=trust_remote_code) == "reward"
    scorer = load_scorer(
        model,
        dtype=dtype,
        device=device,
        trust_remote_code=trust_remote_code,
        random_score_head_seed=None if own_head else seed,
    )
    return scorer, "model" if own_head else "random"


def candidate_ids(scorer: ModelScorer, count: int) -> list[int]:
    """The first `count` ordinary (non-special) token ids of the vocabulary."""
    special = set(scorer.tokenizer.all_special_ids)
    ids = [i for i in range(len(scorer.tokenizer)) if i not in special]
    return ids[:count]


def _timed(scorer: ModelScorer, engine: str, ids: list[int], batch_size: int) -> tuple[float, np.ndarray]:
    scorer.score_token_ids(BENCH_PROMPT, ids[: min(len(ids), 8)], engine=engine, batch_size=batch_size)  # warm-up
    if scorer.loaded.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    scores = scorer.score_token_ids(BENCH_PROMPT, ids, engine=engine, batch_size=batch_size)
    if scorer.loaded.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, scores


def benchmark_engine(
    model: str,
    *,
    candidates: int = 2048,
    batch_size: int = 256,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    scorer, head = bench_scorer(model, dtype=dtype, device=device, trust_remote_code=trust_remote_code, seed=seed)
    ids = candidate_ids(scorer, candidates)
    batched_s, batched = _timed(scorer, "batched", ids, batch_size)
    cached_s, cached = _timed(scorer, "cached", ids, batch_size)
    requests = scorer.token_requests(BENCH_PROMPT, ids)
    flops = transformer_flops(scorer.model, requests, prompt_once=True)
    peak = gemm_gflops(scorer.loaded.device, scorer.loaded.dtype)
    achieved = flops / cached_s / 1e9
    return {
        "model": scorer.name,
        "head": head,
        "device": str(scorer.loaded.device),
        "dtype": str(scorer.loaded.dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "candidates": len(ids),
        "batch_size": batch_size,
        "batched_s": round(batched_s, 3),
        "cached_s": round(cached_s, 3),
        "candidates_per_s": round(len(ids) / cached_s, 1),
        "speedup": round(batched_s / cached_s, 2),
        "max_abs_diff": float(np.max(np.abs(batched - cached))),
        "gemm_gflops": round(peak, 1),
        "model_gflops": round(achieved, 1),
        "utilization": round(achieved / peak, 3),
    }
