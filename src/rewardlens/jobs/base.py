"""What every scoring job is: a resumable run planned as named shards, scored by any pool, finished once.

A job (a vocabulary sweep, a word run, an implicit-reward run, the activations of `similarity layers`)
knows three things: its *early identity* (what tells its run from another before a model is loaded, so a
refusal costs no model load), its *plan* (the manifest of the run and every shard it will hold, named by
what the shard holds, so that independent workers can write them without coordinating), and how to score
one shard with a loaded scorer. The executor (`rewardlens.jobs.executor`) does the rest in one place:
skip the shards on disk, score the others on a pool, write each result once, finish the run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

import pandas as pd

from rewardlens.errors import UserError
from rewardlens.progress import Progress
from rewardlens.prompts import Prompt
from rewardlens.runs.store import RunStore

if TYPE_CHECKING:
    from rewardlens.scorers import ScorerInfo


class ShardTask(Protocol):
    """One shard to score: its file name in the run, its row count, and how to score it.

    A task is sent to a worker that has loaded the model (a Ray actor, or this process), so it carries the
    data it needs; `cache` is the worker's, kept between the tasks it is handed (e.g. a prompt's log-probs).
    """

    @property
    def name(self) -> str: ...

    @property
    def rows(self) -> int: ...

    def score(self, scorer: Any, cache: dict[str, Any], progress: Progress = None) -> pd.DataFrame: ...


@dataclass
class JobPlan:
    """A job's run opened (or resumed) in its store, with every shard it will hold."""

    scorer: ScorerInfo  # what it was planned with: a loaded scorer here, a Ray worker's facts on Ray
    store: RunStore
    shards: list[ShardTask]
    rows_expected: int
    label: str  # what the progress bar says, e.g. "vocabulary sweep"
    unit: str = "rows"  # what a row is, in the summary line ("candidates", "words", ...)
    # Manifest keys the summary reports besides the row counts (an implicit run: its `alignment`).
    summary_keys: tuple[str, ...] = ()
    # When planned: the shards not yet on disk (a shard file that exists is complete: writes are atomic),
    # and the rows of those that are.
    todo: list[ShardTask] = field(init=False)
    rows_done: int = field(init=False)

    def __post_init__(self) -> None:
        self.todo = [task for task in self.shards if not self.store.is_done(task.name)]
        pending = {task.name for task in self.todo}
        self.rows_done = sum(task.rows for task in self.shards if task.name not in pending)


class Job(Protocol):
    """A resumable scoring job writing one run into `out_dir`."""

    @property
    def out_dir(self) -> Path: ...

    @property
    def model_spec(self) -> str: ...

    def refuse_other_run(self, overwrite: bool) -> None:
        """Refuse an `out_dir` that holds another run, from what is known before a model is loaded."""
        ...

    def plan(self, scorer: Any, overwrite: bool) -> JobPlan:
        """Open the run with the loaded model's facts (a scorer, a Ray worker's `ScorerFacts`, or what the
        job's pool loaded, e.g. a policy/reference pair)."""
        ...


@dataclass(frozen=True)
class JobSummary:
    """What a finished (or stopped) job did: the one summary of every kind of run."""

    directory: Path
    rows: int
    rows_expected: int
    rows_written: int
    seconds: float
    complete: bool
    unit: str = "rows"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rows_written / self.seconds if self.seconds > 0 else float("nan")

    @property
    def alignment(self) -> dict[str, Any]:
        """How an implicit run paired the two vocabularies (empty for other runs)."""
        return dict(self.details.get("alignment") or {})

    def line(self) -> str:
        state = "complete" if self.complete else "incomplete"
        return (
            f"{self.rows:,} / {self.rows_expected:,} rows ({state}) in {self.directory}; "
            f"{self.rows_written:,} scored in {self.seconds:.1f} s ({self.rate:,.1f} {self.unit}/s)"
        )

    def to_dict(self) -> dict[str, Any]:
        """The `--json` summary of a run."""
        return {
            "run": os.fspath(self.directory),
            "rows": self.rows,
            "rows_expected": self.rows_expected,
            "rows_written": self.rows_written,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
        }


@dataclass
class QueueStats:
    """What a pool did: shards done, shards re-queued after a worker died, workers lost."""

    shards: int = 0
    rows: int = 0
    requeued: int = 0
    workers_lost: int = 0
    replacements: int = 0  # actors started to replace dead ones
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "shards": self.shards,
            "rows": self.rows,
            "requeued": self.requeued,
            "workers_lost": self.workers_lost,
            "replacements": self.replacements,
        }


class ClosingPool:
    """What every pool is as a context manager: `with pool:` closes it (its actors, its loaded scorer) on exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_prompts(prompts: Sequence[Prompt]) -> list[Prompt]:
    """The prompts of a job: at least one, ids distinct."""
    if not prompts:
        raise UserError("no prompts: pass --prompt TEXT or --prompts SET_OR_FILE")
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        raise UserError("duplicate prompt ids in the prompt set")
    return list(prompts)


__all__ = ["ClosingPool", "Job", "JobPlan", "JobSummary", "QueueStats", "ShardTask", "check_prompts"]
