"""`rewardlens bench analyses`: peak memory and time of the token and value analyses on a synthetic study."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rewardlens.cli.apps import bench_app
from rewardlens.cli.progress import phase_progress


@bench_app.command("analyses")
def bench_analyses(
    models: Annotated[int, typer.Option(help="Models (one sweep run each).")] = 10,
    prompts: Annotated[int, typer.Option(help="Prompts per model (value54 first).")] = 54,
    tokens: Annotated[int, typer.Option(help="Vocabulary size: tokens scored per prompt.")] = 262_144,
    cache: Annotated[
        Path | None, typer.Option(help="Where the synthetic runs are kept (default ~/.cache/rewardlens-bench).")
    ] = None,
    lexicon: Annotated[str, typer.Option(help="Lexicon of `analyze values`.")] = "big2-nouns",
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples of `analyze tokens`.")] = 1000,
    permutations: Annotated[int, typer.Option(help="Permutations of `analyze values`.")] = 1000,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Draw the figures too.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line instead of a table.")] = False,
) -> None:
    """Write a synthetic study (cached), run `analyze tokens` and `analyze values` on it, each in a fresh
    process, and report the peak resident memory and the time of each."""
    from rewardlens.bench.analyses import AnalysesBench, benchmark_analyses

    options = AnalysesBench(models, prompts, tokens, cache, lexicon, resamples, permutations, figures)
    progress, phase = phase_progress(Console(stderr=True))
    with progress:
        result = benchmark_analyses(options, phase)
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(title=f"{result['models']} models x {result['prompts']} prompts x {result['tokens']:,} tokens")
    for header in ("analysis", "seconds", "peak RSS (GB)"):
        table.add_column(header, justify="left" if header == "analysis" else "right")
    for name, measured in result["analyses"].items():
        table.add_row(name, f"{measured['seconds']:.1f}", f"{measured['peak_rss_gb']:.2f}")
    printer = Console()
    printer.print(table)
    printer.print(f"{result['rows']:,} rows; runs cached in {result['cache']}")
