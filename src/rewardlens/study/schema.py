"""What a study is: its models (each with its `ModelOptions`), its sections of jobs, its analyses.

Plain frozen dataclasses, validated by `rewardlens.study.parse` and run by `rewardlens.study.run`; `to_yaml`
writes the validated study back as a study file (into OUT, as the record of what was run).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rewardlens.config import (
    DEFAULT_LEXICON,
    DEFAULT_PERMUTATIONS,
    DEFAULT_POLICY_TEMPLATE,
    DEFAULT_REFERENCE_TEMPLATE,
    DEFAULT_SHARD_SIZE,
    SWEEP_PROMPTS,
    WORD_PROMPTS,
    ModelOptions,
)
from rewardlens.layout import ModelRuns

# Keys of a model entry besides its `ModelOptions` fields: where it is written, how it is batched and placed.
ENTRY_KEYS = ("model", "name", "batch_size", "gpus_per_worker", "family")
MODEL_KEYS = (*ENTRY_KEYS[:2], *ModelOptions.names(), *ENTRY_KEYS[2:])
DEFAULT_KEYS = tuple(key for key in MODEL_KEYS if key not in ("model", "name", "family"))
TOP_KEYS = (
    "name",
    "description",
    "defaults",
    "models",
    "sweep",
    "words",
    "implicit",
    "reference",
    "beside_published",
    "analyses",
    "engine",
    "permutations",
    "seed",
)
SWEEP_KEYS = ("prompts", "tokens", "include_special", "shard_size")
WORDS_KEYS = ("prompts", "lexicons", "responses", "human")
IMPLICIT_KEYS = ("prompts", "responses", "measure", "beta", "pairs")
PAIR_KEYS = ("policy", "reference", "name", "policy_template", "reference_template")
REFERENCE_KEYS = ("model", "template", "policy_template")


@dataclass(frozen=True)
class StudyModel:
    """One model of a study and how to load it."""

    spec: str
    name: str  # directory name under OUT/models
    options: ModelOptions = field(default_factory=ModelOptions)
    batch_size: int | None = None
    gpus_per_worker: float = 1.0
    family: str | None = None

    def __getattr__(self, name: str) -> Any:
        # `model.date`, `model.dtype`, ...: a model's loading options read as its own attributes.
        if name in ModelOptions.names():
            return getattr(self.options, name)
        raise AttributeError(name)

    def load_options(self) -> ModelOptions:
        return self.options


@dataclass(frozen=True)
class SweepSection:
    prompts: str = SWEEP_PROMPTS
    tokens: str = "all"
    include_special: bool = False
    shard_size: int = DEFAULT_SHARD_SIZE


@dataclass(frozen=True)
class WordsSection:
    """Word runs of each lexicon; with `responses` (a response list, `rewardlens.responses`) also a run of those,
    and with `human` (a numeric column of that list) the "vs human preferences" analysis of every model's run."""

    prompts: str = WORD_PROMPTS
    lexicons: tuple[str, ...] = (DEFAULT_LEXICON,)
    responses: str | None = None
    human: str | None = None


@dataclass(frozen=True)
class ImplicitPair:
    policy: str
    reference: str
    name: str
    policy_template: str = DEFAULT_POLICY_TEMPLATE
    reference_template: str = DEFAULT_REFERENCE_TEMPLATE


@dataclass(frozen=True)
class ImplicitSection:
    """Implicit rewards of policy/reference pairs; `responses`: "vocab" or a lexicon."""

    pairs: tuple[ImplicitPair, ...]
    prompts: str = WORD_PROMPTS
    responses: str = "vocab"
    measure: str = "log-ratio"
    beta: float = 1.0


@dataclass(frozen=True)
class ReferenceSection:
    """`audit --reference`: the implicit reward of every audited language model against one base model,
    for the sweep's vocabulary and the words' lexicons, in each model's directory."""

    model: str
    template: str = DEFAULT_REFERENCE_TEMPLATE
    policy_template: str = DEFAULT_POLICY_TEMPLATE


@dataclass(frozen=True)
class Study:
    name: str
    models: tuple[StudyModel, ...]
    sweep: SweepSection | None = None
    words: WordsSection | None = None
    implicit: ImplicitSection | None = None
    reference: ReferenceSection | None = None
    analyses: tuple[str, ...] = ()
    beside_published: bool = False  # the value analyses also put the models beside the ten published RMs
    description: str = ""
    engine: str = "cached"
    permutations: int = DEFAULT_PERMUTATIONS
    seed: int = 0
    source: str = ""
    family_options: tuple[str, ...] = ()  # `KEY=FAMILY` strings, as `--family` of `rewardlens audit`
    # Loading options of the models an implicit section or a reference loads (the study's defaults).
    implicit_options: ModelOptions = field(default_factory=ModelOptions)

    def to_yaml(self) -> str:
        """The validated study as a study file (paths resolved), written into OUT."""
        document: dict[str, Any] = {"name": self.name}
        if self.description:
            document["description"] = self.description
        defaults = _changed(self.implicit_options)
        if defaults:
            document["defaults"] = defaults
        if self.models:
            document["models"] = [_entry(model) for model in self.models]
        if self.sweep:
            document["sweep"] = asdict(self.sweep)
        if self.words:
            document["words"] = {"prompts": self.words.prompts, "lexicons": list(self.words.lexicons)}
            for key in ("responses", "human"):
                if getattr(self.words, key) is not None:
                    document["words"][key] = getattr(self.words, key)
        if self.implicit:
            document["implicit"] = {**asdict(self.implicit), "pairs": [asdict(p) for p in self.implicit.pairs]}
        if self.reference:
            document["reference"] = asdict(self.reference)
        if self.beside_published:
            document["beside_published"] = True
        document.update(
            analyses=list(self.analyses), engine=self.engine, permutations=self.permutations, seed=self.seed
        )
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@dataclass
class StudyResult:
    out: Path
    models: list[ModelRuns]
    value_dirs: dict[str, Path] = field(default_factory=dict)
    tokens_dir: Path | None = None
    implicit_dirs: dict[str, Path] = field(default_factory=dict)
    # With a reference: per audited language model, its implicit runs ("sweep" and one per lexicon).
    reference_runs: dict[str, dict[str, Path]] = field(default_factory=dict)
    # With a response list: each model's run of it (by model name), and the analysis against its human column.
    response_dirs: dict[str, Path] = field(default_factory=dict)
    human_dir: Path | None = None
    report: Path | None = None
    skipped_jobs: int = 0
    notes: list[str] = field(default_factory=list)


def _changed(options: ModelOptions) -> dict[str, Any]:
    """The options that differ from the defaults (what a study file needs to say)."""
    defaults = ModelOptions().to_dict()
    return {key: value for key, value in options.to_dict().items() if value != defaults[key]}


def _entry(model: StudyModel) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": model.spec, "name": model.name}
    entry.update({key: value for key, value in model.options.to_dict().items() if value is not None})
    entry.update(batch_size=model.batch_size, gpus_per_worker=model.gpus_per_worker, family=model.family)
    return {key: value for key, value in entry.items() if value is not None}


__all__ = [
    "DEFAULT_KEYS",
    "MODEL_KEYS",
    "ImplicitPair",
    "ImplicitSection",
    "ReferenceSection",
    "Study",
    "StudyModel",
    "StudyResult",
    "SweepSection",
    "WordsSection",
]
