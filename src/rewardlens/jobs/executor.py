"""Sweeps and word runs fed to a pool of scorers (Ray actors or this process).

The driver plans the run exactly as a single-process run does (`prepare_sweep`, `words_manifest`, the
same shard names), with the model's facts taken from a worker, so the run directory is indistinguishable
from one written by `run_sweep` / `run_words`: same _run.json identity, same shard files, same rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rewardlens.distributed.ray_runner import Pool, QueueStats, RayPool
from rewardlens.distributed.shards import ShardTask, SweepShardTask, WordShardTask
from rewardlens.lexicons import Lexicon, load_lexicon
from rewardlens.progress import PhaseProgress, no_progress
from rewardlens.prompts import Prompt
from rewardlens.runs.store import RunStore, has_run
from rewardlens.sweep import DEFAULT_SHARD_SIZE, SweepSummary, prepare_sweep
from rewardlens.words import WordsSummary


def _writer(store: RunStore, duplicates: list[str]) -> Callable[[ShardTask, pd.DataFrame], None]:
    """Write each shard once: a result for a shard already on disk is dropped (and counted)."""

    def write(task: ShardTask, frame: pd.DataFrame) -> None:
        if store.is_done(task.name):
            duplicates.append(task.name)
            return
        store.write_shard(task.name, frame)

    return write


def _finish(store: RunStore, stats: QueueStats, pool: Pool, duplicates: list[str]) -> dict[str, Any]:
    return store.finish(
        scoring_seconds=stats.seconds,
        workers={
            "backend": "ray" if isinstance(pool, RayPool) else "local",
            "workers": pool.planned_workers,
            **stats.to_dict(),
            "duplicates_dropped": len(duplicates),
        },
    )


def sweep_with_pool(
    pool: Pool,
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    *,
    model_spec: str,
    tokens: str = "all",
    include_special: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    batch_size: int | None = None,
    engine: str = "cached",
    overwrite: bool = False,
    phase: PhaseProgress = no_progress,
) -> SweepSummary:
    """A vocabulary sweep (see `rewardlens.sweep`) with its shards scored by the pool's workers."""
    started = time.perf_counter()
    plan = prepare_sweep(
        pool.facts,
        prompts,
        out_dir,
        model_spec=model_spec,
        tokens=tokens,
        include_special=include_special,
        shard_size=shard_size,
        batch_size=batch_size,
        engine=engine,
        overwrite=overwrite,
    )
    tick = phase(f"{pool.facts.name}: vocabulary sweep", plan.rows_expected, plan.rows_done)
    tasks = [SweepShardTask(shard, plan.candidates.iloc[shard.rows], engine, batch_size) for shard in plan.todo]
    duplicates: list[str] = []
    stats = pool.run(tasks, _writer(plan.store, duplicates), tick)
    manifest = _finish(plan.store, stats, pool, duplicates)
    return SweepSummary(
        directory=plan.store.directory,
        rows=int(manifest["rows"]),
        rows_expected=plan.rows_expected,
        rows_written=stats.rows,
        seconds=time.perf_counter() - started,
        complete=bool(manifest["complete"]),
    )


def words_with_pool(
    pool: Pool,
    lexicon: str | Lexicon,
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    *,
    model_spec: str,
    batch_size: int | None = None,
    engine: str = "cached",
    overwrite: bool = False,
    phase: PhaseProgress = no_progress,
) -> WordsSummary:
    """A word run (see `rewardlens.words`) with its prompts scored by the pool's workers."""
    from rewardlens.sweep import check_prompts
    from rewardlens.words import IDENTITY_KEYS, shard_name, word_table, words_manifest

    started = time.perf_counter()
    prompts = check_prompts(prompts)
    chosen = lexicon if isinstance(lexicon, Lexicon) else load_lexicon(lexicon)
    words = word_table(chosen)
    manifest = words_manifest(pool.facts, model_spec, chosen, words, prompts, engine=engine, batch_size=batch_size)
    store = RunStore(out_dir, manifest, identity_keys=IDENTITY_KEYS, overwrite=overwrite)
    todo = [index for index in range(len(prompts)) if not store.is_done(shard_name(index))]
    expected = int(manifest["rows_expected"])
    tick = phase(f"{pool.facts.name}: {chosen.name} words", expected, (len(prompts) - len(todo)) * len(words))
    tasks = [WordShardTask(index, prompts[index], words, engine, batch_size) for index in todo]
    duplicates: list[str] = []
    stats = pool.run(tasks, _writer(store, duplicates), tick)
    finished = _finish(store, stats, pool, duplicates)
    return WordsSummary(
        directory=Path(out_dir),
        rows=int(finished["rows"]),
        rows_expected=expected,
        rows_written=stats.rows,
        seconds=time.perf_counter() - started,
        complete=bool(finished["complete"]),
    )


