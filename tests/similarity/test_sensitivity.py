"""`similarity sensitivity`: each value is the measure on a regenerable draw, and the known biases show."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rewardlens.similarity.api import compare
from rewardlens.similarity.sensitivity import SensitivityConfig, generate_pair, run_sensitivity


def test_every_value_is_compare_on_the_same_regenerated_draw() -> None:
    config = SensitivityConfig(measures=("rv", "rv2"), n=(12,), d=(5,), repeats=2, seed=3)
    result = run_sensitivity(config)
    assert len(result.values) == 2 * 2 * 2  # measures x relations x repeats
    for row in result.values.itertuples(index=False):
        x, y = generate_pair(row.relation, row.n, row.d, row.repeat, seed=3)
        assert row.value == compare(x, y, row.measure)
    # Another seed gives other draws.
    other = run_sensitivity(SensitivityConfig(measures=("rv",), n=(12,), d=(5,), repeats=2, seed=4))
    assert other.values["value"].iloc[0] != result.values["value"].iloc[0]


def test_rv_drifts_towards_one_under_independence_when_d_exceeds_n_and_debiased_cka_does_not() -> None:
    config = SensitivityConfig(
        measures=("rv", "linear-cka", "debiased-cka"), n=(20,), d=(400,), repeats=3, relations=("independent",)
    )
    means = run_sensitivity(config).summary.set_index("measure")["mean"]
    assert means["rv"] > 0.8
    assert means["linear-cka"] > 0.8
    assert abs(means["debiased-cka"]) < 0.2


def test_summary_is_mean_and_sd_over_repeats() -> None:
    result = run_sensitivity(SensitivityConfig(measures=("rv2",), n=(15,), d=(4,), repeats=4))
    for row in result.summary.itertuples(index=False):
        draws = result.values.query("relation == @row.relation")["value"].to_numpy()
        assert row.mean == pytest.approx(draws.mean(), abs=1e-12)
        assert row.sd == pytest.approx(draws.std(ddof=1), abs=1e-12)
        assert row.repeats == 4
    assert np.isfinite(result.summary["sd"]).all()


def test_cli_json_lines_and_bad_input(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    result = run_cli("similarity", "sensitivity", "--measure", "rv,rv2", "--n", "10", "--d", "3", "--repeats", "2",
                     "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert {(line["measure"], line["relation"]) for line in lines} == {
        (m, r) for m in ("rv", "rv2") for r in ("independent", "linear")
    }
    assert all({"measure", "relation", "n", "d", "mean", "sd"} <= set(line) for line in lines)
    for bad in (["--n", "ten"], ["--measure", "nope"]):
        result = run_cli("similarity", "sensitivity", *bad, "--repeats", "1", "--out", tmp_path / "bad")
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "bad").exists()
