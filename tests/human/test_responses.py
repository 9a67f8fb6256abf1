"""`words --responses FILE`: a response list scored under a prompt set, its metadata in the rows, resumable,
analysable by `analyze human`; bad lists refused in one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rewardlens.errors import UserError
from rewardlens.jobs.words import run_words
from rewardlens.prompts import load_prompts
from rewardlens.responses import load_responses
from rewardlens.runs import load_run, read_manifest
from rewardlens.scorers import load_scorer

RESPONSES = ["love", "the ocean", "Pizza!", "my family and friends", "power", "a warm cup of tea", "War", "music"]
ELO = ["1510.5", "1402", "1333.25", "1601", "1200", "1455", "1013", "1544"]


@pytest.fixture
def responses_csv(tmp_path: Path) -> Path:
    path = tmp_path / "things.csv"
    table = pd.DataFrame({"response": RESPONSES, "elo_score": ELO, "note": [f"n{i}" for i in range(len(ELO))]})
    table.to_csv(path, index=False)
    return path


@pytest.fixture
def two_prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.yaml"
    path.write_text(
        "greatest: What, in one word, is the greatest thing ever?\n"
        "prefer: What is the single thing, person, or concept that humans most prefer?\n"
    )
    return path


class Interrupted(Exception):
    pass


def test_responses_run_equals_the_reference_forward_keeps_metadata_and_resumes(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], responses_csv: Path, two_prompts: Path
) -> None:
    scorer = load_scorer(str(tiny_model_dir("llama", "reward")))
    prompts = load_prompts(two_prompts)
    out = tmp_path / "run"
    seen = [0]

    def interrupt_in_the_second_prompt(rows: int) -> None:
        seen[0] += rows
        if seen[0] > len(RESPONSES):
            raise Interrupted

    with pytest.raises(Interrupted):
        run_words(
            scorer, load_responses(responses_csv), prompts, out, batch_size=3, progress=interrupt_in_the_second_prompt
        )
    assert len(list((out / "shards").glob("*.parquet"))) == 1  # the first prompt's shard only
    summary = run_words(scorer, load_responses(responses_csv), prompts, out, batch_size=3)
    assert summary.complete and summary.rows_written == len(RESPONSES)
    rows = load_run(out)
    assert len(rows) == 2 * len(RESPONSES) and "category" not in rows.columns
    for prompt in prompts:
        got = rows[rows["prompt_id"] == prompt.id]
        assert got["response"].tolist() == RESPONSES
        assert got["elo_score"].tolist() == ELO and got["note"].tolist() == [f"n{i}" for i in range(8)]
        # The truth: one plain forward pass per full conversation (another batching, float32).
        reference = scorer.score_texts(prompt.text, RESPONSES, engine="reference")
        np.testing.assert_allclose(got["score"].to_numpy(), reference, atol=1e-4)
    manifest = read_manifest(out)
    assert manifest["responses"] == "things" and manifest["lexicon"] is None
    assert manifest["metadata"] == ["elo_score", "note"]
    # A fresh run with one batch per prompt gives the same scores (within float32 across batchings).
    fresh = run_words(scorer, load_responses(responses_csv), prompts, tmp_path / "fresh", batch_size=16)
    assert fresh.complete
    np.testing.assert_allclose(load_run(tmp_path / "fresh")["score"], rows["score"], atol=1e-4)
    # An edited metadata column is another run, refused rather than mixed in.
    edited = pd.read_csv(responses_csv, dtype=str).assign(note="x")
    edited.to_csv(responses_csv, index=False)
    with pytest.raises(UserError, match="another run"):
        run_words(scorer, load_responses(responses_csv), prompts, out)


def test_cli_text_file_equals_rewardlens_score(
    run_cli: Callable[..., Any], tmp_path: Path, tiny_model_dir: Callable[..., Path]
) -> None:
    model = str(tiny_model_dir("llama", "reward"))
    listed = tmp_path / "list.txt"
    listed.write_text("\n".join(RESPONSES[:4]) + "\n\n   \n" + "\n".join(RESPONSES[4:]) + "\n")
    prompts = tmp_path / "one.yaml"
    prompt = "What, in one word, is the greatest thing ever?"
    prompts.write_text(f"greatest: {prompt}\n")
    out = tmp_path / "run"
    result = run_cli(
        "words", "--model", model, "--responses", listed, "--prompts", prompts, "--out", out, "--batch-size", "2"
    )
    assert result.exit_code == 0, result.stderr
    rows = load_run(out)
    assert rows["response"].tolist() == RESPONSES and list(rows.columns)[-1] == "score"  # blank lines skipped
    scored = run_cli("score", "--model", model, "--prompt", prompt, "--responses-file", listed, "--json")
    assert scored.exit_code == 0, scored.stderr
    by_score = {line["response"]: line["score"] for line in map(json.loads, scored.stdout.splitlines())}
    np.testing.assert_allclose(rows["score"], [by_score[r] for r in RESPONSES], atol=1e-4)
    again = run_cli("words", "--model", model, "--responses", listed, "--prompts", prompts, "--out", out)
    assert again.exit_code == 0 and "(complete)" in again.stdout and "; 0 scored" in again.stdout
    pd.testing.assert_frame_equal(load_run(out), rows)


def test_analyze_human_reads_the_metadata_column_as_the_rating(
    run_cli: Callable[..., Any],
    tmp_path: Path,
    tiny_model_dir: Callable[..., Path],
    responses_csv: Path,
    two_prompts: Path,
) -> None:
    runs = []
    for arch in ("llama", "qwen2"):
        out = tmp_path / arch
        result = run_cli(
            "words",
            "--model",
            tiny_model_dir(arch, "reward"),
            "--responses",
            responses_csv,
            "--prompts",
            two_prompts,
            "--out",
            out,
        )
        assert result.exit_code == 0, result.stderr
        runs.append(out)
    target = tmp_path / "human"
    result = run_cli("analyze", "human", *runs, "--out", target, "--bootstrap", "50")
    assert result.exit_code == 0, result.stderr
    table = pd.read_csv(target / "human.csv")
    assert len(table) == 4 and set(table["n"]) == {len(RESPONSES)}
    for run in runs:
        rows = load_run(run)
        for prompt_id, group in rows.groupby("prompt_id"):
            model = group["model"].iloc[0]
            row = table[(table["model"] == model) & (table["prompt_id"] == prompt_id)].iloc[0]
            expected = stats.kendalltau(group["score"], group["elo_score"].astype(float)).statistic
            assert row["kendall_tau"] == pytest.approx(expected, abs=1e-12)


def _one_error_line(result: Any) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_bad_response_lists_exit_2_with_one_line_and_write_nothing(
    run_cli: Callable[..., Any], tmp_path: Path, tiny_model_dir: Callable[..., Path], responses_csv: Path
) -> None:
    model = str(tiny_model_dir("llama", "reward"))
    out = tmp_path / "out"

    def words(*args: object) -> str:
        return _one_error_line(run_cli("words", "--model", model, "--out", out, *args))

    assert "not both" in words("--responses", responses_csv, "--lexicon", "mfd2")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert "no responses" in words("--responses", empty)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\n")
    assert "no responses" in words("--responses", blank)
    header_only = tmp_path / "header.csv"
    header_only.write_text("response,elo_score\n")
    assert "no responses" in words("--responses", header_only)
    no_column = tmp_path / "names.csv"
    no_column.write_text("name,elo_score\nlove,1\n")
    assert "no `response` column" in words("--responses", no_column)
    twice = tmp_path / "twice.txt"
    twice.write_text("love\nwar\nlove\n")
    assert "'love' is given 2 times" in words("--responses", twice)
    clash = tmp_path / "clash.csv"
    clash.write_text("response,score\nlove,1\n")
    assert "column 'score'" in words("--responses", clash)
    empty_cell = tmp_path / "cell.csv"
    empty_cell.write_text("response,x\nlove,1\n,2\n")
    assert "row 3 has an empty response" in words("--responses", empty_cell)
    unreadable = tmp_path / "latin1.txt"
    unreadable.write_bytes(b"caf\xe9\n")
    assert "not a readable" in words("--responses", unreadable)
    assert "no such responses file" in words("--responses", tmp_path / "missing.txt")
    assert not out.exists()
