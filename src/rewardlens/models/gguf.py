"""GGUF files kept as ordinary model directories, so that a .gguf is parsed once rather than at every load.

transformers reads a .gguf's metadata four times per load (two configs, the tokenizer, the weights)
with gguf-py's element-by-element reader, then de-quantizes every tensor to float32: about 30 s for
SmolLM2-135M on 2 cores, against under a second for the same model saved as safetensors. The first
load therefore saves what transformers made of the file (config, tokenizer, float32 weights) under
the cache, and later loads read that directory; the tests check that both give the same token ids
and the same logits.

The cache is `$REWARDLENS_CACHE/gguf` (default `$XDG_CACHE_HOME/rewardlens`, else `~/.cache/rewardlens`);
`REWARDLENS_CACHE=off` loads every .gguf directly. A directory is keyed by the file's path, size and
modification time and by the transformers version, so an edited file or another converter converts again.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from rewardlens.models.quiet import quiet_transformers
from rewardlens.models.spec import ResolvedModel

CACHE_ENV = "REWARDLENS_CACHE"
SOURCE_RECORD = "rewardlens-gguf-source.json"


def cache_root() -> Path | None:
    """Where rewardlens keeps what it derives from models; None when `REWARDLENS_CACHE=off`."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured.lower() == "off":
        return None
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rewardlens"


def forget_gguf_quantization(model: Any) -> None:
    """Drop the GGUF quantizer transformers leaves on a model it de-quantized.

    The weights are ordinary float tensors by then; the quantizer would only make `save_pretrained`
    and the Trainer refuse the model, and saved checkpoints would claim to be GGUF-quantized.
    """
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _key(source: Path) -> str:
    import transformers

    stat = source.stat()
    identity = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|transformers {transformers.__version__}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _check_room(folder: Path, needed: int) -> None:
    """De-quantized weights are 4 bytes a parameter (an 8B model: 32 GB): never fill the disk with a cache."""
    free = shutil.disk_usage(folder).free
    if needed > 0.9 * free:
        raise OSError(errno.ENOSPC, f"{needed / 1e9:.1f} GB of float32 weights, {free / 1e9:.1f} GB free")


def _convert(resolved: ResolvedModel, folder: Path) -> None:
    """Save the de-quantized model, its config and its tokenizer as transformers loads them from the .gguf."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": resolved.gguf_file}
    # The de-quantization bar stays: converting takes tens of seconds, once.
    with quiet_transformers(progress_bars=True):
        tokenizer = AutoTokenizer.from_pretrained(str(resolved.directory), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(resolved.directory), dtype=torch.float32, **kwargs)
        _check_room(folder, sum(p.numel() * 4 for p in model.parameters()))
        forget_gguf_quantization(model)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)


def loadable(resolved: ResolvedModel) -> ResolvedModel:
    """Where to load `resolved` from: a .gguf's converted directory (made on first use), anything else as it is.

    When the cache cannot be written the .gguf is loaded directly (slower, same result) with a warning;
    a file transformers cannot read raises its own error, as a direct load would.
    """
    root = cache_root()
    if resolved.gguf_file is None or root is None:
        return resolved
    source = resolved.directory / resolved.gguf_file
    target = root / "gguf" / f"{source.stem}-{_key(source)}"
    if not (target / SOURCE_RECORD).is_file():
        try:
            _convert_into(resolved, source, target)
        except OSError as err:
            warnings.warn(
                f"cannot write the GGUF cache under {root} ({err}); loading {source} directly "
                f"({CACHE_ENV}=off skips the cache)",
                stacklevel=2,
            )
            return resolved
    return replace(resolved, directory=target, gguf_file=None)


def _convert_into(resolved: ResolvedModel, source: Path, target: Path) -> None:
    """Convert in a staging directory beside `target`, then rename: readers see no directory or a whole one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        _convert(resolved, staging)
        record = {"source": str(source.resolve()), "size": source.stat().st_size}
        (staging / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        try:
            staging.rename(target)
        except OSError:
            if not (target / SOURCE_RECORD).is_file():  # unless another process finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
