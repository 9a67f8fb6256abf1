"""The sweep commands end to end: kill -9 and resume, refusal, --overwrite, runs/top/export, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_runner import invoke as cli
from rewardlens.runs import load_run, read_manifest, shard_files

PROMPT_ARGS = ["-p", "What, in one word, is the best thing ever?", "-p", "Worst thing?"]


@pytest.fixture(scope="module")
def rm_dir(tiny_model_dir: Callable[..., Path]) -> Path:
    return tiny_model_dir("llama", "reward")


def _sweep_args(model: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", "-m", str(model), "-o", str(out), "--device", "cpu", *PROMPT_ARGS, *extra]


def test_sweep_killed_with_sigkill_resumes_to_the_uninterrupted_rows(
    rm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = ["--tokens", "0:120", "--shard-size", "4", "--batch-size", "2"]
    code, _, err = cli(_sweep_args(rm_dir, tmp_path / "whole", *layout), capsys)
    assert code == 0, err
    whole = load_run(tmp_path / "whole")

    cut = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "rewardlens", *_sweep_args(rm_dir, cut, *layout)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(shard_files(cut)) < 10 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = len(shard_files(cut))
    assert 10 <= written < len(whole) // 4, "the kill should land part-way through the sweep"

    code, out, err = cli(_sweep_args(rm_dir, cut, *layout), capsys)
    assert code == 0, err
    assert "(complete)" in out
    resumed = load_run(cut)
    assert resumed[["prompt_id", "token_id"]].equals(whole[["prompt_id", "token_id"]])
    np.testing.assert_allclose(resumed["score"], whole["score"], atol=1e-6, rtol=0)
    assert not [p for p in (cut / "shards").iterdir() if p.name.startswith(".")]  # no temporaries left
    manifest = read_manifest(cut)
    assert manifest["complete"] and len(manifest["resumed_at"]) == 1


def test_another_run_is_refused_then_overwritten(
    rm_dir: Path, tiny_model_dir: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert cli(_sweep_args(rm_dir, out, "--tokens", "0:30"), capsys)[0] == 0
    other = tiny_model_dir("qwen2", "reward")
    code, _, err = cli(_sweep_args(other, out, "--tokens", "0:30"), capsys)
    assert code == 2 and err.startswith("error: ") and "another model spec" in err and err.count("\n") == 1
    code, _, err = cli(_sweep_args(other, out, "--tokens", "0:30", "--overwrite"), capsys)
    assert code == 0, err
    assert read_manifest(out)["model_spec"] == str(other)
    assert set(load_run(out)["model"]) == {other.name}


def test_runs_top_and_export(rm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert cli(_sweep_args(rm_dir, out, "--tokens", "words"), capsys)[0] == 0
    frame = load_run(out)

    code, text, _ = cli(["runs", str(out), "--json"], capsys)
    (status,) = json.loads(text)
    assert code == 0 and status["complete"] and status["rows"] == len(frame) and status["prompts"] == 2

    prompt_id = frame["prompt_id"].iloc[0]
    code, text, _ = cli(["top", str(out), "--prompt", prompt_id, "--k", "3", "--json"], capsys)
    top = pd.DataFrame(json.loads(text))
    best = frame[frame["prompt_id"] == prompt_id].nlargest(3, "score")
    assert code == 0 and list(top["token_id"]) == list(best["token_id"]) and list(top["rank"]) == [1, 2, 3]
    code, text, _ = cli(["top", str(out), "--k", "2", "--bottom", "--json"], capsys)
    mean = frame.groupby("token_id")["score"].mean().nsmallest(2)
    assert list(pd.DataFrame(json.loads(text))["token_id"]) == list(mean.index)

    for fmt in ("csv", "parquet"):
        target = tmp_path / f"flat.{fmt}"
        assert cli(["export", str(out), "--format", fmt, "-o", str(target)], capsys)[0] == 0
        flat = pd.read_csv(target, keep_default_na=False) if fmt == "csv" else pd.read_parquet(target)
        assert len(flat) == len(frame) and list(flat["token_id"]) == list(frame["token_id"])


def _bad_inputs(tmp_path: Path, model: Path) -> dict[str, tuple[list[str], str]]:
    malformed = tmp_path / "bad.yaml"
    malformed.write_text("a: [unclosed\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    unreadable = tmp_path / "a_directory.yaml"
    unreadable.mkdir()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the run directory should go")
    other_run = tmp_path / "other"
    (other_run / "shards").mkdir(parents=True)
    (other_run / "run.json").write_text(json.dumps({"kind_of_run": "words", "model": "x", "prompts": []}))
    base = ["sweep", "-m", str(model), "--device", "cpu"]
    out = ["-o", str(tmp_path / "out")]
    return {
        "malformed prompts file": ([*base, *out, "--prompts", str(malformed)], "malformed YAML"),
        "empty prompt set": ([*base, *out, "--prompts", str(empty)], "no prompts"),
        "unreadable prompts file": ([*base, *out, "--prompts", str(unreadable)], "cannot read"),
        "missing prompts file": ([*base, *out, "--prompts", str(tmp_path / "nope.yaml")], "no such file"),
        "no prompts at all": ([*base, *out], "no prompts"),
        "tokens outside vocabulary": ([*base, *out, "-p", "hi", "--tokens", "10:100000"], "outside"),
        "DIR not writable": ([*base, "-o", str(blocker / "run"), "-p", "hi"], "cannot create run directory"),
        "DIR holding another run": ([*base, "-o", str(other_run), "-p", "hi"], "holds another run"),
        "unknown engine": ([*base, *out, "-p", "hi", "--engine", "warp"], "unknown engine"),
        "top of no run": (["top", str(tmp_path)], "holds no run"),
        "export format": (["export", str(other_run), "--format", "xls", "-o", str(tmp_path / "x")], "format"),
    }


CASES = [
    "malformed prompts file",
    "empty prompt set",
    "unreadable prompts file",
    "missing prompts file",
    "no prompts at all",
    "tokens outside vocabulary",
    "DIR not writable",
    "DIR holding another run",
    "unknown engine",
    "top of no run",
    "export format",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_code_2(
    case: str, rm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, message = _bad_inputs(tmp_path, rm_dir)[case]
    code, _, err = cli(args, capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err


def test_bench_sweep_prints_one_json_line(
    tiny_model_dir: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_model_dir("qwen2", "lm")  # a causal LM: the bench puts a seeded score head on it
    args = ["bench", "sweep", "-m", str(model), "--candidates", "50", "--batch-size", "8", "--device", "cpu"]
    code, out, err = cli(args, capsys)
    assert code == 0, err
    (line,) = out.splitlines()
    result = json.loads(line)
    assert result["candidates"] == 50 and result["head"] == "random"
    assert result["overhead_ratio"] == pytest.approx(result["sweep_s"] / result["engine_s"], rel=1e-2)
    assert 0 <= result["sweep_own_s"] <= result["sweep_s"]
