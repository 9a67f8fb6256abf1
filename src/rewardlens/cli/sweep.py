"""`rewardlens sweep`, `runs`, `top`, `export` and `bench sweep`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    ProgressColumn,
    Task,
)
from rich.table import Table
from rich.text import Text

from rewardlens.cli.apps import app, bench_app
from rewardlens.cli.options import (
    BatchSizeOption,
    DeviceOption,
    DtypeOption,
    EngineOption,
    GpusPerWorkerOption,
    ModelOption,
    RayOption,
    TrustRemoteCodeOption,
    WorkersOption,
    ray_options,
    with_model_options,
)
from rewardlens.cli.progress import phase_progress
from rewardlens.config import DEFAULT_MODEL, DEFAULT_SHARD_SIZE, ModelOptions
from rewardlens.errors import UserError

if TYPE_CHECKING:
    from rewardlens.jobs.base import JobSummary


class _RateColumn(ProgressColumn):
    """Candidates per second, from rich's recent samples (a resumed run's old rows do not count)."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("-- cand/s" if speed is None else f"{speed:,.0f} cand/s", style="progress.data.speed")


def _prompts(prompt: list[str] | None, prompts: str | None) -> list[Any]:
    from rewardlens.prompts import load_prompts, prompts_from_texts

    if prompt and prompts:
        raise UserError("pass either --prompt (repeatable) or --prompts SET_OR_FILE, not both")
    if prompts:
        return load_prompts(prompts)
    if prompt:
        return prompts_from_texts(prompt)
    raise UserError("no prompts: pass --prompt TEXT or --prompts SET_OR_FILE")


@app.command()
@with_model_options()
def sweep(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (created, or resumed).")],
    options: ModelOptions,
    model: ModelOption = DEFAULT_MODEL,
    prompt: Annotated[
        list[str] | None, typer.Option("--prompt", "-p", help="A prompt (repeatable).", show_default=False)
    ] = None,
    prompts: Annotated[
        str | None, typer.Option("--prompts", help="Bundled set (value54, optpess3) or YAML/text file.")
    ] = None,
    tokens: Annotated[str, typer.Option("--tokens", help="all, words, or an id range START:END.")] = "all",
    include_special: Annotated[
        bool, typer.Option("--include-special", help="Also score control, added and reserved tokens.")
    ] = False,
    shard_size: Annotated[int, typer.Option("--shard-size", help="Candidates per shard file.")] = DEFAULT_SHARD_SIZE,
    batch_size: BatchSizeOption = None,
    engine: EngineOption = "cached",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a different run in DIR.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ray: RayOption = None,
    workers: WorkersOption = None,
    gpus_per_worker: GpusPerWorkerOption = 1.0,
) -> None:
    """Score every token of the vocabulary as the whole response to each prompt (resumable)."""
    from rewardlens.jobs.executor import run_job
    from rewardlens.jobs.sweep import SweepJob
    from rewardlens.runs.store import prepare_directory

    cluster = ray_options(ray, workers, gpus_per_worker)
    chosen = tuple(_prompts(prompt, prompts))
    job = SweepJob(model, chosen, out, tokens, include_special, shard_size, batch_size, engine)
    # Cheap refusals first: another run in DIR, or a DIR that cannot be written, before loading a model.
    job.refuse_other_run(overwrite)
    prepare_directory(out)
    console = Console(stderr=True)
    display, phase = phase_progress(console, _RateColumn())
    with display:
        summary = run_job(job, options=options, ray=cluster, overwrite=overwrite, phase=phase)
    print_summary(summary, as_json)


def print_summary(summary: JobSummary, as_json: bool) -> None:
    typer.echo(json.dumps(summary.to_dict()) if as_json else summary.line())


@app.command("runs")
def runs(
    directories: Annotated[list[Path], typer.Argument(help="Run directories.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per run.")] = False,
) -> None:
    """List runs: model, kind, prompts, rows done / expected, complete or not."""
    from rewardlens.runs import run_status

    statuses = [run_status(directory) for directory in directories]
    if as_json:
        typer.echo(json.dumps(statuses, indent=2, default=str))
        return
    table = Table("run", "kind of run", "model", "kind", "prompts", "rows", "complete")
    for status in statuses:
        expected = status["rows_expected"]
        rows = f"{status['rows']:,} / {expected:,}" if expected is not None else f"{status['rows']:,}"
        table.add_row(
            status["run"],
            str(status["kind_of_run"]),
            str(status["model"]),
            str(status["kind"] or ""),
            str(status["prompts"]),
            rows,
            "yes" if status["complete"] else "no",
        )
    Console().print(table)


@app.command("top")
def top(
    directory: Annotated[Path, typer.Argument(help="Run directory.", show_default=False)],
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="Prompt id (default: mean over the run's prompts).")
    ] = None,
    k: Annotated[int, typer.Option("--k", help="How many tokens.")] = 20,
    bottom: Annotated[bool, typer.Option("--bottom", help="The pessimal tokens instead.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON records instead of a table.")] = False,
) -> None:
    """The optimal (or pessimal) tokens of a run, with scores and ranks (1 = highest score)."""
    from rewardlens.runs import top_responses

    frame = top_responses(directory, prompt_id=prompt, k=k, bottom=bottom)
    if as_json:
        typer.echo(frame.to_json(orient="records"))
        return
    title = f"{'pessimal' if bottom else 'optimal'} tokens" + (f" for {prompt}" if prompt else "")
    table = Table(*[str(c) for c in frame.columns], title=title)
    for record in frame.itertuples(index=False):
        table.add_row(*[_cell(value) for value in record])
    Console().print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e9:
        return str(int(value))  # ranks
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"  # scores; mean ranks
    return repr(value) if isinstance(value, str) else str(value)


@app.command("export")
def export(
    directory: Annotated[Path, typer.Argument(help="Run directory.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    format: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
) -> None:
    """Write the flat table of a run to one CSV or Parquet file."""
    from rewardlens.runs import export_run

    rows = export_run(directory, output, format)
    typer.echo(f"{rows:,} rows -> {output}")


@bench_app.command("sweep")
def bench_sweep(
    model: ModelOption = "smollm2-135m-instruct",
    candidates: Annotated[int, typer.Option("--candidates", "-n", help="Candidate tokens to score.")] = 2048,
    batch_size: Annotated[int, typer.Option(help="Sequences per batch.")] = 256,
    shard_size: Annotated[int, typer.Option(help="Candidates per shard file.")] = DEFAULT_SHARD_SIZE,
    dtype: DtypeOption = "auto",
    device: DeviceOption = "auto",
    trust_remote_code: TrustRemoteCodeOption = False,
    seed: Annotated[int, typer.Option(help="Seed of the random score head put on a causal LM.")] = 0,
    repeats: Annotated[int, typer.Option(help="Best of this many alternating timings.")] = 1,
) -> None:
    """Time a sweep against the cached engine alone on the same candidates; print one JSON line."""
    from rewardlens.bench.sweep import benchmark_sweep

    result = benchmark_sweep(
        model,
        candidates=candidates,
        batch_size=batch_size,
        shard_size=shard_size,
        dtype=dtype,
        device=device,
        trust_remote_code=trust_remote_code,
        seed=seed,
        repeats=repeats,
    )
    typer.echo(json.dumps(result))
