"""The rich progress display that the multi-phase jobs (words, audit, study) report through."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def phase_progress(console: Console) -> tuple[Progress, Callable[[str, int, int], Callable[[int], None]]]:
    """A rich display and the `phase(description, total, done)` hook that jobs report through."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )

    def phase(description: str, total: int, done: int) -> Callable[[int], None]:
        task = progress.add_task(description, total=total, completed=done)
        return lambda n: progress.advance(task, n)

    return progress, phase
