"""A study whose words section scores a response list with a human column: each model's run of the list, the
analysis against that rating, and the "vs human preferences" section of the report; bad keys in one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from cli_runner import CliResult
from rewardlens.errors import UserError
from rewardlens.runs import load_run
from rewardlens.study.parse import parse_study
from rewardlens.study.run import run_study
from rewardlens.study.schema import Study, StudyResult

RESPONSES = ["love", "the ocean", "Pizza!", "my family and friends", "power", "a warm cup of tea", "War", "music"]


@pytest.fixture
def listed(tmp_path: Path) -> Path:
    path = tmp_path / "things.csv"
    elo = [1510.5, 1402, 1333.25, 1601, 1200, 1455, 1013, 1544]
    pd.DataFrame({"response": RESPONSES, "elo_score": elo}).to_csv(path, index=False)
    (tmp_path / "prompts.yaml").write_text("greatest: What, in one word, is the greatest thing ever?\n")
    return path


def test_study_with_a_human_column_adds_the_section(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], listed: Path
) -> None:
    models = [str(tiny_model_dir("llama", "reward")), str(tiny_model_dir("qwen2", "reward"))]
    document = {
        "name": "vs-human",
        "models": models,
        "words": {"prompts": str(tmp_path / "prompts.yaml"), "responses": str(listed), "human": "elo_score"},
    }
    study = parse_study(document, "study.yaml")
    assert study.words is not None and study.words.lexicons == () and study.words.human == "elo_score"
    assert parse_study(__import__("yaml").safe_load(study.to_yaml()), "again").words == study.words
    out = tmp_path / "out"
    result = run_study(study, out)
    assert len(result.response_dirs) == 2 and result.human_dir is not None
    table = pd.read_csv(result.human_dir / "human.csv")
    assert len(table) == 2
    html = result.report.read_text() if result.report else ""
    assert "Reward models vs human preferences (elo_score)" in html and "data:image/png;base64," in html
    for run in result.response_dirs.values():
        rows = load_run(run)
        model = rows["model"].iloc[0]
        tau = stats.kendalltau(rows["score"], rows["elo_score"].astype(float)).statistic
        assert table.loc[table["model"] == model, "kendall_tau"].iloc[0] == pytest.approx(tau, abs=1e-12)
        assert f"{tau:.3f}" in html
    again = run_study(study, out)  # every run complete: nothing scored again
    assert again.skipped_jobs == 2 and not any(runs.loaded for runs in again.models)


def test_bad_human_keys_are_one_line(tmp_path: Path, tiny_model_dir: Callable[..., Path], listed: Path) -> None:
    model = str(tiny_model_dir("llama", "reward"))

    def parse(words: dict[str, object]) -> str:
        with pytest.raises(UserError) as error:
            parse_study({"models": [model], "words": words}, "s.yaml")
        assert "\n" not in str(error.value)
        return str(error.value)

    assert "words.human names a column of words.responses" in parse({"human": "elo_score"})
    assert "words.human: " in parse({"responses": str(listed), "human": "votes"})
    text = tmp_path / "list.txt"
    text.write_text("love\nwar\n")
    assert "no column 'elo_score'" in parse({"responses": str(text), "human": "elo_score"})
    bad = tmp_path / "bad.csv"
    bad.write_text("response,elo_score\nlove,high\nwar,2\n")
    assert "is not numeric ('high')" in parse({"responses": str(bad), "human": "elo_score"})
    assert "words.responses: " in parse({"responses": str(tmp_path / "missing.csv")})


def test_audit_passes_the_response_list_and_its_human_column_to_its_study(
    tmp_path: Path,
    tiny_model_dir: Callable[..., Path],
    listed: Path,
    run_cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`audit --responses --human` is the study above (tested end to end there) with the audit's sections."""
    import rewardlens.study.run as study_run

    planned: list[Study] = []

    def capture(study: Study, out: Path, **_: object) -> StudyResult:
        planned.append(study)
        return StudyResult(out=Path(out), models=[])

    monkeypatch.setattr(study_run, "run_study", capture)
    model = str(tiny_model_dir("llama", "reward"))
    result = run_cli("audit", "-m", model, "--out", str(tmp_path / "a"), "--responses", listed, "--human", "elo_score")
    assert result.exit_code == 0, result.stderr
    (study,) = planned
    assert study.words is not None and study.words.responses == str(listed.resolve())
    assert study.words.human == "elo_score" and study.words.lexicons == ("big2-nouns",) and study.sweep is not None


def test_audit_refuses_a_bad_human_column_before_scoring(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], listed: Path, run_cli: Callable[..., CliResult]
) -> None:
    model = str(tiny_model_dir("llama", "reward"))
    out = tmp_path / "audit"
    for extra in (["--human", "elo_score"], ["--responses", str(listed), "--human", "votes"]):
        result = run_cli("audit", "-m", model, "--out", str(out), *extra)
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert not out.exists()
