"""`rewardlens analyze tokens`: token-level analyses over vocabulary sweeps."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from rewardlens.cli.apps import analyze_app
from rewardlens.cli.progress import transient_progress

if TYPE_CHECKING:
    import pandas as pd

_ALIGNMENT_HEADERS = {
    "model": "model",
    "n_tokens": "tokens",
    "n_duplicate_texts": "dup. texts",
    "n_duplicate_ids": "their ids",
    "n_unique_texts": "unique texts",
    "n_shared_texts": "shared by all",
}
_SHOWN_TESTS = 10  # per table, smallest adjusted p first; every test is in the CSVs
# (table, title, columns: header) of the tests printed with their Benjamini-Hochberg p_adjusted.
_TEST_TABLES = (
    (
        "identity_groups",
        "identity groups vs all other tokens (Mann-Whitney; BH over all {n} tests; unit: token)",
        {"model": "model", "prompt_id": "prompt", "group": "group", "n_tokens": "tokens",
         "median_percentile": "median pct.", "p_value": "p", "p_adjusted": "p (BH)"},
    ),
    (
        "frequency",
        "frequency slopes, score ~ zipf + sentiment (OLS over words; BH over all {n} zipf slopes)",
        {"model": "model", "prompt_id": "prompt", "polarity": "polarity", "coef": "zipf slope",
         "n": "words", "p_value": "p", "p_adjusted": "p (BH)"},
    ),
)
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
        typer.Option("--framing", help="ID=pos|neg: a prompt's framing (overrides _run.json); repeatable."),
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
    _print_tests(printer, report.tables)
    for note in report.notes:
        printer.print(f"note: {note}")
    printer.print(f"wrote {len(report.files)} files to {report.out_dir}")


def _print_tests(printer: Console, tables: Mapping[str, pd.DataFrame]) -> None:
    """The identity-group and frequency tests with the smallest adjusted p, beside their raw p."""
    for name, title, columns in _TEST_TABLES:
        rows = tables.get(name)
        if rows is None or rows.empty:
            continue
        if name == "frequency":
            rows = rows[rows["term"] == "zipf"]
        shown = rows.sort_values(["p_adjusted", "p_value"], na_position="last").head(_SHOWN_TESTS)
        table = Table(title=title.format(n=len(rows)))
        for column, header in columns.items():
            table.add_column(header, justify="right" if rows[column].dtype.kind in "iuf" else "left")
        for record in shown[list(columns)].itertuples(index=False):
            table.add_row(*(_format(value) for value in record))
        printer.print(table)
        if len(rows) > _SHOWN_TESTS:
            printer.print(f"{_SHOWN_TESTS} of {len(rows)} tests, smallest p (BH) first; all in {name}.csv")


def _format(value: object) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.3g}"
    return str(value)
