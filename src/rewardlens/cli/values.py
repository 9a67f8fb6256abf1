"""`rewardlens lexicons`, `import-scores`, `analyze values`, `words` and `audit`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rewardlens.cli.apps import analyze_app, app
from rewardlens.cli.options import (
    BatchSizeOption,
    EngineOption,
    GpusPerWorkerOption,
    ModelOption,
    RayOption,
    WorkersOption,
    ray_options,
    with_model_options,
)
from rewardlens.cli.progress import phase_progress
from rewardlens.config import DEFAULT_LEXICON, DEFAULT_MODEL, DEFAULT_PERMUTATIONS, WORD_PROMPTS, ModelOptions

_console = Console()


@app.command()
def lexicons(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """List the bundled lexicons and prompt sets."""
    from rewardlens.lexicons import list_lexicons, load_lexicon
    from rewardlens.prompts import list_prompt_sets, load_prompts

    lexicon_rows = {name: (text, load_lexicon(name).counts()) for name, text in list_lexicons().items()}
    prompt_rows = {name: (text, len(load_prompts(name))) for name, text in list_prompt_sets().items()}
    if as_json:
        payload = {
            "lexicons": {
                name: {"description": text, "words_per_category": counts}
                for name, (text, counts) in lexicon_rows.items()
            },
            "prompt_sets": {n: {"description": t, "prompts": k} for n, (t, k) in prompt_rows.items()},
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title="Lexicons (--lexicon NAME, or a .csv/.dic/.dicx file)")
    for column in ("name", "categories (words)", "description"):
        table.add_column(column)
    for name, (text, counts) in lexicon_rows.items():
        table.add_row(name, ", ".join(f"{c} ({n})" for c, n in counts.items()), text)
    _console.print(table)
    sets = Table(title="Prompt sets (--prompts NAME, or a YAML/text file)")
    for column in ("name", "prompts", "description"):
        sets.add_column(column)
    for name, (text, count) in prompt_rows.items():
        sets.add_row(name, str(count), text)
    _console.print(sets)


@app.command("import-scores")
def import_scores(
    csv_files: Annotated[
        list[Path],
        typer.Argument(
            help="A score CSV (response,<prompt ids>... or prompt_id,response,score), or EloEverything wide files "
            "(elo_rank,elo_score,name,elo_matches,<one column per model>; one per prompt, the prompt id its stem)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write (wide: a folder of runs).")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Name of the model that gave the scores (score CSV).")
    ] = None,
    layout: Annotated[
        str, typer.Option("--layout", help="auto (from the header), scores, or wide (one column per model).")
    ] = "auto",
    prompts: Annotated[
        str | None, typer.Option("--prompts", help="Prompts file for ids outside value54 (with framings).")
    ] = None,
    reference: Annotated[str, typer.Option("--reference", help="Wide: the human rating's column.")] = "elo_score",
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="Wide: prompt text of a file whose stem is not a known prompt id.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a run already in OUT.")] = False,
) -> None:
    """Turn published scores (CSVs) into runs: one per model, and the human rating of a wide file as a `human` run."""
    from rewardlens.imports import import_score_files
    from rewardlens.prompts import load_prompts

    result = import_score_files(
        csv_files,
        out,
        model=model,
        layout=layout,
        prompts=load_prompts(prompts) if prompts else None,
        reference=reference,
        prompt_text=prompt,
        overwrite=overwrite,
    )
    rows, n_prompts, runs = result["rows"] or "?", len(result["prompts"]), result["runs"]
    if result["layout"] == "scores":
        _console.print(f"imported {rows} scores of {model} under {n_prompts} prompts -> {out}")
    else:
        _console.print(
            f"imported {rows} rows: {len(runs) - 1} models and the human rating ({reference}) under "
            f"{n_prompts} prompts -> {out}"
        )


@analyze_app.command("values")
def analyze_values(
    inputs: Annotated[list[Path], typer.Argument(help="Run directories and/or score CSVs, one model each.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the tables and figures.")],
    lexicon: Annotated[
        str, typer.Option("--lexicon", "-l", help="big2-nouns, big2-expanded, mfd2, or a lexicon file.")
    ] = DEFAULT_LEXICON,
    family: Annotated[
        list[str] | None,
        typer.Option("--family", help="KEY=FAMILY: set a model's family (repeatable).", show_default=False),
    ] = None,
    compare: Annotated[
        str, typer.Option("--compare", help="families, categories, or auto (families if several).")
    ] = "auto",
    permutations: Annotated[int, typer.Option("--permutations", help="Permutations per test.")] = DEFAULT_PERMUTATIONS,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the permutations.")] = 0,
    prompts: Annotated[
        str | None, typer.Option("--prompts", help="Prompts file giving framings of non-value54 ids.")
    ] = None,
    words: Annotated[
        str,
        typer.Option("--words", help="common: rank only the words every model scored; all: each model's own matches."),
    ] = "common",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Value bias: ranks of a lexicon's words, conclusions at their units, mixed models, tests, figure."""
    from rewardlens.errors import UserError
    from rewardlens.values import analyze_value_files

    if compare not in ("auto", "families", "categories"):
        raise UserError(f"--compare {compare!r}: use families, categories or auto")
    if words not in ("common", "all"):
        raise UserError(f"--words {words!r}: use common or all")
    with _console.status("analysing value bias ..."):
        report = analyze_value_files(
            [str(path) for path in inputs],
            lexicon,
            out,
            families=family or [],
            compare=compare,  # type: ignore[arg-type]  # checked above
            n_permutations=permutations,
            seed=seed,
            prompts=prompts,
            words=words,  # type: ignore[arg-type]  # checked above
        )
    analysis = report.analysis
    if as_json:
        typer.echo(analysis.summary.to_json(orient="records", indent=2))
    else:
        _print_summary(analysis.summary)
        _print_conclusions(analysis.conclusions)
        _print_tests(analysis.tests, analysis.compare)
    for note in report.notes:
        _console.print(f"[yellow]note:[/] {note}")
    families = ", ".join(f"{m}: {f}" for m, f in sorted(report.families.items()))
    _console.print(f"families: {families}")
    _console.print(f"wrote {', '.join(sorted(report.files))} to {report.out}")
    if analysis.family_problem:
        raise UserError(analysis.family_problem)


