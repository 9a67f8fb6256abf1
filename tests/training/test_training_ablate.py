"""The ablation grid end to end (CLI), its resumption after an interruption, the checkpoint analysis, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from rewardlens.training.ablate import read_ablation, run_ablation
from rewardlens.training.checkpoints import bootstrap_difference, write_checkpoint_analysis
from rewardlens.training.train import TrainingConfig

RECIPE = ["--epochs", 2, "--learning-rate", 3e-2, "--batch-size", 8, "--max-length", 64, "--log-every", 1]


@pytest.fixture(scope="module")
def bases(tiny_model_dir: Callable[..., Path]) -> list[str]:
    return [str(tiny_model_dir("llama", "lm")), str(tiny_model_dir("qwen2", "lm"))]


def test_grid_trains_scores_resumes_and_shows_the_planted_preference(
    bases: list[str], planted_jsonl: Callable[..., Path], word_lexicon: Path, framed_prompts: Path,
    run_cli: Callable[..., object], tmp_path: Path,
) -> None:
    communion = planted_jsonl(32, prefer="communion", name="communion.jsonl")
    agency = planted_jsonl(32, prefer="agency", name="agency.jsonl")
    out = tmp_path / "grid"
    args = ["ablate", "--base", bases[0], "--base", bases[1], "--data", f"comm={communion}", "--data",
            f"agen={agency}", "--sizes", "16,32", "--out", out, *RECIPE, "--checkpoint-every", 4,
            "--lexicon", word_lexicon, "--prompts", framed_prompts]
    first = run_cli(*args)
    assert first.exit_code == 0, first.stderr
    assert (first.stdout + first.stderr).count("training on") == 8
    cells = sorted(path.name for path in out.iterdir() if path.is_dir())
    assert len(cells) == 8 and "llama-lm-chat0__comm__n16" in cells
    manifests = {cell: json.loads((out / cell / "train" / "run.json").read_text()) for cell in cells}
    assert all(m["complete"] and m["pairs_used"] == int(cell.split("__n")[1]) for cell, m in manifests.items())
    word_runs = sorted(out.glob("*/words/step-*/_run.json"))
    assert len(word_runs) == sum(len(m["checkpoints"]) for m in manifests.values()) == 4 * (1 + 2)

    # A rerun finds everything done: no training, no scoring.
    stamps = {path: path.stat().st_mtime_ns for path in [*out.glob("*/train/run.json"), *word_runs]}
    second = run_cli(*args)
    assert second.exit_code == 0, second.stderr
    assert "training on" not in second.stdout + second.stderr
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps

    # The analysis: ranks per cell and step, base differences, figures.
    analysis_dir = tmp_path / "analysis"
    result = run_cli("analyze", "checkpoints", out, "--out", analysis_dir, "--resamples", 200)  # its lexicon
    assert result.exit_code == 0, result.stderr
    medians = pd.read_csv(analysis_dir / "checkpoints.csv")
    assert list(medians.columns) == ["base", "family", "data", "size", "step", "epoch", "final", "framing",
                                     "category", "median_rank", "n_rows"]
    assert len(medians) == len(word_runs) * 2 * 2  # framing x category
    assert set(medians["family"]) == {"llama", "qwen"}
    final = medians[medians["final"] & (medians["size"] == 32) & (medians["framing"] == "positive")]
    pivot = final.pivot_table(index=["base", "data"], columns="category", values="median_rank")
    # Lower rank = preferred: each base learnt the category its data prefers.
    for (base, data), row in pivot.iterrows():
        preferred, other = ("Communion", "Agency") if data == "comm" else ("Agency", "Communion")
        assert row[preferred] < row[other], (base, data, row.to_dict())
    differences = pd.read_csv(analysis_dir / "base_differences.csv")
    assert len(differences) == len(medians) // 2
    assert (differences["ci_low"] <= differences["difference"]).all()
    assert (differences["difference"] <= differences["ci_high"]).all()
    for name in ("ranks_by_step.png", "ranks_by_size.png", "ranks_by_step.pdf", "analysis.json"):
        assert (analysis_dir / name).stat().st_size > 0


def test_an_interrupted_grid_finishes_without_retraining_finished_cells(
    bases: list[str], planted_jsonl: Callable[..., Path], word_lexicon: Path, framed_prompts: Path, tmp_path: Path
) -> None:
    data = {"comm": str(planted_jsonl(16))}
    config = TrainingConfig(epochs=2, learning_rate=1e-2, batch_size=8, max_length=64, checkpoint_every=2)
    out = tmp_path / "grid"
    trainings: list[int] = []

    def interrupt_second_training(step: int, total: int, loss: float | None) -> None:
        if step == 1:
            trainings.append(total)
        if len(trainings) == 2 and step == 2:
            raise KeyboardInterrupt  # killed mid-training of the second cell, after its first checkpoint

    options = dict(lexicon=str(word_lexicon), prompts=str(framed_prompts))
    with pytest.raises(KeyboardInterrupt):
        run_ablation(bases[:1], data, [8, 16], out, config, on_step=interrupt_second_training, **options)
    first_cell = out / "llama-lm-chat0__comm__n8" / "train" / "run.json"
    second_cell = out / "llama-lm-chat0__comm__n16" / "train" / "run.json"
    assert json.loads(first_cell.read_text())["complete"] and not json.loads(second_cell.read_text())["complete"]
    stamp = first_cell.stat().st_mtime_ns

    results = run_ablation(bases[:1], data, [8, 16], out, config, **options)
    assert [r.trained for r in results] == [False, True]
    assert first_cell.stat().st_mtime_ns == stamp
    assert json.loads(second_cell.read_text())["complete"]
    # 8 pairs: 2 steps, one checkpoint (already scored); 16 pairs: 4 steps, two checkpoints (scored now).
    assert [r.words_scored for r in results] == [0, 2] and [r.words_skipped for r in results] == [1, 0]
    again = run_ablation(bases[:1], data, [8, 16], out, config, **options)
    assert [(r.trained, r.words_scored) for r in again] == [(False, 0), (False, 0)]
    # Another recipe in the same directory is refused; more sizes extend the grid.
    from rewardlens.errors import UserError

    with pytest.raises(UserError, match="another config"):
        run_ablation(bases[:1], data, [8], out, TrainingConfig(learning_rate=1.0, max_length=64), **options)
    assert read_ablation(out)["sizes"] == [8, 16]
    # One base: ranks per step and size, no base differences (an empty table with its header, and a note).
    analysis, files = write_checkpoint_analysis(out, tmp_path / "analysis", n_resamples=10)
    assert sorted(analysis.medians["step"].unique()) == [2, 4] and sorted(analysis.medians["size"].unique()) == [8, 16]
    assert analysis.differences.empty and "difference" in pd.read_csv(files["base_differences.csv"]).columns
    assert any("one base only" in note for note in analysis.notes)


def test_bootstrap_difference_covers_a_planted_gap() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.normal(10, 2, size=(30, 40))
    b = rng.normal(14, 2, size=(30, 40))
    observed, low, high = bootstrap_difference(a, b, 500, np.random.default_rng(1))
    assert low <= observed <= high < 0
    same, low0, high0 = bootstrap_difference(a, a, 500, np.random.default_rng(1))
    assert same == low0 == high0 == 0.0


def one_error_line(result: object) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(
    bases: list[str], tiny_model_dir: Callable[..., Path], planted_jsonl: Callable[..., Path],
    run_cli: Callable[..., object], tmp_path: Path,
) -> None:
    good = planted_jsonl(8)
    train = ["train", "--base", bases[0], "--out", tmp_path / "rm", "--max-length", 64]
    assert "no such file" in one_error_line(run_cli(*train, "--data", tmp_path / "missing.jsonl"))
    no_rejected = tmp_path / "no_rejected.jsonl"
    no_rejected.write_text('{"prompt": "p", "chosen": "love"}\n', encoding="utf-8")
    assert "line 1: missing key 'rejected'" in one_error_line(run_cli(*train, "--data", no_rejected))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(good.read_text() + "{oops\n", encoding="utf-8")
    assert "line 9 is not valid JSON" in one_error_line(run_cli(*train, "--data", broken))
    assert "RANK,ALPHA" in one_error_line(run_cli(*train, "--data", good, "--lora", "32"))
    assert "holds only 8 usable pairs" in one_error_line(run_cli(*train, "--data", good, "--n-pairs", 9))
    no_template = str(tiny_model_dir("llama", "lm", chat_template=False))
    message = one_error_line(run_cli("train", "--base", no_template, "--data", good, "--out", tmp_path / "x"))
    assert "no chat template" in message
    assert not (tmp_path / "rm").exists() and not (tmp_path / "x").exists()  # nothing written on bad input

    ablate = ["ablate", "--base", bases[0], "--out", tmp_path / "grid"]
    assert "NAME=FILE" in one_error_line(run_cli(*ablate, "--data", str(good), "--sizes", "4"))
    assert "--sizes" in one_error_line(run_cli(*ablate, "--data", f"d={good}", "--sizes", "four"))
    assert "holds only 8" in one_error_line(run_cli(*ablate, "--data", f"d={good}", "--sizes", "4,9"))
    message = one_error_line(run_cli("analyze", "checkpoints", tmp_path, "--out", tmp_path / "a"))
    assert "not an ablation directory" in message
