"""import-scores round trips, `analyze values` on the ten published RMs, and bad input via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from cli_runner import CliResult
from rewardlens.analysis.conclusions import FAMILY_CONTRAST
from rewardlens.analysis.values import PUBLISHED_STRUCTURE, UNCORRELATED_SLOPES
from rewardlens.errors import UserError
from rewardlens.imports import import_scores, read_scores_csv, scores_from_run
from rewardlens.prompts import load_prompts
from rewardlens.runs import load_run
from rewardlens.values import analyze_value_files

THREE_WAY = "family[T.llama]:category[T.Communion]:framing[T.positive]"


def assert_user_error(result: CliResult, fragment: str) -> None:
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_wide_import_round_trip(tmp_path: Path, published_dir: Path) -> None:
    source = published_dir / "big2_rewards_nicolinho_QRM-Llama3.1-8B.csv"
    manifest = import_scores(source, "nicolinho/QRM-Llama3.1-8B", tmp_path / "run")
    assert manifest["kind_of_run"] == "import" and manifest["complete"]
    assert [p["id"] for p in manifest["prompts"]] == [p.id for p in load_prompts("value54")]
    rows = load_run(tmp_path / "run")
    wide = pd.read_csv(source)
    assert len(rows) == wide.shape[0] * 54
    back = rows.pivot(index="response", columns="prompt_id", values="score")
    expected = wide.set_index("response")[back.columns]
    pd.testing.assert_frame_equal(back.sort_index(), expected.sort_index(), check_names=False)
    assert set(rows["model"]) == {"nicolinho/QRM-Llama3.1-8B"}
    assert rows.loc[rows["prompt_id"] == "worst_ever_one", "prompt"].iloc[0] == (
        "What, in one word, is the worst thing ever?"
    )


def test_long_import_with_prompts_file(tmp_path: Path) -> None:
    csv = tmp_path / "long.csv"
    csv.write_text("prompt_id,response,score\nnice,kind,1.5\nnice,boss,0.5\nugly,kind,-1\nugly,boss,2\n")
    prompts = tmp_path / "p.yaml"
    prompts.write_text("nice: {text: Nicest, framing: positive}\nugly: {text: Ugliest, framing: negative}\n")
    import_scores(csv, "mine", tmp_path / "run", load_prompts(prompts))
    scored = scores_from_run(tmp_path / "run")
    assert scored.model == "mine" and "run" in scored.aliases
    framings = dict(zip(scored.frame["prompt_id"], scored.frame["framing"], strict=True))
    assert framings == {"nice": "positive", "ugly": "negative"}
    assert scored.frame["score"].sum() == pytest.approx(3.0)
    with pytest.raises(UserError, match="already holds a run"):
        import_scores(csv, "mine", tmp_path / "run", load_prompts(prompts))


def test_read_scores_csv_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("word,best_ever_one\nlove,1\n")
    with pytest.raises(UserError, match="no `response` column"):
        read_scores_csv(bad)
    bad.write_text("response,best_ever_one\nlove,high\n")
    with pytest.raises(UserError, match="not a number"):
        read_scores_csv(bad)
    bad.write_text("response,best_ever_one\nlove,\n")
    with pytest.raises(UserError, match="no scores"):
        read_scores_csv(bad)


def test_published_ten_rms_reproduce_the_paper(tmp_path: Path, published_dir: Path) -> None:
    files = sorted(published_dir.glob("*.csv"))
    report = analyze_value_files(files, "big2-nouns", tmp_path / "out", n_permutations=2000, seed=0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "analysis.json", "conclusions.csv", "mixed_model.csv", "model_medians.csv", "prompt_medians.csv",
        "ranks.parquet", "summary.csv", "tests.csv", "values.pdf", "values.png",
    ]
    assert sorted(report.families.values()).count("gemma") == 4
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index(["framing", "category", "family"])
    ranks = summary["mean_median_rank"]
    # The study's finding: Llama RMs rank agency words better (lower), Gemma RMs communion words.
    assert ranks["positive", "Agency", "llama"] < ranks["positive", "Agency", "gemma"]
    assert ranks["positive", "Communion", "gemma"] < ranks["positive", "Communion", "llama"]
    tests = pd.read_csv(tmp_path / "out" / "tests.csv")
    figure1 = tests[tests["unit"] == "model x prompt"]
    assert len(figure1) == 4 and (figure1["p_bonferroni"] < 0.05).all()  # every Figure 1 panel
    mixed = pd.read_csv(tmp_path / "out" / "mixed_model.csv")
    published = mixed[mixed["structure"] == PUBLISHED_STRUCTURE].set_index("term")
    assert published.loc[THREE_WAY, "p_value"] < 1e-6  # the paper's inference, reproduced
    # The defensible inference: family differences tested across the ten models (also in conclusions.csv).
    conclusions = report.analysis.conclusions
    written = pd.read_csv(tmp_path / "out" / "conclusions.csv", keep_default_na=False, na_values=[""])
    assert list(written.columns) == list(conclusions.columns) and len(written) == len(conclusions)
    pd.testing.assert_series_equal(written["p_value"], conclusions["p_value"].astype(float), check_names=False)
    across = conclusions[(conclusions["unit"] == "model") & (conclusions["scope"] == "all")]
    contrasts = across[across["claim"] == FAMILY_CONTRAST]
    assert set(contrasts["framing"]) == {"positive", "negative"} and len(contrasts) == 4  # permutation, Welch
    assert (contrasts["p_value"] > 0.1).all() and (contrasts["n_units"] == 10).all()
    exact = contrasts[contrasts["test"].str.startswith("permutation")]
    assert exact["test"].str.contains("exact over all 210").all()
    slopes = mixed[mixed["structure"] == UNCORRELATED_SLOPES].set_index("term")
    # Same fixed effect, tested against between-model variation: a larger SE and p.
    assert slopes.loc[THREE_WAY, "estimate"] == pytest.approx(published.loc[THREE_WAY, "estimate"], abs=1e-6)
    assert slopes.loc[THREE_WAY, "se"] > 2 * published.loc[THREE_WAY, "se"]
    assert slopes.loc[THREE_WAY, "p_value"] > 0.01


def test_cli_analyze_values_on_a_mix_of_run_and_csv(
    tmp_path: Path, published_dir: Path, run_cli: Callable[..., CliResult]
) -> None:
    llama = published_dir / "big2_rewards_Ray2333_GRM-Llama3.2-3B-rewardmodel-ft.csv"
    llama2 = published_dir / "big2_rewards_nicolinho_QRM-Llama3.1-8B.csv"
    gemma = published_dir / "big2_rewards_Ray2333_GRM-gemma2-2B-rewardmodel-ft.csv"
    result = run_cli("import-scores", str(gemma), "--model", "my-rm", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "out"
    # `my-rm` names no family; --family gives it by the run directory's base name.
    result = run_cli(
        "analyze", "values", str(tmp_path / "run"), str(llama), str(llama2), "--out", str(out),
        "--family", "run=gemma", "--permutations", "200",
    )
    # One gemma model: no family comparison (exit 2, one line), but everything else is written.
    assert_user_error(result, "'gemma' has 1 model")
    assert "mixed model skipped" in result.stdout
    assert not (out / "mixed_model.csv").exists()
    written = {p.name for p in out.iterdir()}
    assert {"summary.csv", "tests.csv", "conclusions.csv", "values.png", "values.pdf"} <= written
    families = pd.read_csv(out / "summary.csv")["family"]
    assert set(families) == {"gemma", "llama"}
    conclusions = pd.read_csv(out / "conclusions.csv")
    assert set(conclusions["unit"]) == {"word"} and conclusions["scope"].nunique() == 3


def test_cli_words_all_ranks_each_models_own_matches(
    tmp_path: Path, published_dir: Path, run_cli: Callable[..., CliResult]
) -> None:
    full = published_dir / "big2_rewards_nicolinho_QRM-Llama3.1-8B.csv"
    wide = pd.read_csv(published_dir / "big2_rewards_Ray2333_GRM-Llama3.2-3B-rewardmodel-ft.csv")
    dropped = set(wide["response"].iloc[:30].str.strip().str.casefold())
    partial = tmp_path / "partial.csv"
    wide.iloc[30:].to_csv(partial, index=False)  # this model scored 30 fewer words
    ranked = {}
    for words in ("common", "all"):
        out = tmp_path / words
        result = run_cli(
            "analyze", "values", str(full), str(partial), "--out", str(out), "--words", words,
            "--compare", "categories", "--permutations", "20",
        )
        assert result.exit_code == 0, result.stderr
        ranked[words] = pd.read_parquet(out / "ranks.parquet")
        assert json.loads((out / "analysis.json").read_text())["words"] == words
    vocabularies = {
        words: table.groupby("model")["word"].agg(lambda w: set(w.str.casefold())) for words, table in ranked.items()
    }
    qrm, grm = full.stem, "partial"
    assert vocabularies["common"][qrm] == vocabularies["common"][grm] == vocabularies["all"][grm]
    assert vocabularies["all"][qrm] - vocabularies["all"][grm] == dropped & vocabularies["all"][qrm]
    assert len(dropped & vocabularies["all"][qrm]) > 20
    # The scale follows the word set: the worst rank of QRM's words is its number of words ranked.
    worst = {words: table[table["model"] == qrm]["rank"].max() for words, table in ranked.items()}
    assert worst["all"] - worst["common"] == len(dropped & vocabularies["all"][qrm])
    assert_user_error(
        run_cli("analyze", "values", str(full), "--words", "some", "--out", str(tmp_path / "bad")),
        "--words 'some'",
    )


def test_cli_lexicons_lists_bundled(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("lexicons", "--json")
    assert result.exit_code == 0 and '"mfd2"' in result.stdout and '"value54"' in result.stdout


def test_cli_bad_input(tmp_path: Path, published_dir: Path, run_cli: Callable[..., CliResult]) -> None:
    csv = published_dir / "big2_rewards_nicolinho_QRM-Llama3.1-8B.csv"
    nonsense = tmp_path / "nonsense.csv"
    nonsense.write_text("word,category\nzzzz,A\nqqqq,B\n")
    assert_user_error(
        run_cli("analyze", "values", str(csv), "--lexicon", str(nonsense), "--out", str(tmp_path / "o")),
        "none of its 2 words",
    )
    no_response = tmp_path / "scores.csv"
    no_response.write_text("word,best_ever_one\nlove,1\n")
    assert_user_error(
        run_cli("import-scores", str(no_response), "--model", "m", "--out", str(tmp_path / "r")),
        "no `response` column",
    )
    unframed = tmp_path / "unframed.csv"
    unframed.write_text("response,my_prompt\nlove,1\n")
    assert_user_error(
        run_cli("import-scores", str(unframed), "--model", "m", "--out", str(tmp_path / "r2")),
        "pass --prompts FILE",
    )
    plain = tmp_path / "plain.yaml"
    plain.write_text("my_prompt: Anything?\n")
    assert_user_error(
        run_cli("analyze", "values", str(unframed), "--prompts", str(plain), "--out", str(tmp_path / "o2")),
        "has no framing",
    )
    assert_user_error(
        run_cli("analyze", "values", str(csv), "--compare", "families", "--out", str(tmp_path / "o3")),
        "needs at least 2 families",
    )
    assert_user_error(
        run_cli("analyze", "values", str(csv), "--family", "typo=llama", "--out", str(tmp_path / "o4")),
        "no analysed model",
    )


def test_console_script_exit_code_in_a_subprocess(tmp_path: Path) -> None:
    """The real process: one line on stderr, exit code 2, no traceback."""
    missing = tmp_path / "missing.csv"
    result = subprocess.run(
        [sys.executable, "-m", "rewardlens", "import-scores", str(missing), "-m", "m", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {missing}: no such file"]
