"""Running a study: every model's jobs through the one executor, then the analyses and the report.

Every job is an ordinary resumable run; a model whose runs are all complete is not loaded, so running a
study again resumes it. Layout of OUT (`rewardlens audit` is a study and writes the same):

    OUT/study.yaml                               the study as validated (what was run)
    OUT/models/<name>/sweep/                     vocabulary sweep (a run)
    OUT/models/<name>/words-<lexicon>/           word scores (a run)
    OUT/models/<name>/implicit-sweep/            with a reference: the implicit reward of the vocabulary
    OUT/models/<name>/implicit-words-<lexicon>/  ... and of the words
    OUT/implicit/<pair>/                         an implicit section's pairs (a run each)
    OUT/values-<lexicon>/, values-implicit-<lexicon>/, tokens/   the analyses (`rewardlens.study.analyses`)
    OUT/report.html                              one report over all models
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rewardlens.errors import UserError
from rewardlens.jobs.base import Job
from rewardlens.jobs.executor import run_jobs
from rewardlens.jobs.implicit import implicit_model_spec, implicit_on_ray, run_implicit
from rewardlens.jobs.ray_pool import RayOptions
from rewardlens.jobs.sweep import SweepJob
from rewardlens.jobs.words import WordsJob
from rewardlens.layout import ModelRuns, lexicon_slug
from rewardlens.lexicons import load_lexicon
from rewardlens.progress import PhaseProgress, no_progress
from rewardlens.prompts import Prompt, load_prompts
from rewardlens.responses import Responses, load_responses
from rewardlens.runs.store import is_complete_run, read_manifest, shard_files
from rewardlens.scorers.language import load_language_model, loaded_language_model
from rewardlens.study.analyses import analyse
from rewardlens.study.schema import ImplicitSection, Study, StudyModel, StudyResult


def _runs_of(study: Study, model: StudyModel, root: Path) -> ModelRuns:
    directory = root / "models" / model.name
    lexicons = study.words.lexicons if study.words else ()
    return ModelRuns(
        spec=model.spec,
        name=model.name,
        sweep_dir=directory / "sweep",
        word_dirs={lexicon: directory / f"words-{lexicon_slug(lexicon)}" for lexicon in lexicons},
    )


def _reference_dirs(study: Study, runs: ModelRuns) -> dict[str, Path]:
    """A model's implicit runs against the study's reference: "sweep" and one per lexicon."""
    directory = runs.sweep_dir.parent
    dirs = {"sweep": directory / "implicit-sweep"} if study.sweep else {}
    lexicons = study.words.lexicons if study.words else ()
    dirs.update({lexicon: directory / f"implicit-words-{lexicon_slug(lexicon)}" for lexicon in lexicons})
    return dirs


def _write_study_file(study: Study, root: Path) -> None:
    """Keep what was run beside the results (each run directory guards its own identity)."""
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} exists and is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)  # OUT holds runs; it is not one (no shards/ of its own)
    except OSError as err:
        raise UserError(f"cannot create {root}: {err.strerror or err}") from err
    target = root / "study.yaml"
    temporary = target.with_name(".study.yaml.tmp")
    temporary.write_text(study.to_yaml(), encoding="utf-8")
    temporary.replace(target)


def refuse_finished_run_of_another_date(run: Path, model_spec: str, date: str, sequences: str | None = None) -> None:
    """A finished job is skipped without loading its model; one scored with another date (or other sequences)
    is refused instead of being taken for this one (an unfinished one is refused by its run store when resumed)."""
    if not is_complete_run(run, model_spec):
        return
    manifest = read_manifest(run)
    wanted = {"date": date} if sequences is None else {"sequences": sequences, "date": date}
    for key, value in wanted.items():
        if manifest.get(key) != value:
            raise UserError(
                f"{run} was scored with {key} {manifest.get(key)!r}, not {value!r}; give another --out "
                "(or remove that run)"
            )


def _refuse_finished_runs_of_other_dates(study: Study, root: Path) -> None:
    """Checked before anything is written."""
    for model in study.models:
        runs = _runs_of(study, model, root)
        for path in ([runs.sweep_dir] if study.sweep else []) + list(runs.word_dirs.values()):
            refuse_finished_run_of_another_date(path, model.spec, model.options.date, model.options.sequences)
        if study.reference:
            spec = implicit_model_spec(model.spec, study.reference.model)
            for path in _reference_dirs(study, runs).values():
                refuse_finished_run_of_another_date(path, spec, model.options.date)
    if study.implicit:
        for pair in study.implicit.pairs:
            path = root / "implicit" / pair.name
            refuse_finished_run_of_another_date(
                path, implicit_model_spec(pair.policy, pair.reference), study.implicit_options.date
            )


def responses_dir(study: Study, runs: ModelRuns) -> Path | None:
    """Where a model's run of the study's response list goes (None without one): beside its other runs."""
    if study.words is None or study.words.responses is None:
        return None
    return runs.sweep_dir.parent / f"responses-{lexicon_slug(study.words.responses)}"


def _model_jobs(
    study: Study, model: StudyModel, runs: ModelRuns, prompts: dict[str, list[Prompt]], responses: Responses | None
) -> list[Job]:
    jobs: list[Job] = []
    if study.sweep:
        jobs.append(
            SweepJob(
                model.spec,
                tuple(prompts["sweep"]),
                runs.sweep_dir,
                study.sweep.tokens,
                study.sweep.include_special,
                study.sweep.shard_size,
                model.batch_size,
                study.engine,
            )
        )
    for lexicon, path in runs.word_dirs.items():
        words = WordsJob.of(model.spec, lexicon, prompts["words"], path, batch_size=model.batch_size)
        jobs.append(replace(words, engine=study.engine))
    listed_dir = responses_dir(study, runs)
    if responses is not None and listed_dir is not None:
        listed = WordsJob.of(model.spec, responses, prompts["words"], listed_dir, batch_size=model.batch_size)
        jobs.append(replace(listed, engine=study.engine))
    return jobs


def run_study(
    study: Study,
    out: str | os.PathLike[str],
    *,
    ray: RayOptions | None = None,
    phase: PhaseProgress = no_progress,
) -> StudyResult:
    """Run every job of every model (on Ray when `ray` is given), then the analyses and the report."""

    root = Path(out)
    _refuse_finished_runs_of_other_dates(study, root)
    _write_study_file(study, root)
    prompts = {
        "sweep": load_prompts(study.sweep.prompts) if study.sweep else [],
        "words": load_prompts(study.words.prompts) if study.words else [],
    }
    responses = load_responses(study.words.responses) if study.words and study.words.responses else None
    result = StudyResult(out=root, models=[])
    for model in study.models:
        runs = _runs_of(study, model, root)
        result.models.append(runs)
        listed_dir = responses_dir(study, runs)
        if listed_dir is not None:
            result.response_dirs[model.name] = listed_dir
        jobs = _model_jobs(study, model, runs, prompts, responses)
        todo = [job for job in jobs if not is_complete_run(job.out_dir, model.spec)]
        result.skipped_jobs += len(jobs) - len(todo)
        if not todo:
            continue
        placement = replace(ray, gpus_per_worker=model.gpus_per_worker) if ray is not None else None
        run_jobs(todo, options=model.options, ray=placement, phase=phase)
        runs.loaded = True
    if study.reference:
        _run_reference(study, root, result, prompts, phase)
    if study.implicit:
        _run_implicit(study, study.implicit, root, ray, result, phase)
    analyse(study, result, phase)
    return result


def _run_reference(
    study: Study, root: Path, result: StudyResult, prompts: dict[str, list[Prompt]], phase: PhaseProgress
) -> None:
    """The implicit reward of each audited language model against the reference (here, not on Ray: a run
    needs both models side by side); a reward model has none and is skipped with a note."""

    reference = study.reference
    assert reference is not None
    reference_scorer = None
    for model, runs in zip(study.models, result.models, strict=True):
        targets = _reference_dirs(study, runs)
        spec = implicit_model_spec(model.spec, reference.model)
        if all(is_complete_run(path, spec) for path in targets.values()):
            result.reference_runs[model.spec] = targets
            result.skipped_jobs += len(targets)
            continue
        options = model.options.with_changes(template=model.options.template or reference.policy_template)
        policy_scorer = loaded_language_model(model.spec, "policy", options)
        if policy_scorer is None:
            result.notes.append(f"{model.spec} is a reward model: it has no implicit reward (that needs an LM)")
            continue
        if reference_scorer is None:
            reference_options = model.options.with_changes(template=reference.template)
            reference_scorer = load_language_model(reference.model, "reference", reference_options)
        for what, path in targets.items():
            vocab = what == "sweep"
            chosen = prompts["sweep"] if vocab else prompts["words"]
            done = len(shard_files(path))
            label = "vocabulary" if vocab else f"{what} words"
            count = phase(f"{policy_scorer.name}: implicit {label}", len(chosen), done)
            run_implicit(
                policy_scorer,
                reference_scorer,
                chosen,
                path,
                vocab=vocab,
                lexicon=None if vocab else load_lexicon(what),
                engine=study.engine,
                batch_size=model.batch_size,
                progress=_per_prompt(count),
            )
        result.reference_runs[model.spec] = targets


def _per_prompt(count: Callable[[int], None]) -> Callable[[int], None]:
    """An implicit run reports each prompt's rows; the study's bar counts prompts."""
    return lambda rows: count(1)


def _run_implicit(
    study: Study,
    section: ImplicitSection,
    root: Path,
    ray: RayOptions | None,
    result: StudyResult,
    phase: PhaseProgress,
) -> None:
    prompts = load_prompts(section.prompts)
    for pair in section.pairs:
        target = root / "implicit" / pair.name
        result.implicit_dirs[pair.name] = target
        if is_complete_run(target, implicit_model_spec(pair.policy, pair.reference)):
            result.skipped_jobs += 1
            continue
        options: dict[str, Any] = {
            "vocab": section.responses == "vocab",
            "lexicon": None if section.responses == "vocab" else section.responses,
            "measure": section.measure,
            "beta": section.beta,
            "policy_template": pair.policy_template,
            "reference_template": pair.reference_template,
            "engine": study.engine,
            "options": study.implicit_options,
            "progress": phase(f"implicit {pair.name}", 0, 0),
        }
        if ray is not None:
            implicit_on_ray(pair.policy, pair.reference, prompts, target, ray, **options)
        else:
            run_implicit(pair.policy, pair.reference, prompts, target, **options)


__all__ = ["StudyResult", "refuse_finished_run_of_another_date", "run_study"]
