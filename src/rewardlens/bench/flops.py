"""FLOP counts and the machine's matmul peak, for utilisation figures in the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rewardlens.engine.requests import ScoreRequest, group_by_prompt
from rewardlens.models.loading import text_config


def linear_params_per_token(model: nn.Module) -> int:
    """Weights that every token multiplies through: all 2-D weights except embeddings and the LM head."""
    output: Any = getattr(model, "get_output_embeddings", lambda: None)()
    skip = {id(output.weight)} if output is not None else set()
    total = 0
    for name, parameter in model.named_parameters():
        if parameter.dim() == 2 and "embed" not in name and id(parameter) not in skip:
            total += parameter.numel()
    return total


def transformer_flops(model: nn.Module, requests: Sequence[ScoreRequest], prompt_once: bool) -> float:
    """Useful FLOPs to score `requests`: 2 per weight per real token, plus attention scores and values.

    Padding is not counted (it is wasted work). `prompt_once`: the prompt of each group is
    processed once (cached engine) rather than once per request.
    """
    config = text_config(model)
    layers = int(config.num_hidden_layers)
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    per_token = 2 * linear_params_per_token(model)

    def tokens_flops(start: int, stop: int) -> float:
        # Position p attends to p + 1 keys: QK^T and AV cost 2 * heads * head_dim each per key.
        keys = sum(p + 1 for p in range(start, stop))
        return (stop - start) * per_token + 4.0 * layers * heads * head_dim * keys

    flops = 0.0
    for prompt_ids, indices in group_by_prompt(requests).items():
        n_prompt = len(prompt_ids)
        repeats = 1 if prompt_once else len(indices)
        flops += repeats * tokens_flops(0, n_prompt)
        for index in indices:
            flops += tokens_flops(n_prompt, n_prompt + len(requests[index].continuation_ids))
    return flops


def gemm_gflops(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-`repeats` GFLOP/s of a large square matmul: the machine's practical peak."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9
