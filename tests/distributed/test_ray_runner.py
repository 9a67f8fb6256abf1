"""Sweeps and word runs on a local Ray cluster equal single-process runs, also when a worker dies."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from rewardlens.config import ModelOptions
from rewardlens.jobs.executor import execute
from rewardlens.jobs.ray_pool import RayOptions, RayPool
from rewardlens.jobs.sweep import IDENTITY_KEYS as SWEEP_IDENTITY
from rewardlens.jobs.sweep import SweepJob, run_sweep
from rewardlens.jobs.words import IDENTITY_KEYS as WORDS_IDENTITY
from rewardlens.jobs.words import WordsJob, run_words
from rewardlens.prompts import load_prompts
from rewardlens.runs import load_run, read_manifest, shard_files

pytestmark = pytest.mark.usefixtures("ray_cluster")

LOAD = {"dtype": "float32", "device": "cpu"}
LOAD_OPTIONS = ModelOptions(**LOAD)
SHARD = 48  # ~7 shards per prompt of the tiny 320-token vocabulary
# A Ray worker runs the same float32 forward with its own thread count, so BLAS may sum in another order:
# scores agree to a relative 1e-5 (a float32 sum of ~10^2 terms), not bit for bit. Ids, prompts and the
# row order are compared exactly.
SCORE_RTOL, SCORE_ATOL = 1e-5, 1e-7


def _same_run(single: Path, distributed: Path, identity: tuple[str, ...]) -> pd.DataFrame:
    """Row for row the same rows (scores within the float32 budget), the same run identity; returns the rows."""
    expected, got = load_run(single), load_run(distributed)
    floats = [c for c in expected.columns if pd.api.types.is_float_dtype(expected[c])]
    others = [c for c in expected.columns if c not in floats]
    pd.testing.assert_frame_equal(got[others], expected[others], check_exact=True)
    pd.testing.assert_frame_equal(got[floats], expected[floats], check_exact=False, rtol=SCORE_RTOL, atol=SCORE_ATOL)
    assert [p.name for p in shard_files(distributed)] == [p.name for p in shard_files(single)]
    a, b = read_manifest(single), read_manifest(distributed)
    assert {k: a.get(k) for k in identity} == {k: b.get(k) for k in identity}
    assert b["complete"] and b["rows"] == b["rows_expected"] == len(got)
    return got


def test_sweep_cli_on_two_ray_workers_equals_single_process(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], run_cli: Callable[..., object]
) -> None:
    model = str(tiny_model_dir("llama", "reward"))
    single = tmp_path / "single"
    run_sweep(model, load_prompts("optpess3"), single, shard_size=SHARD, **LOAD)
    distributed = tmp_path / "ray"
    result = run_cli(
        "sweep", "--model", model, "--prompts", "optpess3", "--shard-size", SHARD, "--dtype", "float32",
        "--device", "cpu", "--out", distributed, "--ray", "--workers", 2, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    summary = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert summary["complete"] and summary["rows_written"] == summary["rows"]
    rows = _same_run(single, distributed, SWEEP_IDENTITY)
    assert not rows.duplicated(["prompt_id", "token_id"]).any()
    workers = read_manifest(distributed)["workers"]
    assert workers["backend"] == "ray" and workers["workers"] == 2 and workers["workers_lost"] == 0


def test_killed_worker_has_its_shards_redone_exactly_once(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], small_lexicon: Path, four_prompts: Path
) -> None:
    import ray

    model = str(tiny_model_dir("qwen2", "reward"))
    sweep_prompts, word_prompts = load_prompts("optpess3"), load_prompts(four_prompts)
    run_sweep(model, sweep_prompts, tmp_path / "sweep-single", shard_size=SHARD, **LOAD)
    run_words(model, str(small_lexicon), word_prompts, tmp_path / "words-single", **LOAD)

    with RayPool(model, LOAD_OPTIONS, RayOptions(workers=2)) as pool:
        assert pool.size == 2
        written: list[str] = []
        killed: list[int] = []

        def phase(description: str, total: int, done: int) -> Callable[[int], None]:
            def tick(rows: int) -> None:
                written.append(description)
                if not killed:  # after the first shard came back: kill a worker while work is queued
                    killed.append(ray.get(pool.workers[0].pid.remote()))
                    ray.kill(pool.workers[0])

            return tick

        job = SweepJob(model, tuple(sweep_prompts), tmp_path / "sweep-ray", shard_size=SHARD)
        sweep = execute(job.plan(pool.facts), pool, phase)
        stats = pool.stats
        assert killed and stats.workers_lost == 1
        assert stats.requeued >= 1  # the dead worker's shard went back to the queue ...
        assert stats.shards == len(shard_files(tmp_path / "sweep-single"))  # ... and each shard came back once
        assert sweep.complete

        # The same pool, one worker down (or replaced), scores a word run.
        words_job = WordsJob.of(model, str(small_lexicon), word_prompts, tmp_path / "words-ray")
        words = execute(words_job.plan(pool.facts), pool)
        assert words.complete and pool.stats.shards == len(word_prompts)

    rows = _same_run(tmp_path / "sweep-single", tmp_path / "sweep-ray", SWEEP_IDENTITY)
    assert not rows.duplicated(["prompt_id", "token_id"]).any()
    manifest = read_manifest(tmp_path / "sweep-ray")["workers"]
    assert manifest["requeued"] == stats.requeued and manifest["duplicates_dropped"] == 0
    words_rows = _same_run(tmp_path / "words-single", tmp_path / "words-ray", WORDS_IDENTITY)
    assert not words_rows.duplicated(["prompt_id", "response"]).any()


def test_audit_on_ray_runs_as_a_study_with_the_audit_layout(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], small_lexicon: Path, four_prompts: Path
) -> None:
    from rewardlens.study import run_study
    from rewardlens.study.audit import audit_study

    model = str(tiny_model_dir("llama", "reward"))
    out = tmp_path / "audit"
    # What `rewardlens audit --ray` runs (with the bundled value54 in place of four prompts, to stay quick).
    plan = audit_study(
        [model], lexicons=[str(small_lexicon)], tokens="0:40", word_prompts=str(four_prompts), n_permutations=20,
        dtype="float32",
    )  # fmt: skip
    result = run_study(plan, out, ray=RayOptions(workers=1))
    assert result.models[0].loaded
    runs = out / "models" / Path(model).name
    for run in (runs / "sweep", runs / "words-big2-nouns", runs / "words-small"):
        manifest = read_manifest(run)
        assert manifest["complete"] and manifest["workers"]["backend"] == "ray", run
    assert (out / "values-big2-nouns" / "summary.csv").is_file() and (out / "report.html").is_file()
    again = run_study(plan, out, ray=RayOptions(workers=1))  # complete: no model loaded, no actor started
    assert not again.models[0].loaded and again.skipped_jobs == 3


def test_a_model_that_cannot_load_is_one_user_error_from_the_workers(tmp_path: Path) -> None:
    from rewardlens.errors import UserError

    missing = tmp_path / "no-such-model"
    with pytest.raises(UserError, match="does not exist") as caught:
        RayPool(f"{missing}/", LOAD_OPTIONS, RayOptions(workers=1))
    assert len(str(caught.value).splitlines()) == 1
