"""The analyses of a study (and so of an audit) and its one report, in one place.

Per lexicon the value analysis over every model's word runs; with a reference, the same over the implicit
word runs (an implicit run's family is its policy's); with `beside_published`, the local runs beside the
ten published RMs whose scores of that lexicon are bundled; the token analyses over the sweeps; with a response
list's human column (`words.human`), every model's run of the list (scored by `rewardlens.study.run`) against that
rating (`rewardlens.analysis.human`, in OUT/human-<list>/); then the report, written once, with every section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardlens.analysis.family import infer_family, parse_family_options
from rewardlens.analysis.human import analyze_human_files
from rewardlens.analysis.tokens.api import analyze_token_runs
from rewardlens.layout import lexicon_slug
from rewardlens.progress import PhaseProgress
from rewardlens.published import beside_published, published_bundle
from rewardlens.report.audit_html import human_section_html, value_dir_html, write_report
from rewardlens.runs.store import read_manifest
from rewardlens.study.schema import Study, StudyResult
from rewardlens.values import ValueReport, analyze_value_files


def _families(study: Study, result: StudyResult, lexicon: str) -> list[str]:
    """`KEY=FAMILY` options for the models whose study entry names a family (KEY: the run's model name)."""
    options = list(study.family_options)
    for model, runs in zip(study.models, result.models, strict=True):
        if model.family:
            name = read_manifest(runs.word_dirs[lexicon]).get("model") or model.name
            options.append(f"{name}={model.family}")
    return options


def _implicit_family(spec: str, run: Path, families: tuple[str, ...]) -> str:
    """`implicit_name=FAMILY`: the policy's family (from --family for the audited model, else its name)."""
    manifest = read_manifest(run)
    policy_name, implicit_name = manifest["policy"]["model"], manifest["model"]
    overrides = parse_family_options(families)
    keys = [key for key in (spec, policy_name, Path(spec).name) if key in overrides]
    return f"{implicit_name}={overrides[keys[0]] if keys else infer_family(policy_name)}"


def _values(study: Study, result: StudyResult, phase: PhaseProgress) -> dict[str, ValueReport]:
    reports: dict[str, ValueReport] = {}
    if "values" not in study.analyses or not study.words:
        return reports
    tick = phase("value analysis", len(study.words.lexicons), 0)
    for lexicon in study.words.lexicons:
        target = result.out / f"values-{lexicon_slug(lexicon)}"
        reports[lexicon] = analyze_value_files(
            [runs.word_dirs[lexicon] for runs in result.models],
            lexicon,
            target,
            families=_families(study, result, lexicon),
            n_permutations=study.permutations,
            seed=study.seed,
        )
        result.notes.extend(f"{lexicon}: {note}" for note in reports[lexicon].notes)
        result.value_dirs[lexicon] = target
        tick(1)
    return reports


def _implicit_values(study: Study, result: StudyResult) -> dict[str, Path]:
    """The value analysis of the implicit word runs against the reference, per lexicon."""
    dirs: dict[str, Path] = {}
    if not result.reference_runs or not study.words:
        return dirs
    for lexicon in study.words.lexicons:
        inputs = {spec: runs[lexicon] for spec, runs in result.reference_runs.items() if lexicon in runs}
        if not inputs:
            continue
        target = result.out / f"values-implicit-{lexicon_slug(lexicon)}"
        families = [_implicit_family(spec, run, study.family_options) for spec, run in inputs.items()]
        report = analyze_value_files(
            list(inputs.values()),
            lexicon,
            target,
            families=families,
            n_permutations=study.permutations,
            seed=study.seed,
        )
        result.notes.extend(f"implicit {lexicon}: {note}" for note in report.notes)
        result.value_dirs[f"implicit {lexicon}"] = target
        dirs[lexicon] = target
    return dirs


def _beside_published(study: Study, result: StudyResult, phase: PhaseProgress) -> dict[str, Any]:
    """Each lexicon with bundled published scores: the local runs analysed beside the ten RMs."""

    besides: dict[str, Any] = {}
    if not study.beside_published or not study.words:
        return besides
    lexicons = [lexicon for lexicon in study.words.lexicons if published_bundle(lexicon)]
    tick = phase("beside the published RMs", len(lexicons), 0)
    for lexicon in lexicons:
        target = result.out / f"published-{lexicon_slug(lexicon)}"
        beside = beside_published(
            [runs.word_dirs[lexicon] for runs in result.models],
            lexicon,
            target,
            families=_families(study, result, lexicon),
            n_permutations=study.permutations,
            seed=study.seed,
        )
        result.notes.extend(f"{lexicon} beside the published RMs: {note}" for note in beside.notes)
        result.value_dirs[f"{lexicon} beside the published RMs"] = target
        besides[lexicon] = beside
        tick(1)
    return besides


def _human(study: Study, result: StudyResult, phase: PhaseProgress) -> str:
    """Every model's response-list run against the list's human column; the report section ("" without one)."""
    words = study.words
    if words is None or words.human is None or not result.response_dirs:
        return ""
    tick = phase("vs human preferences", 1, 0)
    families = {}
    for model in study.models:
        if model.family:
            run = result.response_dirs[model.name]
            families[str(read_manifest(run).get("model") or model.name)] = model.family
    target = result.out / f"human-{lexicon_slug(words.responses or 'responses')}"
    analyze_human_files(
        [str(path) for path in result.response_dirs.values()],
        str(target),
        reference=words.human,
        seed=study.seed,
        families=families,
    )
    result.human_dir = target
    tick(1)
    return human_section_html(target, words.human)


def analyse(study: Study, result: StudyResult, phase: PhaseProgress) -> None:
    """Every analysis the study asks for, then its report (written once, with every section)."""

    human_html = _human(study, result, phase)
    reports = _values(study, result, phase)
    implicit_dirs = _implicit_values(study, result)
    besides = _beside_published(study, result, phase)
    sections = []
    if "tokens" in study.analyses and study.sweep:
        from rewardlens.report.token_plots import token_sections_html

        tick = phase("token analyses", 1, 0)
        result.tokens_dir = result.out / "tokens"
        analyze_token_runs([runs.sweep_dir for runs in result.models], result.tokens_dir, seed=study.seed)
        sections.append(token_sections_html(result.tokens_dir))
        tick(1)
    sections += [value_dir_html(f"Implicit reward value bias: {lx}", d) for lx, d in implicit_dirs.items()]
    sections.append(human_html)
    # The report shows each model's optimal and pessimal tokens (needs sweeps) and the value panels.
    audits = result.models if study.sweep else []
    result.report = write_report(
        result.out / "report.html", audits, reports, extra_html="".join(sections), published=besides
    )


__all__ = ["analyse"]
