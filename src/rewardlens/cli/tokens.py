"""`rewardlens analyze tokens`: token-level analyses over vocabulary sweeps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from rewardlens.cli.apps import analyze_app
from rewardlens.cli.progress import transient_progress

_ALIGNMENT_HEADERS = {
    "model": "model",
    "n_tokens": "tokens",
    "n_duplicate_texts": "dup. texts",
    "n_duplicate_ids": "their ids",
    "n_unique_texts": "unique texts",
    "n_shared_texts": "shared by all",
}
_STEPS = 6  # announced by analyze_tokens: top/bottom, moments, agreement, framing, frequency, identity


@analyze_app.command("tokens")
def tokens(
    out: Annotated[Path, typer.Option("--out", help="Directory for the CSVs and figures.")],
    runs: Annotated[
        list[Path] | None,
        typer.Argument(help="Sweep run directories (one or more models).", show_default=False),
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Tokens at each end per model x prompt.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the skewness bootstrap.")] = 0,
    framing: Annotated[
        list[str] | None,
        typer.Option("--framing", help="ID=pos|neg: a prompt's framing (overrides run.json); repeatable."),
    ] = None,
    resamples: Annotated[
        int, typer.Option("--resamples", help="Bootstrap resamples of the skewness.")
    ] = 1000,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Write PNG figures.")] = True,
    all_framing_pairs: Annotated[
        bool,
        typer.Option(
            "--all-framing-pairs",
            help="Pair every positive with every negative prompt, not only those of one scope and phrasing.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary instead of tables.")] = False,
) -> None:
    """Optimal/pessimal tokens, score moments, agreement across models, framing, frequency, identity bias."""
    from rewardlens.analysis.tokens import analyze_token_runs, parse_framings  # scipy/statsmodels: not at CLI start

    overrides = parse_framings(framing or [])
    console = Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with transient_progress(console, *columns) as progress:
        task = progress.add_task("loading runs", total=_STEPS)

        def step(name: str) -> None:
            progress.update(task, description=name)
            progress.advance(task)

        report = analyze_token_runs(
            runs or [],
            out,
            k=k,
            seed=seed,
            framing_overrides=overrides,
            n_resamples=resamples,
            figures=figures,
            step=step,
            all_framing_pairs=all_framing_pairs,
        )
    if as_json:
        summary = {
            "out": str(report.out_dir),
            "files": [str(p) for p in report.files],
            "notes": report.notes,
            "alignment": [] if report.alignment is None else report.alignment.to_dict(orient="records"),
        }
        typer.echo(json.dumps(summary, indent=2))
        return
    printer = Console()
    if report.alignment is not None:
        table = Table(title="tokens aligned by decoded text (duplicated texts dropped)")
        for header in _ALIGNMENT_HEADERS.values():
            table.add_column(header, justify="left" if header == "model" else "right")
        for record in report.alignment[list(_ALIGNMENT_HEADERS)].itertuples(index=False):
            table.add_row(*(str(value) for value in record))
        printer.print(table)
    for note in report.notes:
        printer.print(f"note: {note}")
    printer.print(f"wrote {len(report.files)} files to {report.out_dir}")
