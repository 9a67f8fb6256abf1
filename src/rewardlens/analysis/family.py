"""Model families (the base model an RM was trained from), inferred from model names.

The value-bias finding is a family effect (Llama- vs Gemma-based RMs), so each analysed model needs a
family. It is read from the model's name unless the user gives it (`--family KEY=FAMILY`), where KEY is
the model name a run records, the base name of its directory or path, or a CSV file's stem.

A model given the family `none` (`NO_FAMILY`) belongs to no family: it keeps its within-model conclusions
but takes part in no family comparison (a local model set beside the published RMs, `rewardlens.published`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import pandas as pd

from rewardlens.errors import UserError

UNKNOWN_FAMILY = "unknown"
NO_FAMILY = "none"

# Checked in order: the first pattern found in the lower-cased name wins. SmolLM and TinyLlama come
# before llama because their names contain it (and users compare them with Llama-3 RMs).
FAMILY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern))
    for family, pattern in (
        ("smollm", r"smollm"),
        ("tinyllama", r"tinyllama"),
        ("gemma", r"gemma"),
        ("llama", r"llama"),
        ("qwen", r"qwen"),
        ("mistral", r"mistral|mixtral|zephyr"),
        ("internlm", r"internlm"),
        ("phi", r"(?<![a-z])phi[-_]?\d"),
        ("deepseek", r"deepseek"),
        ("olmo", r"olmo"),
        ("falcon", r"falcon"),
        ("gpt2", r"gpt-?2"),
        ("pythia", r"pythia"),
    )
)


def infer_family(name: str) -> str:
    """The family named in a model name (e.g. `Ray2333/GRM-gemma2-2B-rewardmodel-ft` -> `gemma`)."""
    lowered = name.lower()
    for family, pattern in FAMILY_PATTERNS:
        if pattern.search(lowered):
            return family
    return UNKNOWN_FAMILY


def parse_family_options(options: Iterable[str]) -> dict[str, str]:
    """`KEY=FAMILY` strings (the `--family` option) as a mapping."""
    overrides: dict[str, str] = {}
    for option in options:
        key, sep, family = option.partition("=")
        if not sep or not key.strip() or not family.strip():
            raise UserError(f"--family {option!r}: expected KEY=FAMILY, e.g. my-rm=llama")
        overrides[key.strip()] = family.strip()
    return overrides


def assign_families(aliases: Mapping[str, Iterable[str]], overrides: Mapping[str, str]) -> dict[str, str]:
    """The family of each model; `aliases[model]` are the names an override key may use for it.

    Every override must match a model: a misspelt key would otherwise silently do nothing.
    """
    names = {model: {model, *alias_list} for model, alias_list in aliases.items()}
    used: set[str] = set()
    families: dict[str, str] = {}
    for model, keys in names.items():
        matched = [key for key in overrides if key in keys]
        used.update(matched)
        families[model] = overrides[matched[0]] if matched else infer_family(model)
    unused = [key for key in overrides if key not in used]
    if unused:
        raise UserError(f"--family {unused[0]}=...: no analysed model is called {unused[0]!r}")
    return families


def with_family(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of models that belong to a family (`family` column not `NO_FAMILY`): what family-level
    statistics are computed over."""
    return frame[frame["family"] != NO_FAMILY]


__all__ = [
    "FAMILY_PATTERNS",
    "NO_FAMILY",
    "UNKNOWN_FAMILY",
    "assign_families",
    "infer_family",
    "parse_family_options",
    "with_family",
]
