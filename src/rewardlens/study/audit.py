"""`rewardlens audit`, the main job, is a study: for each model a vocabulary sweep on the optimal/pessimal
prompts and word scores of value lexicons under the 54 value prompts, optionally the implicit reward of
each language model against a reference, then the analyses and one self-contained HTML report.

`audit_study` builds the study; `run_audit` runs it (`rewardlens.study.run_study`: the same layout of OUT,
resumable at every step, here or on Ray).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlens.config import (
    DEFAULT_LEXICON,
    DEFAULT_MODEL,
    DEFAULT_PERMUTATIONS,
    SWEEP_PROMPTS,
    WORD_PROMPTS,
    ModelOptions,
    model_options,
)
from rewardlens.errors import UserError
from rewardlens.layout import model_slug
from rewardlens.lexicons import load_lexicon
from rewardlens.progress import PhaseProgress, no_progress
from rewardlens.prompts import load_prompts
from rewardlens.responses import load_responses
from rewardlens.study.schema import ReferenceSection, Study, StudyModel, SweepSection, WordsSection


def audit_study(
    models: Sequence[str] = (DEFAULT_MODEL,),
    *,
    lexicons: Sequence[str] = (),
    families: Sequence[str] = (),
    tokens: str = "all",
    sweep_prompts: str = SWEEP_PROMPTS,
    word_prompts: str = WORD_PROMPTS,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    engine: str = "cached",
    batch_size: int | None = None,
    reference: str | None = None,
    reference_template: str | None = None,
    beside_published: bool = False,
    responses: str | os.PathLike[str] | None = None,
    human: str | None = None,
    options: ModelOptions | None = None,
    **changes: Any,
) -> Study:
    """The audit of `models` as a study: every model loaded with `options` (and keyword `changes`); with a
    `reference`, each language model's implicit reward against it, loaded with the same options; with
    `responses` (a response list) each model's run of it too, and with `human` (a numeric column of that list)
    every model against that rating."""
    if not models:
        raise UserError("give at least one --model")
    chosen = model_options(options, **changes)
    chosen_lexicons = tuple(dict.fromkeys([DEFAULT_LEXICON, *lexicons]))
    for lexicon in chosen_lexicons:
        load_lexicon(lexicon)  # a bad lexicon fails now, not after an hour of scoring
    load_prompts(sweep_prompts)
    load_prompts(word_prompts)
    listed = _response_list(responses, human)
    entries = tuple(StudyModel(spec, model_slug(spec), chosen, batch_size) for spec in models)
    if len({entry.name for entry in entries}) != len(entries):
        raise UserError("two --model values have the same base name; audit them into separate --out dirs")
    section = None
    if reference is not None:
        section = ReferenceSection(reference, **({"template": reference_template} if reference_template else {}))
    return Study(
        name="audit",
        models=entries,
        sweep=SweepSection(prompts=sweep_prompts, tokens=tokens),
        words=WordsSection(prompts=word_prompts, lexicons=chosen_lexicons, responses=listed, human=human),
        reference=section,
        # Token analyses compare models: with one model there is nothing to compare.
        analyses=("values", "tokens") if len(entries) > 1 else ("values",),
        beside_published=beside_published,
        engine=engine,
        permutations=n_permutations,
        seed=seed,
        family_options=tuple(families),
        implicit_options=chosen,
    )


def _response_list(responses: str | os.PathLike[str] | None, human: str | None) -> str | None:
    """The response list's absolute path, read now (a bad list or rating column fails before any scoring)."""
    if responses is None:
        if human is not None:
            raise UserError("--human names a column of the --responses list; give --responses FILE")
        return None
    listed = load_responses(responses)
    if human is not None:
        listed.require_numeric(human)
    return str(Path(responses).resolve())


def run_audit(
    models: Sequence[str] = (DEFAULT_MODEL,),
    out: str | os.PathLike[str] = "audit",
    *,
    ray: Any = None,
    phase: PhaseProgress = no_progress,
    **audit_options: Any,
) -> Any:
    """Sweep, score words, analyse and report, for every model (`audit_study`'s options); resumable."""
    from rewardlens.study.run import run_study

    return run_study(audit_study(models, **audit_options), out, ray=ray, phase=phase)


__all__ = ["DEFAULT_MODEL", "audit_study", "run_audit"]
