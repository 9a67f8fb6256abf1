"""`analyze tokens` on real sweeps of two tiny reward models whose byte-level tokenizers differ in part."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from rewardlens.analysis.tokens import align_tokens
from rewardlens.runs import load_run


def test_sweeps_of_two_tokenizers_align_and_agree_with_scipy(
    tiny_model_dir: Callable[..., Path], run_cli: Callable[..., object], tmp_path: Path
) -> None:
    runs = []
    for arch in ("llama", "qwen2"):
        out = tmp_path / arch
        result = run_cli(
            "sweep",
            "-m",
            tiny_model_dir(arch, "reward"),
            "-o",
            out,
            "--device",
            "cpu",
            "--prompts",
            "optpess3",
        )
        assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
        runs.append(out)
    tables = tmp_path / "tokens"
    result = run_cli("analyze", "tokens", *runs, "--out", tables, "--resamples", "100", "--no-figures")
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]

    frame = pd.concat([load_run(r) for r in runs], ignore_index=True)
    frame = frame[~frame["is_special"]]
    # Byte-level vocabularies hold many lone bytes that decode to the same replacement character: such texts
    # come from several ids, and the alignment must drop them and say how many.
    alignment = pd.read_csv(tables / "alignment.csv").set_index("model")
    for model, rows in frame.groupby("model"):
        vocabulary = rows.drop_duplicates("token_id")
        ids_per_text = vocabulary.groupby("response")["token_id"].nunique()
        assert alignment.loc[model, "n_duplicate_texts"] == (ids_per_text > 1).sum()
        assert alignment.loc[model, "n_duplicate_ids"] == ids_per_text[ids_per_text > 1].sum()
    assert (alignment["n_duplicate_texts"] > 0).all()

    agreement = pd.read_csv(tables / "agreement.csv")
    assert set(agreement["prompt_id"]) == {"greatest_ever", "best_ever", "worst_ever"}
    aligned = align_tokens(frame)
    models = sorted(frame["model"].unique())
    for row in agreement.itertuples():
        pair = aligned[aligned["prompt_id"] == row.prompt_id].pivot(index="text", columns="model", values="score")
        assert row.n_shared == len(pair) > 100
        expected = stats.kendalltau(pair[models[0]], pair[models[1]]).statistic
        assert row.kendall_tau == pytest.approx(expected)
    framing = pd.read_csv(tables / "framing.csv")  # framing from the bundled prompt set, via _run.json
    assert len(framing) == 2 * 2 and set(framing["negative_prompt"]) == {"worst_ever"}
