"""`rewardlens analyze human`: reward models against a human rating of the same responses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rewardlens.cli.apps import analyze_app

_console = Console()


@analyze_app.command("human")
def human(
    inputs: Annotated[list[Path], typer.Argument(help="Runs and/or wide files, one per prompt.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the tables and figures.")],
    reference: Annotated[str, typer.Option("--reference", help="The human rating's column.")] = "elo_score",
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="Prompt text of a wide file whose stem is not a known prompt id.")
    ] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples over responses.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
) -> None:
    """Kendall tau of each RM with human preferences (bootstrap CI), RM agreement, rank differences, families."""
    from rewardlens.analysis.human import analyze_human_files
    from rewardlens.errors import UserError

    if bootstrap < 1:
        raise UserError(f"--bootstrap {bootstrap}: give at least 1 resample")
    with _console.status("comparing reward models with human preferences ..."):
        result = analyze_human_files(
            [str(p) for p in inputs], str(out), reference=reference, prompt_text=prompt, n_bootstrap=bootstrap,
            seed=seed,
        )
    table = Table(title="Kendall tau-b with the human rating (95% bootstrap CI over responses)")
    for column in ("prompt", "model", "n", "tau (95% CI)", "spearman"):
        table.add_column(column)
    for row in result["human"].itertuples(index=False):  # type: ignore[attr-defined]
        table.add_row(row.prompt_id, row.model, str(row.n), f"{row.kendall_tau:.3f} ({row.ci_low:.3f}, "
                      f"{row.ci_high:.3f})", f"{row.spearman:.3f}")
    _console.print(table)
    across = result["conclusions"]
    across = across[across["unit"] == "models"]  # type: ignore[index]
    for row in across.itertuples(index=False):
        _console.print(
            f"{row.contrast} ({row.framing}): {row.estimate:.3f} ({row.ci_low:.3f}, {row.ci_high:.3f}), "
            f"p {row.p_value:.3g}, unit {row.unit} (n {row.n_units}); {row.note}"
        )
    _console.print(f"wrote {', '.join(result['files'])} to {result['out']}")  # type: ignore[arg-type]
