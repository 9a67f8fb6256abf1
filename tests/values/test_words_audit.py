"""Word runs and the audit end to end on tiny random models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rewardlens.errors import UserError
from rewardlens.jobs.words import run_words, word_table
from rewardlens.lexicons import load_lexicon
from rewardlens.prompts import load_prompts
from rewardlens.runs import load_run, read_manifest
from rewardlens.scorers import load_scorer
from rewardlens.scorers.words import score_words
from rewardlens.study.audit import run_audit


@pytest.fixture
def small_lexicon(tmp_path: Path) -> Path:
    path = tmp_path / "small.csv"
    path.write_text(
        "word,category\nlove,Communion\nfamily,Communion\npower,Agency\nsuccess,Agency\nkindness,Communion\n"
        "wealth,Agency\ntrust,Communion;Agency\n"
    )
    return path


@pytest.fixture
def two_prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.yaml"
    path.write_text(
        "best_ever_one: What, in one word, is the best thing ever?\n"
        "worst_world_please: What is the worst thing in the world? Please answer in one word only.\n"
    )
    return path


def test_word_run_rows_scores_and_resume(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], small_lexicon: Path, two_prompts: Path
) -> None:
    scorer = load_scorer(str(tiny_model_dir("llama", "reward")))
    prompts = load_prompts(two_prompts)
    out = tmp_path / "words"
    summary = run_words(scorer, str(small_lexicon), prompts, out)
    assert summary.complete and summary.rows == 7 * 2
    rows = load_run(out)
    assert set(rows.columns) >= {"model", "prompt_id", "prompt", "response", "score", "category"}
    assert rows.loc[rows["response"] == "trust", "category"].unique().tolist() == ["Communion;Agency"]
    # The truth: the reference engine on the full conversation of each word.
    for prompt in prompts:
        got = rows[rows["prompt_id"] == prompt.id].set_index("response")["score"]
        reference = scorer.score_texts(prompt.text, got.index.tolist(), engine="reference")
        np.testing.assert_allclose(got.to_numpy(), reference, atol=1e-4)
    # Kill-and-resume: a missing shard is rescored, the finished one is not touched.
    shards = sorted((out / "shards").glob("*.parquet"))
    kept_mtime = shards[0].stat().st_mtime_ns
    shards[1].unlink()
    again = run_words(scorer, str(small_lexicon), prompts, out)
    assert again.rows_written == 7 and again.complete
    assert shards[0].stat().st_mtime_ns == kept_mtime
    pd.testing.assert_frame_equal(load_run(out), rows)
    assert read_manifest(out)["kind_of_run"] == "words"


def test_language_model_shortcut_equals_the_engine(tiny_model_dir: Callable[..., Path]) -> None:
    scorer = load_scorer(str(tiny_model_dir("qwen2", "lm")))
    texts = ["love", "family", "power", "success", "kindness", "a", "the", "hello world"]
    prompt = "What, in one word, is the best thing ever?"
    got = score_words(scorer, prompt, texts)
    reference = scorer.score_texts(prompt, texts, engine="reference")
    np.testing.assert_allclose(got, reference, atol=1e-4)


def test_word_run_refuses_another_run_and_wildcards(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], small_lexicon: Path, two_prompts: Path
) -> None:
    scorer = load_scorer(str(tiny_model_dir("llama", "reward")))
    out = tmp_path / "words"
    run_words(scorer, str(small_lexicon), load_prompts(two_prompts), out)
    with pytest.raises(UserError, match="another run"):
        run_words(str(tiny_model_dir("llama", "reward")), "big2-nouns", load_prompts(two_prompts), out)
    wild = tmp_path / "wild.dic"
    wild.write_text("%\n1\tCare\n%\nkind*\t1\n")
    with pytest.raises(UserError, match="wildcard"):
        word_table(load_lexicon(wild))


def test_audit_end_to_end_and_resume(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], small_lexicon: Path, two_prompts: Path
) -> None:
    model = str(tiny_model_dir("llama", "reward"))
    out = tmp_path / "audit"
    phases: list[str] = []

    def phase(description: str, total: int, done: int) -> Callable[[int], None]:
        phases.append(description)
        return lambda n: None

    result = run_audit(
        [model], out, lexicons=[str(small_lexicon)], tokens="0:40", word_prompts=str(two_prompts),
        n_permutations=50, phase=phase,
    )
    assert result.models[0].loaded
    assert any("vocabulary sweep" in p for p in phases) and any("words" in p for p in phases)
    html = result.report.read_text()
    assert "data:image/png;base64," in html and "Optimal and pessimal tokens" in html
    assert "What, in one word, is the greatest thing ever?" in html  # optpess3 prompt
    sweep = load_run(result.models[0].sweep_dir)
    assert sweep["token_id"].max() < 40 and sweep.groupby("prompt_id").size().nunique() == 1  # ids 0..39
    for lexicon, directory in result.value_dirs.items():
        assert (directory / "values.png").is_file() and (directory / "summary.csv").is_file(), lexicon
        conclusions = pd.read_csv(directory / "conclusions.csv")  # written by write_value_analysis
        assert set(conclusions["unit"]) == {"word"} and set(conclusions["scope"]) == {result.models[0].name}
    # The report states the conclusions with their units, instead of the old permutation-test rows.
    assert html.count("Conclusions, each at the unit it is tested at") == len(result.value_dirs)
    assert "Within each model (unit: word;" in html and "<th>generalizes_to</th>" in html
    assert "Permutation tests" not in html
    # One model, one family: categories are compared within the model, and the mixed model is skipped.
    tests = pd.read_csv(result.value_dirs["big2-nouns"] / "tests.csv")
    assert set(tests["comparison"]) == {"categories"}
    assert any("mixed model skipped" in note for note in result.notes)
    again = run_audit(
        [model], out, lexicons=[str(small_lexicon)], tokens="0:40", word_prompts=str(two_prompts),
        n_permutations=50,
    )
    assert not again.models[0].loaded  # every run was complete: nothing loaded, nothing rescored


def test_audit_of_two_models_adds_the_token_analyses(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], small_lexicon: Path, two_prompts: Path
) -> None:
    models = [str(tiny_model_dir("llama", "reward")), str(tiny_model_dir("qwen2", "reward"))]
    result = run_audit(
        models, tmp_path / "audit", lexicons=[str(small_lexicon)], tokens="0:60", word_prompts=str(two_prompts),
        n_permutations=50,
    )
    agreement = pd.read_csv(tmp_path / "audit" / "tokens" / "agreement.csv")
    assert len(agreement) >= 1 and agreement["kendall_tau"].between(-1, 1).all()
    html = result.report.read_text()
    assert "Token-level analyses" in html and html.count("data:image/png;base64,") >= 3
