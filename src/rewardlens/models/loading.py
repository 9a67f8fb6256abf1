"""Load weights and tokenizer for a model spec and decide how it is scored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from rewardlens.errors import UserError
from rewardlens.models import gguf
from rewardlens.models.gated import GATED_LAYOUTS, build_gated_model, gated_layout
from rewardlens.models.heads import ScoreHead, find_score_head, upcast_head
from rewardlens.models.quiet import quiet_transformers
from rewardlens.models.read_rule import ReadRule
from rewardlens.models.spec import ResolvedModel, resolve_model

ModelKind = Literal["reward", "lm"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def text_config(model: Any) -> Any:
    """The config of a model's language part: multimodal models (Gemma 3, ...) nest it as `text_config`."""
    return getattr(model.config, "text_config", None) or model.config


@dataclass
class LoadedModel:
    """A model ready to score: weights in eval mode, tokenizer, and how its score is read."""

    resolved: ResolvedModel
    model: nn.Module
    tokenizer: Any
    kind: ModelKind
    head: ScoreHead | None
    device: torch.device
    dtype: torch.dtype
    # Whether the head runs in float32 on the upcast last hidden state (see models.heads).
    head_float32: bool = False

    @property
    def read_rule(self) -> ReadRule | None:
        """Where a reward model reads its score (None for a language model)."""
        return self.head.rule(self.model) if self.head else None

    @property
    def max_length(self) -> int | None:
        value = getattr(text_config(self.model), "max_position_embeddings", None)
        return int(value) if value else None


