"""Sweeps and word runs fed to a pool of scorers (Ray actors or this process).

The driver plans the run exactly as a single-process run does (`prepare_sweep`, `words_manifest`, the
same shard names), with the model's facts taken from a worker, so the run directory is indistinguishable
from one written by `run_sweep` / `run_words`: same run.json identity, same shard files, same rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rewardlens.distributed.ray_runner import Pool, QueueStats
from rewardlens.distributed.shards import ShardTask, SweepShardTask, WordShardTask
from rewardlens.lexicons import Lexicon, load_lexicon
from rewardlens.prompts import Prompt
from rewardlens.runs.store import RunStore
from rewardlens.sweep import DEFAULT_SHARD_SIZE, SweepSummary, prepare_sweep
from rewardlens.words import WordsSummary

# `phase(description, total, done)` returns the callback that counts scored rows (as in `rewardlens.audit`).
PhaseProgress = Callable[[str, int, int], Callable[[int], None]]


def _no_progress(description: str, total: int, done: int) -> Callable[[int], None]:
    return lambda n: None


def _writer(store: RunStore, duplicates: list[str]) -> Callable[[ShardTask, pd.DataFrame], None]:
    """Write each shard once: a result for a shard already on disk is dropped (and counted)."""

    def write(task: ShardTask, frame: pd.DataFrame) -> None:
        if store.is_done(task.name):
            duplicates.append(task.name)
            return
        store.write_shard(task.name, frame)

    return write


def _finish(store: RunStore, stats: QueueStats, pool: Pool, duplicates: list[str]) -> dict[str, Any]:
    manifest = store.finish()
    store.update_manifest(
        scoring_seconds=round(float(manifest.get("scoring_seconds", 0.0)) + stats.seconds, 3),
        workers={
            "backend": "ray" if pool.__class__.__name__ == "RayPool" else "local",
            "workers": pool.size,
            **stats.to_dict(),
            "duplicates_dropped": len(duplicates),
        },
    )
    return store.manifest


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
    phase: PhaseProgress = _no_progress,
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
    phase: PhaseProgress = _no_progress,
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
    phase: PhaseProgress = _no_progress,
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
    phase: PhaseProgress = _no_progress,
    **words_options: Any,
) -> WordsSummary:
    """`run_words` on a Ray cluster: open a pool of actors (`ray`: a `RayOptions`), score, close the pool."""
    from rewardlens.distributed.ray_runner import RayPool

    with RayPool(model_spec, load_options, ray) as pool:
        return words_with_pool(pool, lexicon, prompts, out_dir, model_spec=model_spec, phase=phase, **words_options)


__all__ = ["PhaseProgress", "sweep_on_ray", "sweep_with_pool", "words_on_ray", "words_with_pool"]
