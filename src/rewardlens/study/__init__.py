"""Studies: one YAML file names the models, the prompt sets and lexicons, the jobs and the analyses.

`schema` (what a study is), `parse` (a study file validated before any job starts: one clear line per
problem), `run` (every job through the one executor, here or on Ray), `analyses` (the analyses and the one
report). `rewardlens audit` is a study (`rewardlens.study.audit.audit_study`). A study file:

    name: my-study
    defaults: {dtype: bfloat16, revision: main}      # any ModelOptions field, applied to every model
                                                     # date: 1 Dec 2024 fixes what date-stamped templates render
    models:
      - model: Skywork/Skywork-Reward-Llama-3.1-8B-v0.2
      - model: RLHFlow/ArmoRM-Llama3-8B-v0.1
        trust_remote_code: true
        batch_size: 64
    sweep: {prompts: optpess3, tokens: all}
    words: {prompts: value54, lexicons: [big2-nouns, mfd2]}
    reference: {model: path/to/base-model}             # optional: implicit rewards of the LMs against it
    beside_published: true                             # optional: beside the ten published RMs
    analyses: [tokens, values]
"""

from __future__ import annotations

from typing import Any

from rewardlens.study.parse import list_recipes, load_study, parse_study
from rewardlens.study.schema import (
    ImplicitPair,
    ImplicitSection,
    ReferenceSection,
    Study,
    StudyModel,
    StudyResult,
    SweepSection,
    WordsSection,
)

__all__ = [
    "ImplicitPair",
    "ImplicitSection",
    "ReferenceSection",
    "Study",
    "StudyModel",
    "StudyResult",
    "SweepSection",
    "WordsSection",
    "list_recipes",
    "load_study",
    "parse_study",
    "run_study",
]


def __getattr__(name: str) -> Any:
    # Running needs torch; reading and checking a study file does not, so `run` is imported when first used.
    if name == "run_study":
        from rewardlens.study import run

        return run.run_study
    raise AttributeError(name)