def _print_summary(summary: object) -> None:
    import pandas as pd

    assert isinstance(summary, pd.DataFrame)
    table = Table(title="Mean over models of the median rank (1 = best)")
    for column in ("framing", "category", "family", "mean median rank", "models"):
        table.add_column(column, justify="right" if column in ("mean median rank", "models") else "left")
    for row in summary.itertuples(index=False):
        table.add_row(row.framing, row.category, row.family, f"{row.mean_median_rank:.1f}", str(row.n_models))
    _console.print(table)


def _print_conclusions(conclusions: object) -> None:
    import pandas as pd

    assert isinstance(conclusions, pd.DataFrame)
    across = conclusions[conclusions["scope"] == "all"]
    if across.empty:
        return
    table = Table(title="Family conclusions and the unit each is tested at (tests, notes: conclusions.csv)")
    for column in ("claim", "contrast", "framing", "estimate (95% CI)", "unit", "n", "p", "p (Holm)"):
        table.add_column(column)
    for row in across.itertuples(index=False):
        table.add_row(
            f"{row.claim}: {str(row.test).split(' (')[0]}",
            str(row.contrast),
            str(row.framing),
            f"{row.estimate:.2f} ({row.ci_low:.2f}, {row.ci_high:.2f})",
            str(row.unit),
            str(row.n_units),
            f"{row.p_value:.3g}",
            f"{row.p_adjusted:.3g}",
        )
    _console.print(table)


def _print_tests(tests: object, compare: str) -> None:
    import pandas as pd

    assert isinstance(tests, pd.DataFrame)
    if tests.empty:
        return
    # Families: the valid unit (one median rank per model); the model x prompt rows are in tests.csv.
    shown = tests[tests["unit"] == "model"] if compare == "families" else tests
    table = Table(title=f"Permutation tests ({compare}; Bonferroni; all units in tests.csv)")
    where = ["framing", "category"] if compare == "families" else ["model", "framing"]
    for column in (*where, "a vs b", "mean a", "mean b", "t", "p (adj.)", ""):
        table.add_column(column)
    for row in shown.head(40).itertuples(index=False):
        table.add_row(
            *(str(getattr(row, name)) for name in where),
            f"{row.group_a} vs {row.group_b}",
            f"{row.mean_a:.1f}",
            f"{row.mean_b:.1f}",
            "nan" if not math.isfinite(row.t) else f"{row.t:.2f}",
            f"{row.p_bonferroni:.4g}",
            str(row.significance),
        )
    _console.print(table)
    if len(shown) > 40:
        _console.print(f"... {len(shown) - 40} more rows in tests.csv")


