"""`rewardlens study` and `bench ray`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rewardlens.cli.apps import app, bench_app
from rewardlens.cli.options import LOCAL_RAY, RayOption, WorkersOption, ray_options
from rewardlens.cli.progress import phase_progress
from rewardlens.errors import UserError


@app.command()
def study(
    study_file: Annotated[
        str | None, typer.Argument(metavar="STUDY", help="Study YAML file, or a shipped recipe name (--list).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Study directory (resumed if present).")] = None,
    ray: RayOption = None,
    workers: WorkersOption = None,
    list_recipes: Annotated[bool, typer.Option("--list", help="Show the shipped recipes and exit.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Validate the study file and exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run a study: every model's sweep and word jobs (on Ray or here), then the analyses and one report."""
    from rewardlens import study as studies
    from rewardlens.study.parse import TRAINING_RECIPES_KIND, read_study_document, study_kind

    if list_recipes:
        _print_recipes(studies.list_recipes(), as_json)
        return
    if study_file is None:
        raise UserError("give a study file or a recipe name (rewardlens study --list shows the recipes)")
    document, source, base = read_study_document(study_file)
    if study_kind(document) == TRAINING_RECIPES_KIND:
        if ray is not None or workers is not None:
            raise UserError(f"{source}: a training-recipes study runs in this process (no --ray, --workers)")
        _training_recipes(document, source, out, check, as_json)
        return
    options = ray_options(ray, workers)
    chosen = studies.parse_study(document, source, base)  # the whole file is checked before any job starts
    if check:
        typer.echo(f"{chosen.name}: {len(chosen.models)} model(s), valid")
        return
    if out is None:
        raise UserError("give --out DIR for the study's runs, analyses and report")
    console = Console(stderr=True)
    display, phase = phase_progress(console)
    with display:
        result = studies.run_study(chosen, out, ray=options, phase=phase)
    summary = {
        "study": chosen.name,
        "out": str(result.out),
        "models": [{"name": runs.name, "loaded": runs.loaded} for runs in result.models],
        "jobs_skipped": result.skipped_jobs,
        "values": {lexicon: str(path) for lexicon, path in result.value_dirs.items()},
        "tokens": str(result.tokens_dir) if result.tokens_dir else None,
        "report": str(result.report) if result.report else None,
        "notes": result.notes,
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    loaded = sum(runs.loaded for runs in result.models)
    typer.echo(
        f"{chosen.name}: {len(result.models)} model(s), {loaded} loaded, "
        f"{result.skipped_jobs} complete job(s) skipped; report: {result.report}"
    )
    for note in result.notes:
        typer.echo(f"note: {note}")


def _training_recipes(document: object, source: str, out: Path | None, check: bool, as_json: bool) -> None:
    """Small networks trained by different recipes, compared layer by layer (`similarity.recipes`)."""
    from rewardlens.report.similarity_plots import save_recipe_figures
    from rewardlens.similarity import get_measure
    from rewardlens.similarity.recipes import mean_matrices, parse_recipes, run_recipes

    config = parse_recipes(document, source)
    if check:
        typer.echo(
            f"{config.name}: {len(config.recipes)} recipe(s) x {config.seeds} seed(s), "
            f"{len(config.measures)} measure(s), valid"
        )
        return
    if out is None:
        raise UserError("give --out DIR for the study's networks, tables and figures")
    console = Console(stderr=True)
    display, phase = phase_progress(console)
    with display:
        result = run_recipes(config, out, phase=phase)
    matrices = {measure: mean_matrices(result.similarity, config, measure) for measure in config.measures}
    directions = {name: get_measure(name).larger_is_more_similar for name in config.measures}
    figures = save_recipe_figures(
        matrices, list(config.recipes), directions, result.penultimate, result.anchors, result.stimuli, result.out
    )
    accuracy = result.accuracy.groupby("recipe", sort=False).test_accuracy.agg(["mean", "std"])
    summary = {
        "study": config.name,
        "out": str(result.out),
        "networks_trained": result.trained,
        "blocks_computed": result.blocks_computed,
        "test_accuracy": {str(recipe): round(float(row["mean"]), 4) for recipe, row in accuracy.iterrows()},
        "tables": [str(path) for path in result.paths],
        "figures": [str(path) for path in figures],
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table("recipe", "test accuracy (mean)", "sd", "seeds", title=config.name)
    for recipe, row in accuracy.iterrows():
        table.add_row(str(recipe), f"{row['mean']:.3f}", f"{row['std']:.3f}", str(config.seeds))
    Console().print(table)
    typer.echo(
        f"{config.name}: {result.trained} network(s) trained, {result.blocks_computed} similarity block(s) "
        f"computed; wrote {len(result.paths)} tables and {len(figures)} figures in {result.out}"
    )


def _print_recipes(recipes: dict[str, str], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(recipes))
        return
    table = Table("recipe", "description", title="shipped study recipes (rewardlens study NAME --out DIR)")
    for name, description in recipes.items():
        table.add_row(name, description)
    Console().print(table)


@bench_app.command("ray")
def bench_ray(
    model: Annotated[str, typer.Option("--model", "-m", help="Model (a causal LM gets a random score head).")] = (
        "smollm2-135m-instruct"
    ),
    candidates: Annotated[int, typer.Option("--candidates", "-n", help="Candidate token ids 0..N-1.")] = 1024,
    shard_size: Annotated[int, typer.Option("--shard-size", help="Candidates per shard (the queue's unit).")] = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sequences per batch.")] = 64,
    workers: Annotated[list[int] | None, typer.Option("--workers", help="Pool sizes to time (repeatable).")] = None,
    ray: RayOption = None,
    dtype: Annotated[str, typer.Option(help="auto|float32|bfloat16|float16.")] = "auto",
    device: Annotated[str, typer.Option(help="auto|cpu|cuda[:N].")] = "auto",
) -> None:
    """Sweep throughput in this process and on Ray pools of 1..N workers (model loading excluded); JSON."""
    from rewardlens.bench.ray import benchmark_ray

    result = benchmark_ray(
        model,
        candidates=candidates,
        shard_size=shard_size,
        batch_size=batch_size,
        workers=workers or [1, 2],
        address=None if ray in (None, LOCAL_RAY) else ray,
        dtype=dtype,
        device=device,
    )
    typer.echo(json.dumps(result))
