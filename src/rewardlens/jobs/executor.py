"""The one executor: open a pool for a job's model, plan the job, score the shards not on disk, finish.

Every kind of run goes through `execute`: a sweep, a word run, an implicit-reward run, in this process or
on Ray (`RayPool`), alone (`run_job`) or several on one loaded model (`run_jobs`). The driver is the only
writer of the run: each result is written once, when it comes back, so a run killed at any moment resumes
by planning again and scoring only the shards that are missing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from rewardlens.jobs.base import Job, JobPlan, JobSummary, QueueStats, ShardTask
from rewardlens.jobs.pools import LocalPool, Pool, open_pool
from rewardlens.jobs.ray_pool import RayOptions, RayPool
from rewardlens.progress import PhaseProgress, Progress, no_progress
from rewardlens.runs.store import RunStore


def _writer(store: RunStore, duplicates: list[str]) -> Callable[[ShardTask, pd.DataFrame], None]:
    """Write each shard once: a result for a shard already on disk is dropped (and counted)."""

    def write(task: ShardTask, frame: pd.DataFrame) -> None:
        if store.is_done(task.name):
            duplicates.append(task.name)
            return
        store.write_shard(task.name, frame)

    return write


def _finish(plan: JobPlan, stats: QueueStats, pool: Pool, duplicates: list[str]) -> dict[str, Any]:
    return plan.store.finish(
        scoring_seconds=stats.seconds,
        workers={
            "backend": "ray" if isinstance(pool, RayPool) else "local",
            "workers": pool.planned_workers,
            **stats.to_dict(),
            "duplicates_dropped": len(duplicates),
        },
    )


def execute(plan: JobPlan, pool: Pool, phase: PhaseProgress = no_progress, progress: Progress = None) -> JobSummary:
    """Score the plan's missing shards on `pool`, write each once, finish the run.

    Progress goes to `progress` (rows) when given, else to a bar from `phase` that starts at the rows done.
    """
    started = time.perf_counter()
    tick = progress or phase(f"{plan.scorer.name}: {plan.label}", plan.rows_expected, plan.rows_done)
    duplicates: list[str] = []
    stats = pool.run(plan.todo, _writer(plan.store, duplicates), tick)
    manifest = _finish(plan, stats, pool, duplicates)
    return JobSummary(
        directory=plan.store.directory,
        rows=int(manifest["rows"]),
        rows_expected=plan.rows_expected,
        rows_written=stats.rows,
        seconds=time.perf_counter() - started,
        complete=bool(manifest["complete"]),
        unit=plan.unit,
        details={key: manifest.get(key) for key in plan.summary_keys},
    )


def execute_local(plan: JobPlan, progress: Progress = None) -> JobSummary:
    """Execute a plan made in this process with its loaded scorer."""
    spec = str(plan.store.manifest.get("model_spec") or plan.scorer.name)
    return execute(plan, LocalPool(spec, scorer=plan.scorer), progress=progress)


def loaded_or_spec(scorer_or_spec: Any) -> tuple[Any, str]:
    """(a loaded scorer or None, the model spec) of what a run function was given."""
    if isinstance(scorer_or_spec, str | os.PathLike):
        return None, os.fspath(scorer_or_spec)
    return scorer_or_spec, str(scorer_or_spec.describe().get("spec") or scorer_or_spec.name)


def run_jobs(
    jobs: Sequence[Job],
    scorer: Any = None,
    *,
    options: Any = None,
    ray: RayOptions | None = None,
    overwrite: bool = False,
    phase: PhaseProgress = no_progress,
    progress: Progress = None,
) -> list[JobSummary]:
    """Run jobs of one model on one pool (the model is loaded once, here or on Ray's actors).

    Every job refuses a directory holding another run before the model is loaded; `scorer` is a model
    already loaded in this process, else the pool loads `jobs[0].model_spec` with `options` (a "loading"
    bar from `phase` meanwhile).
    """
    if not jobs:
        return []
    for job in jobs:
        job.refuse_other_run(overwrite)
    spec = jobs[0].model_spec
    loading = phase(f"loading {spec}", 1, 0) if scorer is None else None
    with open_pool(spec, options, ray, scorer) as pool:
        if loading is not None:
            loading(1)
        return [execute(job.plan(pool.facts, overwrite), pool, phase, progress) for job in jobs]


def run_job(job: Job, scorer: Any = None, **run_options: Any) -> JobSummary:
    """`run_jobs` of one job."""
    return run_jobs([job], scorer, **run_options)[0]


__all__ = ["execute", "execute_local", "loaded_or_spec", "run_job", "run_jobs"]