@app.command()
@with_model_options()
def words(
    model: ModelOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (created, or resumed).")],
    options: ModelOptions,
    lexicon: Annotated[
        str | None,
        typer.Option(
            "--lexicon", "-l", help=f"big2-nouns, big2-expanded, mfd2, or a lexicon file [default: {DEFAULT_LEXICON}]."
        ),
    ] = None,
    responses: Annotated[
        Path | None,
        typer.Option(
            "--responses",
            help="Score these responses instead of a lexicon: a text file (one per line) or a CSV with a `response` "
            "column (other columns kept in the rows).",
        ),
    ] = None,
    prompts: Annotated[str, typer.Option("--prompts", help="Bundled set or YAML/text file.")] = WORD_PROMPTS,
    batch_size: BatchSizeOption = None,
    engine: EngineOption = "cached",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a different run in DIR.")] = False,
    ray: RayOption = None,
    workers: WorkersOption = None,
    gpus_per_worker: GpusPerWorkerOption = 1.0,
) -> None:
    """Score every word of a lexicon (or every listed response) as the whole response to every prompt (resumable
    by prompt)."""
    from rewardlens.errors import UserError
    from rewardlens.jobs.executor import run_job
    from rewardlens.jobs.words import WordsJob
    from rewardlens.prompts import load_prompts
    from rewardlens.responses import load_responses

    if responses is not None and lexicon is not None:
        raise UserError("give --responses FILE or --lexicon, not both")
    cluster = ray_options(ray, workers, gpus_per_worker)
    chosen = load_responses(responses) if responses is not None else (lexicon or DEFAULT_LEXICON)
    job = WordsJob.of(model, chosen, load_prompts(prompts), out, batch_size=batch_size, engine=engine)
    job.refuse_other_run(overwrite)  # before a slow load
    console = Console(stderr=True)
    display, phase = phase_progress(console)
    with display:
        summary = run_job(job, options=options, ray=cluster, overwrite=overwrite, phase=phase)
    typer.echo(summary.line())


@app.command()
@with_model_options()
def audit(
    options: ModelOptions,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help=f"Model to audit (repeatable); default {DEFAULT_MODEL}."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Audit directory (resumed if present).")] = Path("audit"),
    lexicon: Annotated[
        list[str] | None,
        typer.Option("--lexicon", "-l", help=f"Lexicon besides {DEFAULT_LEXICON}: mfd2, big2-expanded or a file."),
    ] = None,
    family: Annotated[list[str] | None, typer.Option("--family", help="KEY=FAMILY for a model (repeatable).")] = None,
    tokens: Annotated[str, typer.Option("--tokens", help="Sweep candidates: all, words, or START:END.")] = "all",
    permutations: Annotated[int, typer.Option("--permutations", help="Permutations per test.")] = DEFAULT_PERMUTATIONS,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the permutations.")] = 0,
    batch_size: BatchSizeOption = None,
    engine: EngineOption = "cached",
    ray: RayOption = None,
    workers: WorkersOption = None,
    gpus_per_worker: GpusPerWorkerOption = 1.0,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="A base LM: also the implicit reward of each audited LM against it (vocabulary, words, values).",
        ),
    ] = None,
    beside_published: Annotated[
        bool,
        typer.Option(
            "--beside-published/--alone",
            help="Also analyse the models beside the ten published RMs (lexicons whose published scores are bundled).",
        ),
    ] = True,
    responses: Annotated[
        Path | None,
        typer.Option(
            "--responses", help="Also score this response list (a text file, or a CSV with a response column)."
        ),
    ] = None,
    human: Annotated[
        str | None,
        typer.Option("--human", help="A numeric column of --responses (e.g. elo_score): every model against it."),
    ] = None,
) -> None:
    """The main job: sweep, word scores, value analysis and one HTML report per audit."""
    from rewardlens.engine import check_engine
    from rewardlens.study.audit import audit_study
    from rewardlens.study.run import run_study

    cluster = ray_options(ray, workers, gpus_per_worker)
    check_engine(engine)
    plan = audit_study(
        model or [DEFAULT_MODEL],
        lexicons=lexicon or [],
        families=family or [],
        tokens=tokens,
        n_permutations=permutations,
        seed=seed,
        engine=engine,
        batch_size=batch_size,
        reference=reference,
        beside_published=beside_published,
        responses=responses,
        human=human,
        options=options,
    )
    display, phase = phase_progress(Console(stderr=True))
    with display:
        result = run_study(plan, out, ray=cluster, phase=phase)
    for note in result.notes:
        _console.print(f"[yellow]note:[/] {note}")
    for name, directory in result.value_dirs.items():
        _console.print(f"{name}: tables and figures in {directory}")
    _console.print(f"report: {result.report}")
