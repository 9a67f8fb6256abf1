"""analyze human: tau and the vectorised bootstrap against scipy, the wide layout, bad input via the CLI."""

from __future__ import annotations

from pathlib import Path

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


def _one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_bad_input_exits_2_with_one_line(run_cli, tmp_path: Path, small_elo: list[Path]) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    assert "reference column" in _one_error_line(run_cli("analyze", "human", *small_elo, "--out", out,
                                                         "--reference", "votes"))
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


def test_analyze_human_cli_writes_every_table(run_cli, tmp_path: Path, small_elo: list[Path]) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    result = run_cli("analyze", "human", *small_elo, "--out", out, "--bootstrap", "50")
    assert result.exit_code == 0, result.stderr
    names = {p.name for p in out.iterdir()}
    assert {"human.csv", "agreement.csv", "rank_differences.csv", "stability.csv", "conclusions.csv",
            "tau_heatmap.png", "rank_differences.png"} <= names
    conclusions = pd.read_csv(out / "conclusions.csv")
    assert set(conclusions.loc[conclusions["scope"] == "all", "unit"]) == {"models"}
