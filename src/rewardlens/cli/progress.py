"""The rich progress displays the commands draw: phase bars for the jobs, transient bars for single loops."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rewardlens.progress import PhaseProgress


def bar_columns(*extra: ProgressColumn) -> tuple[ProgressColumn, ...]:
    """Description, bar, done/total, `extra`, elapsed time and ETA."""
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )


def transient_progress(console: Console, *columns: ProgressColumn) -> Progress:
    """A display that disappears when done; off when the console is not a terminal (it would leave an empty
    line in a log)."""
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


def phase_progress(console: Console, *extra: ProgressColumn) -> tuple[Progress, PhaseProgress]:
    """A rich display for the jobs (sweep, words, audit, study) and the `phase(description, total, done)` hook
    they report through: one bar a phase, `extra` columns after done/total. Off when the console is not a
    terminal: a log gets the summary lines, not the last frame of the bars."""
    progress = Progress(*bar_columns(*extra), console=console, disable=not console.is_terminal)

    def phase(description: str, total: int, done: int) -> Callable[[int], None]:
        task = progress.add_task(description, total=total, completed=done)
        return lambda n: progress.advance(task, n)

    return progress, phase

