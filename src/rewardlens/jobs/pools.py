"""Where shards are scored: a pool of loaded scorers, in this process or on a Ray cluster.

A pool loads its model once (`facts` then says what the run's manifest needs about it) and scores the
tasks it is given, handing each result to the caller, who is the only writer of the run. `LocalPool` is
this process; `RayPool` (`rewardlens.jobs.ray_pool`) is actors fed from a queue, with re-queueing on
worker death. The executor does not know which one it has.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd

from rewardlens.jobs.base import ClosingPool, QueueStats, ShardTask
from rewardlens.jobs.ray_pool import RayOptions, RayPool
from rewardlens.progress import Progress


class LocalPool(ClosingPool):
    """The pool protocol in this process: one scorer, shards scored one after the other.

    `facts` is the loaded scorer itself (a plan made here may read the model, e.g. its embedding rows).
    """

    def __init__(self, spec: str, load_options: Any = None, scorer: Any = None) -> None:
        self.spec = spec
        if scorer is None:
            from rewardlens.scorers import load_scorer

            scorer = load_scorer(spec, load_options)
        self.scorer: Any = scorer  # dropped by close()
        self.facts: Any = scorer
        self.cache: dict[str, Any] = {}
        self.stats = QueueStats()
        self.size = 1
        self.planned_workers = 1

    def run(
        self,
        tasks: Sequence[ShardTask],
        on_result: Callable[[ShardTask, pd.DataFrame], None],
        progress: Progress = None,
    ) -> QueueStats:
        if self.scorer is None:
            raise RuntimeError("this pool is closed")
        started = time.perf_counter()
        stats = QueueStats()
        for task in tasks:
            on_result(task, task.score(self.scorer, self.cache, progress))
            stats.shards += 1
            stats.rows += task.rows
        stats.seconds = time.perf_counter() - started
        self.stats = stats
        return stats

    def close(self) -> None:
        self.scorer = None



Pool = RayPool | LocalPool


@contextmanager
def open_pool(spec: str, load_options: Any, ray: RayOptions | None, scorer: Any = None) -> Iterator[Pool]:
    """A pool of scorers for one model: on Ray when `ray` is given, else in this process (`scorer`: one
    already loaded here)."""
    pool: Pool = RayPool(spec, load_options, ray) if ray is not None else LocalPool(spec, load_options, scorer)
    try:
        yield pool
    finally:
        pool.close()


__all__ = ["LocalPool", "Pool", "open_pool"]
