"""Every name and default that more than one module needs, defined once, and the options that load a model.

This module imports no torch, so a study file can be validated, and a command line parsed, without it.
`ModelOptions` follows TRL's habit: one frozen dataclass is at once the Python API (`load_scorer(spec,
options)`), the CLI (its fields are the Typer options of every command that loads a model,
`rewardlens.cli.options.with_model_options`), the study YAML (a model entry's keys are its fields) and the
saved record (Ray workers receive it whole), so no option is dropped on the way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from rewardlens.errors import UserError
from rewardlens.models.templates import DATE_STRING_FORMAT, DEFAULT_DATE, check_sequences, parse_date

ENGINES = ("cached", "batched", "reference")
DTYPES = ("auto", "float32", "bfloat16", "float16")
KINDS = ("auto", "reward", "lm")
MEASURES = ("log-ratio", "mwlr")  # implicit rewards
ANALYSES = ("values", "tokens")  # what a study analyses

DEFAULT_MODEL = "smollm2-135m-instruct"  # the model `rewardlens audit` audits unless told otherwise
DEFAULT_LEXICON = "big2-nouns"  # every audit scores it (the Big Two headline)
SWEEP_PROMPTS = "optpess3"  # vocabulary sweeps: the optimal/pessimal prompts
WORD_PROMPTS = "value54"  # word runs: the 54 value prompts
DEFAULT_PERMUTATIONS = 10_000
DEFAULT_SHARD_SIZE = 4096  # candidates per sweep shard
DEFAULT_POLICY_TEMPLATE = "chat"
DEFAULT_REFERENCE_TEMPLATE = "plain-nospace"  # a base model has no chat template


def _choice(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise UserError(f"--{option} {value!r}: use {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class ModelOptions:
    """How to load a model and render its conversations (see `load_model` and `make_template`)."""

    revision: str | None = None  # hub revision: branch, tag or commit
    dtype: str = "auto"  # auto: float32 on CPU, bfloat16 on CUDA
    device: str = "auto"
    device_map: str | None = None  # e.g. "auto": spread a model too big for one GPU over the visible GPUs
    trust_remote_code: bool = False  # the model's own code runs only when the user says so
    kind: str = "auto"  # auto: sequence classification = reward, causal LM = log-probability
    template: str | None = None  # chat (the tokenizer's), plain, plain-nospace or FILE.jinja
    date: str = DEFAULT_DATE  # what a date-stamped template renders, never today's
    sequences: str = "exact"  # exact ids, or the published decode / render / tokenize-again pipeline
    include_end: bool = False  # language models: also score the end-of-turn token
    random_score_head_seed: int | None = None  # benchmarks: a seeded random score head on a causal LM

    def __post_init__(self) -> None:
        # Checked when the options are made (a command line, a study file), before any slow load.
        _choice(self.dtype, DTYPES, "dtype")
        _choice(self.kind, KINDS, "kind")
        check_sequences(self.sequences)
        # One spelling of a date ("26 Jul 2024"), as templates render it and runs record it.
        object.__setattr__(self, "date", parse_date(self.date).strftime(DATE_STRING_FORMAT))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in fields(cls))

    @classmethod
    def from_mapping(cls, values: dict[str, Any], where: str = "options") -> ModelOptions:
        """Options from a mapping (a study entry, keyword arguments); an unknown key is a UserError."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise UserError(f"{where}: unknown model option(s) {', '.join(unknown)} (use {', '.join(cls.names())})")
        return cls(**values)

    def with_changes(self, **changes: Any) -> ModelOptions:
        return replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def loading(self) -> dict[str, Any]:
        """The keyword arguments of `rewardlens.models.loading.load_model` (the weights; the rest is the
        conversation: template, date, sequences, include_end)."""
        conversation = ("template", "date", "sequences", "include_end")
        return {key: value for key, value in self.to_dict().items() if key not in conversation}


def model_options(options: ModelOptions | None = None, **changes: Any) -> ModelOptions:
    """`options` (default: the defaults) with keyword changes; unknown keywords are a UserError."""
    base = options or ModelOptions()
    if not changes:
        return base
    return ModelOptions.from_mapping({**base.to_dict(), **changes}, "model options")


def split_model_options(
    options: ModelOptions | None, keywords: dict[str, Any]
) -> tuple[ModelOptions, dict[str, Any]]:
    """(`options` with the keywords that are `ModelOptions` fields, the other keywords): what the `run_*`
    functions do with `run_sweep(spec, prompts, out, shard_size=..., device="cpu")`."""
    names = set(ModelOptions.names())
    changes = {key: value for key, value in keywords.items() if key in names}
    rest = {key: value for key, value in keywords.items() if key not in names}
    return model_options(options, **changes), rest


__all__ = [
    "ANALYSES",
    "DEFAULT_LEXICON",
    "DEFAULT_MODEL",
    "DEFAULT_PERMUTATIONS",
    "DEFAULT_POLICY_TEMPLATE",
    "DEFAULT_REFERENCE_TEMPLATE",
    "DEFAULT_SHARD_SIZE",
    "DTYPES",
    "ENGINES",
    "KINDS",
    "MEASURES",
    "SWEEP_PROMPTS",
    "WORD_PROMPTS",
    "ModelOptions",
    "model_options",
    "split_model_options",
]
