"""`rewardlens sweep`, `runs`, `top`, `export` and `bench sweep`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

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
    DateOption,
    DeviceOption,
    DtypeOption,
    EngineOption,
    IncludeEndOption,
    KindOption,
    ModelOption,
    RevisionOption,
    SequencesOption,
    TemplateOption,
    TrustRemoteCodeOption,
)
from rewardlens.cli.progress import phase_progress
from rewardlens.cli.study import DeviceMapOption, GpusPerWorkerOption, RayOption, WorkersOption, ray_options
from rewardlens.errors import UserError
from rewardlens.models.templates import DEFAULT_DATE


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
def sweep(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (created, or resumed).")],
    model: ModelOption = "smollm2-135m-instruct",
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
    shard_size: Annotated[int, typer.Option("--shard-size", help="Candidates per shard file.")] = 4096,
    batch_size: BatchSizeOption = None,
    engine: EngineOption = "cached",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a different run in DIR.")] = False,
    revision: RevisionOption = None,
    dtype: DtypeOption = "auto",
    device: DeviceOption = "auto",
    trust_remote_code: TrustRemoteCodeOption = False,
    kind: KindOption = "auto",
    template: TemplateOption = None,
    date: DateOption = DEFAULT_DATE,
    sequences: SequencesOption = "exact",
    include_end: IncludeEndOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ray: RayOption = None,
    workers: WorkersOption = None,
    gpus_per_worker: GpusPerWorkerOption = 1.0,
    device_map: DeviceMapOption = None,
) -> None:
    """Score every token of the vocabulary as the whole response to each prompt (resumable)."""
    from rewardlens.runs.store import prepare_directory
    from rewardlens.scorers import load_scorer
    from rewardlens.sweep import early_identity, execute_sweep, prepare_sweep, refuse_other_run_early

    cluster = ray_options(ray, workers, gpus_per_worker)
    chosen = _prompts(prompt, prompts)
    from rewardlens.engine import check_engine

    check_engine(engine)
    # Cheap refusals first: another run in DIR, or a DIR that cannot be written, before loading a model.
    refuse_other_run_early(out, early_identity(model, chosen, tokens, include_special), overwrite)
    prepare_directory(out)
    console = Console(stderr=True)
    load_options: dict[str, Any] = dict(
        revision=revision,
        dtype=dtype,
        device=device,
        trust_remote_code=trust_remote_code,
        kind=kind,
        template=template,
        date=date,
        sequences=sequences,
        include_end=include_end,
        device_map=device_map,
    )
    if cluster is not None:
        from rewardlens.distributed import sweep_on_ray

        display, phase = phase_progress(console, _RateColumn())
        with display:
            summary = sweep_on_ray(
                model,
                chosen,
                out,
                cluster,
                load_options,
                phase=phase,
                tokens=tokens,
                include_special=include_special,
                shard_size=shard_size,
                batch_size=batch_size,
                engine=engine,
                overwrite=overwrite,
            )
        _print_summary(summary, as_json)
        return
    with console.status(f"loading {model}"):
        scorer = load_scorer(model, **load_options)
    plan = prepare_sweep(
        scorer,
        chosen,
        out,
        model_spec=model,
        tokens=tokens,
        include_special=include_special,
        shard_size=shard_size,
        batch_size=batch_size,
        engine=engine,
        overwrite=overwrite,
    )
    display, phase = phase_progress(console, _RateColumn())
    with display:
        summary = execute_sweep(plan, progress=phase("sweep", plan.rows_expected, plan.rows_done))
    _print_summary(summary, as_json)


def summary_fields(summary: Any) -> dict[str, Any]:
    """The `--json` summary of a finished (or stopped) run."""
    return {
        "run": str(summary.directory),
        "rows": summary.rows,
        "rows_expected": summary.rows_expected,
        "rows_written": summary.rows_written,
        "seconds": round(summary.seconds, 3),
        "complete": summary.complete,
    }


def _print_summary(summary: Any, as_json: bool) -> None:
    typer.echo(json.dumps(summary_fields(summary)) if as_json else summary.line())


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
    shard_size: Annotated[int, typer.Option(help="Candidates per shard file.")] = 4096,
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
