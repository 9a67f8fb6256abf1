"""`rewardlens audit`: the main job. For each model, a vocabulary sweep on the optimal/pessimal prompts
and word scores of value lexicons under the 54 value prompts; then the value analysis and one
self-contained HTML report.

Layout of OUT (every run resumes: run the same audit again after an interruption):

    OUT/models/<model>/sweep/            vocabulary sweep on optpess3 (a run)
    OUT/models/<model>/words-<lexicon>/  word scores under value54 (a run)
    OUT/values-<lexicon>/                analyze values over all models (tables, values.png/.pdf)
    OUT/report.html                      top and bottom tokens, value panels, run metadata
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlens.errors import UserError
from rewardlens.layout import ModelRuns, lexicon_slug, model_slug
from rewardlens.lexicons import load_lexicon
from rewardlens.progress import PhaseProgress, no_progress
from rewardlens.prompts import Prompt, load_prompts

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_LEXICON = "big2-nouns"
SWEEP_PROMPTS = "optpess3"
WORD_PROMPTS = "value54"

@dataclass
class AuditResult:
    out: Path
    models: list[ModelRuns]
    value_dirs: dict[str, Path]
    report: Path
    notes: list[str] = field(default_factory=list)


def run_audit(
    models: Sequence[str] = (DEFAULT_MODEL,),
    out: str | os.PathLike[str] = "audit",
    *,
    lexicons: Sequence[str] = (DEFAULT_LEXICON,),
    families: Sequence[str] = (),
    tokens: str = "all",
    sweep_prompts: str = SWEEP_PROMPTS,
    word_prompts: str = WORD_PROMPTS,
    n_permutations: int = 10_000,
    seed: int = 0,
    engine: str = "cached",
    batch_size: int | None = None,
    phase: PhaseProgress = no_progress,
    **model_options: Any,
) -> AuditResult:
    """Sweep, score words, analyse and report, for every model; resumable at every step."""
    if not models:
        raise UserError("give at least one --model")
    slugs = [model_slug(spec) for spec in models]
    if len(set(slugs)) != len(slugs):
        raise UserError("two --model values have the same base name; audit them into separate --out dirs")
    chosen_lexicons = list(dict.fromkeys([DEFAULT_LEXICON, *lexicons]))
    for spec in chosen_lexicons:
        load_lexicon(spec)  # a bad lexicon fails now, not after an hour of scoring
    root = Path(out)
    chosen_sweep_prompts = load_prompts(sweep_prompts)
    chosen_word_prompts = load_prompts(word_prompts)
    audits = [
        _audit_model(
            spec,
            root / "models" / slug,
            chosen_lexicons,
            chosen_sweep_prompts,
            chosen_word_prompts,
            tokens,
            engine,
            batch_size,
            phase,
            model_options,
        )
        for spec, slug in zip(models, slugs, strict=True)
    ]
    return _analyse_and_report(root, audits, chosen_lexicons, families, n_permutations, seed, phase)


def _audit_model(
    spec: str,
    directory: Path,
    lexicons: list[str],
    sweep_prompts: list[Prompt],
    word_prompts: list[Prompt],
    tokens: str,
    engine: str,
    batch_size: int | None,
    phase: PhaseProgress,
    model_options: dict[str, Any],
) -> ModelRuns:
    from rewardlens.runs import is_complete_run, read_manifest
    from rewardlens.sweep import execute_sweep, prepare_sweep
    from rewardlens.words import run_words, word_table

    sweep_dir = directory / "sweep"
    word_dirs = {lexicon: directory / f"words-{lexicon_slug(lexicon)}" for lexicon in lexicons}
    if all(is_complete_run(path, spec) for path in [sweep_dir, *word_dirs.values()]):
        name = str(read_manifest(sweep_dir).get("model") or spec)
        return ModelRuns(spec, name, sweep_dir, word_dirs, loaded=False)
    from rewardlens.scorers import load_scorer

    load_done = phase(f"loading {spec}", 1, 0)
    scorer = load_scorer(spec, **model_options)
    load_done(1)
    plan = prepare_sweep(
        scorer, sweep_prompts, sweep_dir, model_spec=spec, tokens=tokens, engine=engine, batch_size=batch_size
    )
    execute_sweep(plan, phase(f"{scorer.name}: vocabulary sweep", plan.rows_expected, plan.rows_done))
    for lexicon, path in word_dirs.items():
        total = len(word_table(load_lexicon(lexicon))) * len(word_prompts)
        done = _rows_done(path)
        run_words(
            scorer,
            lexicon,
            word_prompts,
            path,
            engine=engine,
            batch_size=batch_size,
            progress=phase(f"{scorer.name}: {lexicon} words", total, done),
            model_spec=spec,
        )
    return ModelRuns(spec, scorer.name, sweep_dir, word_dirs, loaded=True)


def _rows_done(run_dir: Path) -> int:
    from rewardlens.runs import count_rows, has_run

    return count_rows(run_dir) if has_run(run_dir) else 0


def _analyse_and_report(
    root: Path,
    audits: list[ModelRuns],
    lexicons: list[str],
    families: Sequence[str],
    n_permutations: int,
    seed: int,
    phase: PhaseProgress,
) -> AuditResult:
    from rewardlens.report.audit_html import write_report
    from rewardlens.values import analyze_value_files

    value_dirs: dict[str, Path] = {}
    reports = {}
    notes: list[str] = []
    tick = phase("value analysis", len(lexicons), 0)
    for lexicon in lexicons:
        target = root / f"values-{lexicon_slug(lexicon)}"
        inputs = [audit.word_dirs[lexicon] for audit in audits]
        reports[lexicon] = analyze_value_files(
            inputs, lexicon, target, families=families, n_permutations=n_permutations, seed=seed
        )
        notes.extend(f"{lexicon}: {note}" for note in reports[lexicon].notes)
        value_dirs[lexicon] = target
        tick(1)
    token_html = ""
    if len(audits) > 1:
        # Agreement, framing, frequency and identity terms across the audited models' sweeps.
        from rewardlens.analysis.tokens.api import analyze_token_runs
        from rewardlens.report.token_plots import token_sections_html

        tokens_dir = root / "tokens"
        tick = phase("token analyses", 1, 0)
        analyze_token_runs([audit.sweep_dir for audit in audits], tokens_dir, seed=seed)
        token_html = token_sections_html(tokens_dir)
        tick(1)
    report = write_report(root / "report.html", audits, reports, extra_html=token_html)
    return AuditResult(root, audits, value_dirs, report, notes)


__all__ = ["DEFAULT_MODEL", "AuditResult", "run_audit"]
