"""`similarity compare`: candidates against a repeated target, paired differences, the noise ceiling, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from similarity_naive import NAIVE

from rewardlens.similarity.inference import compare_models


def _save(folder: Path, name: str, array: np.ndarray) -> Path:
    path = folder / f"{name}.npy"
    np.save(path, array)
    return path


@pytest.fixture
def study(tmp_path: Path) -> dict[str, object]:
    """A noise-free target measured three times with noise, its truth, a close and a noisier candidate."""
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(120, 8))
    repetitions = [truth + 1.5 * rng.normal(size=truth.shape) for _ in range(3)]
    rotation = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    candidates = {
        "truth": truth,
        "close": truth @ rotation + 0.3 * rng.normal(size=truth.shape),
        "noisy": truth + 3.0 * rng.normal(size=truth.shape),
    }
    return {
        "targets": [_save(tmp_path, f"target{i}", r) for i, r in enumerate(repetitions)],
        "candidates": {name: _save(tmp_path, name, array) for name, array in candidates.items()},
        "arrays": (repetitions, candidates),
    }


def _args(targets: list[Path], candidates: dict[str, Path], *extra: object) -> list[object]:
    args: list[object] = ["similarity", "compare"]
    for path in targets:
        args += ["--target", path]
    for name, path in candidates.items():
        args += ["--candidate", f"{name}={path}"]
    return [*args, *extra]


def test_json_fields_and_values(run_cli, study) -> None:
    result = run_cli(
        *_args(study["targets"], study["candidates"], "--measure", "rv2", "--bootstrap", "50", "--seed", "2", "--json")
    )
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["measure"] == "rv2" and printed["stimuli"] == 120 and printed["target_repetitions"] == 3
    assert printed["bootstrap"] == 50 and printed["seed"] == 2
    repetitions, candidates = study["arrays"]
    mean_target = np.mean(repetitions, axis=0)
    names = [row["name"] for row in printed["candidates"]]
    assert names == ["truth", "close", "noisy"]
    for row in printed["candidates"]:
        assert set(row) >= {"name", "score", "ci_low", "ci_high", "per_repetition", "unit", "generalizes_to"}
        assert row["score"] == pytest.approx(NAIVE["rv2"](candidates[row["name"]], mean_target), abs=1e-10)
        assert row["ci_low"] <= row["score"] <= row["ci_high"]
        assert row["unit"] == "stimuli" and "stimuli" in row["generalizes_to"]
    assert [(p["a"], p["b"]) for p in printed["pairs"]] == [("truth", "close"), ("truth", "noisy"), ("close", "noisy")]
    for pair in printed["pairs"]:
        assert set(pair) >= {"a", "b", "difference", "p_value", "unit", "generalizes_to"}
        assert 0 < pair["p_value"] <= 1 and pair["unit"] == "stimuli"
    ceiling = printed["noise_ceiling"]
    assert ceiling["repetitions"] == 3 and 0 < ceiling["lower"] < ceiling["upper"] < 1
    assert ceiling["unit"] == "repetitions" and "repetitions" in ceiling["generalizes_to"]


def test_the_cli_prints_what_the_api_returns(run_cli, study) -> None:
    repetitions, candidates = study["arrays"]
    expected = compare_models(candidates, repetitions, "linear-cka", bootstrap=20, seed=4).to_dict()
    result = run_cli(
        *_args(study["targets"], study["candidates"], "-m", "linear-cka", "--bootstrap", "20", "--seed", "4", "--json")
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(json.dumps(expected))


@pytest.mark.parametrize("measure", ["rv2", "linear-cka", "rsa"])
def test_the_noise_free_target_lies_within_the_ceiling(run_cli, study, measure: str) -> None:
    result = run_cli(*_args(study["targets"], study["candidates"], "--measure", measure, "--bootstrap", "5", "--json"))
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    truth = next(row for row in printed["candidates"] if row["name"] == "truth")
    ceiling = printed["noise_ceiling"]
    assert ceiling["lower"] < truth["per_repetition"] < ceiling["upper"]


def test_a_better_candidate_beats_a_noisier_one(run_cli, study) -> None:
    result = run_cli(*_args(study["targets"], study["candidates"], "--bootstrap", "200", "--seed", "1", "--json"))
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    pair = next(p for p in printed["pairs"] if (p["a"], p["b"]) == ("close", "noisy"))
    assert pair["difference"] > 0 and pair["ci_low"] > 0 and pair["p_value"] < 0.02


def test_one_target_has_no_ceiling_and_the_table_prints(run_cli, study) -> None:
    result = run_cli(*_args(study["targets"][:1], study["candidates"], "--bootstrap", "10", "--json"))
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["noise_ceiling"] is None and printed["target_repetitions"] == 1
    assert all("per_repetition" not in row for row in printed["candidates"])
    table = run_cli(*_args(study["targets"], study["candidates"], "--bootstrap", "10"))
    assert table.exit_code == 0, table.stderr
    assert "close" in table.stdout and "noise ceiling" in table.stdout and "stimuli" in table.stdout


def _bad(tmp_path: Path, study, case: str) -> tuple[list[object], str]:
    targets, candidates = study["targets"], dict(study["candidates"])
    if case == "target shapes":
        other = _save(tmp_path, "wide", np.random.default_rng(1).normal(size=(120, 5)))
        return _args([*targets, other], candidates), "shape"
    if case == "candidate rows":
        short = _save(tmp_path, "short", np.random.default_rng(1).normal(size=(60, 8)))
        return _args(targets, {**candidates, "short": short}), "rows"
    if case == "malformed":
        return [*_args(targets, candidates), "--candidate", "no-equals-sign.npy"], "NAME=PATH"
    if case == "empty name":
        return [*_args(targets, candidates), "--candidate", "=x.npy"], "NAME=PATH"
    if case == "missing candidate":
        return _args(targets, {"gone": tmp_path / "gone.npy"}), "no such file"
    if case == "missing target":
        return _args([tmp_path / "gone.npy"], candidates), "no such file"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["target shapes", "candidate rows", "malformed", "empty name", "missing candidate", "missing target"]
)
def test_bad_input_is_one_line_and_exit_2(run_cli, tmp_path: Path, study, case: str) -> None:
    args, message = _bad(tmp_path, study, case)
    result = run_cli(*args, "--bootstrap", "5", "--json")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