def sweep_on_ray(
    model_spec: str,
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    ray: Any,
    load_options: dict[str, Any],
    *,
    phase: PhaseProgress = no_progress,
    **sweep_options: Any,
) -> SweepSummary:
    """`run_sweep` on a Ray cluster: open a pool of actors (`ray`: a `RayOptions`), sweep, close the pool."""
    from rewardlens.distributed.ray_runner import RayPool

    with RayPool(model_spec, load_options, ray) as pool:
        return sweep_with_pool(pool, prompts, out_dir, model_spec=model_spec, phase=phase, **sweep_options)


def words_on_ray(
    model_spec: str,
    lexicon: str | Lexicon,
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    ray: Any,
    load_options: dict[str, Any],
    *,
    phase: PhaseProgress = no_progress,
    **words_options: Any,
) -> WordsSummary:
    """`run_words` on a Ray cluster: open a pool of actors (`ray`: a `RayOptions`), score, close the pool."""
    from rewardlens.distributed.ray_runner import RayPool

    with RayPool(model_spec, load_options, ray) as pool:
        return words_with_pool(pool, lexicon, prompts, out_dir, model_spec=model_spec, phase=phase, **words_options)


def _implicit_job(args: tuple[Any, ...], kwargs: dict[str, Any], threads: int) -> Any:
    """Runs inside a Ray worker: the whole implicit run, both models loaded there."""
    import torch

    from rewardlens.implicit import run_implicit

    torch.set_num_threads(threads)
    return run_implicit(*args, **kwargs)


def implicit_on_ray(
    policy: str,
    reference: str,
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    ray: Any,
    *,
    progress: Callable[[int], None] | None = None,
    poll_seconds: float = 1.0,
    **implicit_options: Any,
) -> Any:
    """`run_implicit` on one Ray worker (it needs the policy and the reference side by side).

    Its shards are written by that worker, so OUT must be on a filesystem the worker shares with this
    process (the same node, or a shared mount). Progress is the rows on disk, polled here.
    """
    from rewardlens.distributed.ray_runner import connect_ray, import_ray, reraise_task_error, worker_shape
    from rewardlens.runs import count_rows

    ray_module = import_ray()
    connect_ray(ray.address)
    shape = worker_shape(replace_workers(ray), ray_module.cluster_resources())
    threads = str(shape.threads)
    remote = ray_module.remote(_implicit_job).options(
        num_cpus=shape.num_cpus,
        num_gpus=shape.num_gpus,
        max_retries=0,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}},
    )
    ref = remote.remote(
        (policy, reference, list(prompts), os.fspath(out_dir)),
        implicit_options,
        shape.threads,
    )
    seen = 0
    while True:
        ready, _ = ray_module.wait([ref], timeout=poll_seconds)
        if has_run(out_dir) and progress:
            rows = count_rows(out_dir)
            if rows > seen:
                progress(rows - seen)
                seen = rows
        if ready:
            break
    try:
        return ray_module.get(ref)
    except ray_module.exceptions.RayTaskError as err:
        reraise_task_error(err)


def replace_workers(ray: Any) -> Any:
    """The options of a single worker (an implicit run is one job)."""
    from dataclasses import replace

    return replace(ray, workers=1)


__all__ = ["PhaseProgress", "implicit_on_ray", "sweep_on_ray", "sweep_with_pool", "words_on_ray", "words_with_pool"]
