"""`bench engine`: the cached engine against full padded batches and the model's own forward, one run.

`--replica gated` puts a seeded random head of QRM's gated layout (quantile regression, gating MLP with
BatchNorm, reward transform) on the model's backbone: no gated RM ships offline, and the point is the
engine's cost of the gate, which reads a second position in the prompt. The line says `"head": "random gated"`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from rewardlens.bench.flops import gemm_gflops, transformer_flops
from rewardlens.errors import UserError
from rewardlens.models.gated import GATED_LAYOUTS, GatedHead, GatedRewardModel
from rewardlens.models.heads import backbone_of, find_score_head
from rewardlens.models.loading import infer_kind
from rewardlens.scorers import ModelScorer, load_scorer

REPLICAS = ("none", "gated")
# QRM-Llama3.1-8B's head sizes (its config); the gate width and depth as published.
GATED_REPLICA_FIELDS = {"num_objectives": 19, "num_quantiles": 19, "gating_hidden_dim": 1024, "gating_n_hidden": 3}
OWN_FORWARD_SAMPLE = 64

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


def gated_replica(scorer: ModelScorer, seed: int) -> ModelScorer:
    """The scorer's backbone under a seeded random gated head; its gate reads the last 5 ids of the prompt
    prefix (the end of the user turn and the assistant header, as ArmoRM's pattern does on Llama 3)."""
    layout = GATED_LAYOUTS["LlamaForRewardModelWithGating31"]
    own: Any = scorer.model.config
    config = type(own).from_dict({**own.to_dict(), **GATED_REPLICA_FIELDS})
    torch.manual_seed(seed)
    head = GatedHead(config, layout)
    with torch.no_grad():
        for name, tensor in head.state_dict().items():
            if name.endswith("running_var"):  # positive, away from zero
                tensor.copy_(torch.rand_like(tensor) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor))
    pattern = tuple(scorer.template.prefix_ids(BENCH_PROMPT)[-5:])
    model = GatedRewardModel(backbone_of(scorer.model), head.to(scorer.loaded.device).eval(), config, layout, pattern)
    loaded = scorer.loaded
    loaded.model, loaded.head, loaded.head_float32 = model, find_score_head(model, scorer.name), True
    return ModelScorer(loaded, scorer.template, include_end=scorer.include_end)


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
    replica: str = "none",
) -> dict[str, Any]:
    if replica not in REPLICAS:
        raise UserError(f"unknown replica '{replica}' (use {', '.join(REPLICAS)})")
    scorer, head = bench_scorer(model, dtype=dtype, device=device, trust_remote_code=trust_remote_code, seed=seed)
    if replica == "gated":
        scorer, head = gated_replica(scorer, seed), "random gated"
    ids = candidate_ids(scorer, candidates)
    batched_s, batched = _timed(scorer, "batched", ids, batch_size)
    cached_s, cached = _timed(scorer, "cached", ids, batch_size)
    # The model's own forward, one unpadded sequence at a time, on the first candidates (it is slow).
    sample = ids[:OWN_FORWARD_SAMPLE]
    own_s, own = _timed(scorer, "reference", sample, 1)
    own_per_s = len(sample) / own_s
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
        "own_forward_candidates": len(sample),
        "own_forward_per_s": round(own_per_s, 1),
        "speedup_vs_own_forward": round(len(ids) / cached_s / own_per_s, 2),
        "max_abs_diff_own_forward": float(np.max(np.abs(own - cached[: len(sample)]))),
        "gemm_gflops": round(peak, 1),
        "model_gflops": round(achieved, 1),
        "utilization": round(achieved / peak, 3),
    }