def resolve_device(device: str) -> torch.device:
    """`auto` means CUDA when there is one; asking for CUDA without one is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: this machine has no CUDA device")
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise UserError(f"unknown device '{device}' (use auto, cpu or cuda[:N])")


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`auto` is float32 on CPU and bfloat16 on CUDA."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}' (use auto, float32, bfloat16 or float16)")
    return DTYPES[dtype]


def _source_kwargs(resolved: ResolvedModel, trust_remote_code: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if resolved.gguf_file:
        kwargs["gguf_file"] = resolved.gguf_file
    # A hub revision was already resolved to a snapshot directory, so it is not passed again.
    return kwargs


def _architectures(config: Any) -> list[str]:
    return list(getattr(config, "architectures", None) or [])


def _infer_kind(config: Any, resolved: ResolvedModel, trust_remote_code: bool = False) -> ModelKind:
    architectures = _architectures(config)
    if gated_layout(config) is not None:
        return "reward"
    auto_map = getattr(config, "auto_map", None) or {}
    if trust_remote_code and not all(_known_architecture(a) for a in architectures):
        # The checkpoint's own code says what it is: the auto class its config maps the architecture to.
        if "AutoModelForSequenceClassification" in auto_map:
            return "reward"
        if "AutoModelForCausalLM" in auto_map:
            return "lm"
    if any(a.endswith(("ForSequenceClassification", "ForRewardModelWithGating", "ForScore")) for a in architectures):
        return "reward"
    if resolved.gguf_file or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "lm"
    if not architectures:
        # A config with no architecture named: a causal LM is the common case for bare checkpoints.
        return "lm"
    raise UserError(_unsupported(resolved.spec, architectures))


def _unsupported(spec: str, architectures: list[str]) -> str:
    return (
        f"model '{spec}' has the architecture {', '.join(architectures)}, which rewardlens does not read natively "
        f"(it reads transformers' *ForSequenceClassification and *ForCausalLM models and the gated heads "
        f"{', '.join(sorted(GATED_LAYOUTS))}); pass --trust-remote-code to run the checkpoint's own code"
    )


def _files_and_config(resolved: ResolvedModel, trust_remote_code: bool) -> tuple[ResolvedModel, dict[str, Any], Any]:
    """Where the files are (a .gguf's converted directory), the keyword arguments that read them, the config."""
    from transformers import AutoConfig

    files = gguf.loadable(resolved)  # `resolved` stays what the user named, for the run records
    kwargs = _source_kwargs(files, trust_remote_code)
    return files, kwargs, AutoConfig.from_pretrained(str(files.directory), **kwargs)


def infer_kind(spec: str, *, revision: str | None = None, trust_remote_code: bool = False) -> ModelKind:
    """How `load_model(spec)` scores a model by default, "reward" or "lm", from its config alone (no weights)."""
    resolved = resolve_model(spec, revision)
    try:
        _, _, config = _files_and_config(resolved, trust_remote_code)
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise UserError(f"cannot load model '{spec}': {str(err).splitlines()[0][:200]}") from None
    return _infer_kind(config, resolved, trust_remote_code)


def _known_architecture(name: str) -> bool:
    import transformers

    return name in GATED_LAYOUTS or hasattr(transformers, name)


def _check_architectures(config: Any, spec: str, trust_remote_code: bool) -> None:
    """An architecture neither transformers nor a native reader knows runs only as the checkpoint's own code."""
    unknown = [a for a in _architectures(config) if not _known_architecture(a)]
    if unknown and not trust_remote_code:
        raise UserError(_unsupported(spec, unknown))


def _load_weights(
    auto_class: Any, resolved: ResolvedModel, kwargs: dict[str, Any], spec: str, allow_missing: tuple[str, ...] = ()
) -> nn.Module:
    """Load and refuse a model that transformers had to complete with freshly initialised weights."""
    try:
        with quiet_transformers():
            model, info = auto_class.from_pretrained(str(resolved.directory), output_loading_info=True, **kwargs)
    except ImportError as err:  # a checkpoint's remote code that does not import on this transformers
        raise UserError(
            f"the remote code of model '{spec}' does not import: {str(err).splitlines()[0][:200]}"
        ) from None
    # Keys whose checkpoint tensor had another shape are re-initialised too: as missing as absent ones.
    reinitialised = [str(key[0] if isinstance(key, tuple) else key) for key in info.get("mismatched_keys", ())]
    missing = sorted(
        k for k in [*info.get("missing_keys", ()), *reinitialised] if not k.startswith(allow_missing)
    )
    if missing:
        architecture = type(model).__name__
        raise UserError(
            f"model '{spec}' loaded as {architecture} lacks weights {', '.join(missing[:8])}"
            f"{' ...' if len(missing) > 8 else ''}; rewardlens does not score with weights the checkpoint does not hold"
        )
    loaded: nn.Module = model
    return loaded


def _load_gated(files: ResolvedModel, config: Any, kwargs: dict[str, Any], tokenizer: Any, spec: str) -> nn.Module:
    """A gated RM: the backbone natively (no remote code), the head from the checkpoint's tensors."""
    from transformers import AutoModel

    layout = gated_layout(config)
    assert layout is not None
    native = {k: v for k, v in kwargs.items() if k != "trust_remote_code"}
    backbone = _load_weights(AutoModel, files, {**native, "config": config}, spec)
    return build_gated_model(backbone, files.directory, config, layout, tokenizer)


def load_model(
    spec: str,
    *,
    revision: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    kind: str = "auto",
    random_score_head_seed: int | None = None,
    device_map: str | None = None,
) -> LoadedModel:
    """Load a model for scoring.

    `random_score_head_seed` puts a seeded random linear score head on a causal LM (benchmarks and
    engine tests need an RM-shaped model when no real RM is available offline).
    `device_map` (e.g. "auto") spreads a model too big for one GPU over the visible GPUs (accelerate);
    inputs then go to the device of the input embeddings.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    if kind not in ("auto", "reward", "lm"):
        raise UserError(f"unknown kind '{kind}' (use auto, reward or lm)")
    resolved = resolve_model(spec, revision)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    try:
        files, kwargs, config = _files_and_config(resolved, trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(str(files.directory), **kwargs)
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise UserError(f"cannot load model '{spec}': {str(err).splitlines()[0][:200]}") from None

    model_kind: ModelKind = (
        "reward" if random_score_head_seed is not None else _infer_kind(config, resolved, trust_remote_code)
    )
    if kind == "lm":
        model_kind = "lm"
    elif kind == "reward" and model_kind != "reward":
        raise UserError(f"--kind reward: model '{spec}' has no score head (it is a causal LM; use --kind lm)")

    if random_score_head_seed is not None:
        torch.manual_seed(random_score_head_seed)
        kwargs["num_labels"] = 1
    auto_class = AutoModelForSequenceClassification if model_kind == "reward" else AutoModelForCausalLM
    # Only a benchmark's seeded random head may be missing from the checkpoint.
    allow_missing = ("score.",) if random_score_head_seed is not None else ()
    try:
        placement = {"device_map": device_map} if device_map else {}
        load_kwargs = {**kwargs, "dtype": torch_dtype, **placement}
        if model_kind == "reward" and gated_layout(config) is not None:
            model = _load_gated(files, config, load_kwargs, tokenizer, spec)
        else:
            _check_architectures(config, spec, trust_remote_code)
            model = _load_weights(auto_class, files, load_kwargs, spec, allow_missing)
    except (OSError, ValueError, KeyError, EOFError, RuntimeError) as err:
        raise UserError(f"cannot load model '{spec}': {str(err).splitlines()[0][:200]}") from None
    if device_map:
        pretrained: Any = model  # a PreTrainedModel; nn.Module's typing hides its methods
        torch_device = pretrained.get_input_embeddings().weight.device
        model.eval()
    else:
        model.to(torch_device).eval()

    head = None
    if model_kind == "reward":
        head = find_score_head(model, resolved.display_name)
        if head is None:
            raise UserError(f"model '{spec}' has no score head that rewardlens knows how to read")
    head_float32 = head is not None and (head.gated or upcast_head(model, head))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(resolved, model, tokenizer, model_kind, head, torch_device, torch_dtype, head_float32)
