"""How jobs report progress without depending on a display: plain callbacks the CLI turns into rich bars."""

from __future__ import annotations

from collections.abc import Callable

# Called with the number of items just finished; None when nobody is watching.
Progress = Callable[[int], None] | None
# `phase(description, total, done)` starts a phase and returns the callback that counts its finished items.
PhaseProgress = Callable[[str, int, int], Callable[[int], None]]


def no_progress(description: str, total: int, done: int) -> Callable[[int], None]:
    """The `PhaseProgress` of a job nobody watches."""
    return lambda n: None
