"""analyze human: tau and the vectorised bootstrap against scipy, the wide layout, bad input via the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rewardlens.analysis.human import bootstrap_kendall_tau, human_agreement, paired_rows, resample_counts
from rewardlens.imports import bundled_scores, import_wide_reference, load_human_inputs
from rewardlens.runs import load_run


def test_bootstrap_replicates_equal_scipy_on_the_resampled_rows() -> None:
    rng = np.random.default_rng(3)
    for n in (3, 8, 60):
        x = rng.integers(0, 5, n).astype(float)
        y = x + rng.integers(0, 3, n)
        counts = resample_counts(n, 6, rng)
        got = bootstrap_kendall_tau(x, y, counts)
        for b in range(6):
            rows = np.repeat(np.arange(n), counts[:, b])
            expected = stats.kendalltau(x[rows], y[rows], variant="b").statistic
            assert got[b] == pytest.approx(expected, abs=1e-12, nan_ok=True)


def test_bootstrap_equals_scipy_across_chunks_ties_and_wide_weights() -> None:
    rng = np.random.default_rng(5)
    n = 300  # 70 resamples: two full chunks of 32 and a narrower one; x with few values, y with many
    x = rng.integers(0, 4, n).astype(float)
    y = np.round(x + rng.normal(size=n), 1)
    counts = resample_counts(n, 70, rng)
    got = bootstrap_kendall_tau(x, y, counts)
    again = bootstrap_kendall_tau(y, x, counts)  # merged over the other variable
    for b in (0, 31, 32, 63, 64, 69):
        rows = np.repeat(np.arange(n), counts[:, b])
        expected = stats.kendalltau(x[rows], y[rows], variant="b").statistic
        assert got[b] == pytest.approx(expected, abs=1e-12) and again[b] == pytest.approx(expected, abs=1e-12)
    big = 40_000  # cumulative weights above int16: the int32 weights and int64 products
    x, y = rng.normal(size=big), rng.integers(0, 50, big).astype(float)
    counts = resample_counts(big, 2, rng)
    got = bootstrap_kendall_tau(x, y, counts)
    for b in range(2):
        rows = np.repeat(np.arange(big), counts[:, b])
        assert got[b] == pytest.approx(stats.kendalltau(x[rows], y[rows]).statistic, abs=1e-12)


@pytest.fixture
def small_elo(tmp_path: Path) -> list[Path]:
    paths = []
    for source in bundled_scores("elo"):
        path = tmp_path / source.name
        path.write_text("".join(source.open().readlines()[:201]))
        paths.append(path)
    return paths


def test_tau_and_spearman_equal_scipy_and_ci_is_seeded(small_elo: list[Path]) -> None:
    data = load_human_inputs(small_elo)
    paired = paired_rows(data.scores, data.human)
    table = human_agreement(paired, {}, n_bootstrap=200, seed=1)
    assert len(table) == 30 and set(table["unit"]) == {"responses"}
    wide = pd.read_csv(small_elo[0])
    row = table[(table["prompt_id"] == small_elo[0].stem) & (table["model"] == "nicolinho/QRM-Gemma-2-27B")].iloc[0]
    x, y = wide["nicolinho/QRM-Gemma-2-27B"], wide["elo_score"]
    assert row["kendall_tau"] == pytest.approx(stats.kendalltau(x, y).statistic)
    assert row["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert (table["ci_low"] <= table["kendall_tau"]).all() and (table["kendall_tau"] <= table["ci_high"]).all()
    again = human_agreement(paired, {}, n_bootstrap=200, seed=1)
    pd.testing.assert_frame_equal(table, again)


def test_wide_import_round_trips(tmp_path: Path, small_elo: list[Path]) -> None:
    written = import_wide_reference(small_elo, tmp_path / "runs")
    assert len(written) == 11 and "human" in written
    run = load_run(written["nicolinho/QRM-Gemma-2-27B"])
    wide = pd.read_csv(small_elo[1])
    got = run[run["prompt_id"] == small_elo[1].stem].set_index("response")["score"]
    expected = wide.set_index("name")["nicolinho/QRM-Gemma-2-27B"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    human = load_run(written["human"])
    assert human.groupby("prompt_id").size().tolist() == [200, 200, 200]


def _one_error_line(result: Any) -> str:
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_bad_input_exits_2_with_one_line(run_cli: Callable[..., Any], tmp_path: Path, small_elo: list[Path]) -> None:
    out = tmp_path / "out"
    assert "reference column" in _one_error_line(
        run_cli("analyze", "human", *small_elo, "--out", out, "--reference", "votes")
    )
    bad = tmp_path / "greatest_ever_one_word.csv"
    bad.write_text("response,elo_score,rm\nlove,high,1\nwar,2,3\n")
    assert "not numeric" in _one_error_line(run_cli("analyze", "human", bad, "--out", out))
    other = tmp_path / "other.csv"
    other.write_text("word,score\nlove,1\n")
    assert "neither" in _one_error_line(run_cli("analyze", "human", other, "--out", out))
    human_only = tmp_path / "humans_most_prefer.csv"
    human_only.write_text("response,elo_score,rm\nzzz,1,\nyyy,2,\n")
    assert "share no" in _one_error_line(run_cli("analyze", "human", human_only, "--out", out))
    assert not out.exists() or not any(out.iterdir())


def test_analyze_human_cli_writes_every_table(
    run_cli: Callable[..., Any], tmp_path: Path, small_elo: list[Path]
) -> None:
    out = tmp_path / "out"
    result = run_cli("analyze", "human", *small_elo, "--out", out, "--bootstrap", "50")
    assert result.exit_code == 0, result.stderr
    names = {p.name for p in out.iterdir()}
    assert {
        "human.csv",
        "agreement.csv",
        "rank_differences.csv",
        "stability.csv",
        "conclusions.csv",
        "tau_heatmap.png",
        "rank_differences.png",
    } <= names
    conclusions = pd.read_csv(out / "conclusions.csv")
    assert set(conclusions.loc[conclusions["scope"] == "all", "unit"]) == {"models"}


def test_import_scores_of_the_wide_layout_gives_the_same_analysis(
    run_cli: Callable[..., Any], tmp_path: Path, small_elo: list[Path]
) -> None:
    runs = tmp_path / "runs"
    result = run_cli("import-scores", *small_elo, "--out", runs)
    assert result.exit_code == 0, result.stderr
    assert "10 models and the human rating" in result.stdout
    folders = sorted(p for p in runs.iterdir() if p.is_dir())
    assert len(folders) == 11
    direct, imported = tmp_path / "direct", tmp_path / "imported"
    assert run_cli("analyze", "human", *small_elo, "--out", direct, "--bootstrap", "100").exit_code == 0
    result = run_cli("analyze", "human", *folders, "--out", imported, "--bootstrap", "100")
    assert result.exit_code == 0, result.stderr
    for name in ("human.csv", "agreement.csv", "conclusions.csv", "stability.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(imported / name), pd.read_csv(direct / name), obj=name)
    # --layout wide reads a `response` + reference file too (the prompt text given).
    generic = tmp_path / "my_prompt.csv"
    generic.write_text("response,elo_score,rm_a,rm_b\nlove,3,0.5,1\nwar,1,-2,0\ntea,2,0.1,2\n")
    result = run_cli("import-scores", generic, "--layout", "wide", "--prompt", "Best?", "--out", tmp_path / "g")
    assert result.exit_code == 0, result.stderr
    human = load_run(tmp_path / "g" / "human")
    assert human["score"].tolist() == [3.0, 1.0, 2.0] and set(human["prompt"]) == {"Best?"}


def test_import_scores_bad_wide_input_exits_2_with_one_line(
    run_cli: Callable[..., Any], tmp_path: Path, small_elo: list[Path]
) -> None:
    out = tmp_path / "runs"

    def imported(*args: object) -> str:
        return _one_error_line(run_cli("import-scores", *args, "--out", out))

    other = tmp_path / "other.csv"
    other.write_text("word,score\nlove,1\n")
    assert "neither the EloEverything layout" in imported(other)
    assert "no reference column 'votes'" in imported(*small_elo, "--reference", "votes")
    bad = tmp_path / "greatest_ever_one_word.csv"
    lines = small_elo[0].read_text().splitlines()
    first = lines[1].split(",")
    first[1] = "high"
    bad.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    assert "reference column 'elo_score' is not numeric ('high')" in imported(bad)
    assert "--model is for a score CSV" in imported(*small_elo, "--model", "m")
    scores = tmp_path / "scores.csv"
    scores.write_text("response,best_ever_one\nlove,1\n")
    assert "mix layouts" in imported(small_elo[0], scores)
    assert "needs --model" in imported(scores)
    assert "--layout 'long'" in imported(scores, "--layout", "long")
    assert not out.exists()
