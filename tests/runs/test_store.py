"""The run store: atomic shards, resume, refusal of another run, queries over several runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rewardlens.errors import UserError
from rewardlens.runs import RunStore, load_run, query, read_manifest, write_run


def _frame(prompt_id: str, ids: range, model: str = "m") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": model,
            "prompt_id": prompt_id,
            "prompt": f"text of {prompt_id}",
            "token_id": np.array(list(ids), dtype=np.int32),  # narrower than the contract: must be widened
            "response": [f"t{i}" for i in ids],
            "score": np.arange(len(ids), dtype=np.float32) / 7,
        }
    )


def _manifest(**changes: object) -> dict[str, object]:
    manifest: dict[str, object] = {
        "kind_of_run": "sweep",
        "model": "m",
        "prompts": [{"id": "a", "text": "text of a"}],
        "tokens": "all",
        "include_special": False,
    }
    manifest.update(changes)
    return manifest


def test_write_run_round_trips_and_pandas_reads_the_shards(tmp_path: Path) -> None:
    frame = _frame("a", range(10))
    write_run(tmp_path / "run", _manifest(), frame, shard_rows=3)
    loaded = load_run(tmp_path / "run")
    assert loaded["token_id"].dtype == np.int64 and loaded["score"].dtype == np.float64
    pd.testing.assert_frame_equal(loaded, frame.astype({"token_id": "int64", "score": "float64"}), check_dtype=False)
    assert len(pd.read_parquet(tmp_path / "run" / "shards")) == 10
    manifest = read_manifest(tmp_path / "run")
    assert manifest["rows"] == manifest["rows_expected"] == 10 and manifest["complete"] is True


def test_write_run_refuses_an_existing_run_unless_overwrite(tmp_path: Path) -> None:
    write_run(tmp_path, _manifest(), _frame("a", range(4)))
    with pytest.raises(UserError, match="already holds a run"):
        write_run(tmp_path, _manifest(), _frame("a", range(2)))
    write_run(tmp_path, _manifest(model="other"), _frame("b", range(2), model="other"), overwrite=True)
    loaded = load_run(tmp_path)
    assert list(loaded["prompt_id"]) == ["b", "b"] and read_manifest(tmp_path)["model"] == "other"


def test_resume_keeps_shards_and_the_first_start(tmp_path: Path) -> None:
    store = RunStore(tmp_path, _manifest(rows_expected=8))
    store.write_shard("p0-t0-4", _frame("a", range(4)))
    started = store.manifest["started_at"]
    again = RunStore(tmp_path, _manifest(rows_expected=8))
    assert again.resumed and again.is_done("p0-t0-4") and not again.is_done("p0-t4-8")
    assert again.manifest["started_at"] == started and len(again.manifest["resumed_at"]) == 1
    again.write_shard("p0-t4-8", _frame("a", range(4, 8)))
    finished = again.finish()
    assert finished["rows"] == 8 and finished["complete"] is True
    assert list(load_run(tmp_path)["token_id"]) == list(range(8))


def test_finish_of_a_partial_run_is_not_complete(tmp_path: Path) -> None:
    store = RunStore(tmp_path, _manifest(rows_expected=8))
    store.write_shard("p0-t0-4", _frame("a", range(4)))
    assert store.finish()["complete"] is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "other"}, "another model"),
        ({"prompts": [{"id": "b", "text": "x"}]}, "another prompt set"),
        ({"tokens": "words"}, "another tokens"),
    ],
)
def test_another_run_is_refused_and_overwrite_replaces_it(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    store = RunStore(tmp_path, _manifest())
    store.write_shard("p0", _frame("a", range(3)))
    with pytest.raises(UserError, match=message):
        RunStore(tmp_path, _manifest(**change))
    assert len(load_run(tmp_path)) == 3  # the refusal touched nothing
    replaced = RunStore(tmp_path, _manifest(**change), overwrite=True)
    assert not replaced.resumed and not replaced.is_done("p0") and load_run(tmp_path).empty


def test_rewriting_a_shard_replaces_it_and_leaves_no_temporaries(tmp_path: Path) -> None:
    store = RunStore(tmp_path, _manifest())
    store.write_shard("p0", _frame("a", range(3)))
    store.write_shard("p0", _frame("a", range(5)))
    assert len(load_run(tmp_path)) == 5
    assert [p.name for p in (tmp_path / "shards").iterdir()] == ["p0.parquet"]


def test_temporaries_of_dead_processes_are_removed_and_ignored(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    store = RunStore(tmp_path, _manifest())
    store.write_shard("p0", _frame("a", range(3)))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "shards" / f".p1.parquet.tmp-{socket.gethostname()}-{dead.stdout.strip()}-abc"
    stale.write_bytes(b"half a parquet file")
    assert len(load_run(tmp_path)) == 3  # ignored while it is there
    RunStore(tmp_path, _manifest())
    assert not stale.exists()


def test_unwritable_directory_and_a_file_in_the_way(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        RunStore(blocker, _manifest())
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(UserError):
            RunStore(locked / "run", _manifest())


def test_read_manifest_errors_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="holds no run"):
        read_manifest(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        load_run(tmp_path)


def test_query_spans_runs_of_different_kinds(tmp_path: Path) -> None:
    write_run(tmp_path / "one", _manifest(model="m1"), _frame("a", range(4), model="m1"))
    words = pd.DataFrame(
        {
            "model": "m2",
            "prompt_id": "a",
            "prompt": "p",
            "response": ["kind", "cruel"],
            "score": [1.0, -1.0],
            "category": ["Communion", "Communion"],
        }
    )
    write_run(tmp_path / "two", {"kind_of_run": "words", "model": "m2", "prompts": []}, words)
    result = query(
        "SELECT model, count(*) AS n, count(token_id) AS with_ids FROM scores GROUP BY model ORDER BY model",
        runs=[tmp_path / "one", tmp_path / "two"],
    )
    assert result.to_dict("records") == [
        {"model": "m1", "n": 4, "with_ids": 4},
        {"model": "m2", "n": 2, "with_ids": 0},
    ]
    best = query("SELECT response FROM scores ORDER BY score DESC LIMIT 1", runs=str(tmp_path / "two"))
    assert best["response"].tolist() == ["kind"]
    with pytest.raises(UserError, match="query failed"):
        query("SELECT nope FROM scores", runs=[tmp_path / "one"])


def test_manifest_is_valid_json_after_every_step(tmp_path: Path) -> None:
    store = RunStore(tmp_path, _manifest(rows_expected=3))
    json.loads((tmp_path / "_run.json").read_text())
    store.write_shard("p0", _frame("a", range(3)))
    store.finish()
    assert json.loads((tmp_path / "_run.json").read_text())["complete"] is True


def test_package_level_entry_points_are_the_run_store() -> None:
    import rewardlens
    from rewardlens import runs

    assert rewardlens.load_run is runs.load_run and rewardlens.query is runs.query


def test_a_run_is_a_parquet_dataset_for_pandas_pyarrow_and_duckdb(tmp_path: Path) -> None:
    import duckdb
    import pyarrow.dataset as ds

    frame = pd.concat([_frame("a", range(5)), _frame("b", range(5, 12))], ignore_index=True)
    run = write_run(tmp_path / "r", _manifest(), frame, shard_rows=4)
    assert (run / "_run.json").is_file() and not (run / "run.json").exists()
    expected = sorted(frame["response"])
    assert sorted(pd.read_parquet(run)["response"]) == expected
    assert sorted(ds.dataset(run, format="parquet").to_table()["response"].to_pylist()) == expected
    rows = duckdb.sql(f"select response from read_parquet('{run}/**/*.parquet')").fetchall()
    assert sorted(r[0] for r in rows) == expected


def test_a_run_written_by_version_0_1_opens_and_resuming_renames_its_manifest(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", _manifest(rows_expected=None), _frame("a", range(3)))
    (run / "_run.json").rename(run / "run.json")  # the 0.1 layout
    assert read_manifest(run)["complete"] is True
    assert len(load_run(run)) == 3
    store = RunStore(run, _manifest())  # same identity: resumed, manifest rewritten under its new name
    assert store.resumed
    assert (run / "_run.json").is_file() and not (run / "run.json").exists()
    assert len(pd.read_parquet(run)) == 3
