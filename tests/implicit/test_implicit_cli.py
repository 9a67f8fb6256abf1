"""`rewardlens implicit` end to end, and bad input: one line on stderr, exit code 2."""

from __future__ import annotations

import json

import pytest

PROMPT = "What, in one word, is the greatest thing ever?"


def _error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_cli_vocab_run_then_top_and_runs(run_cli, tiny_model_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    policy, reference = tiny_model_dir("llama", "lm"), tiny_model_dir("qwen2", "lm")
    out = tmp_path / "run"
    result = run_cli(
        "implicit", "--policy", policy, "--reference", reference, "-p", PROMPT, "-p", "Hi there",
        "--vocab", "--out", out, "--device", "cpu", "--json",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["complete"] and summary["rows"] == 2 * summary["alignment"]["n_shared_texts"]
    top = run_cli("top", out, "--k", "5", "--json")
    assert top.exit_code == 0, top.stderr
    records = json.loads(top.stdout)
    assert len(records) == 5
    scores = [record["score"] for record in records]
    assert scores == sorted(scores, reverse=True)
    from rewardlens.runs import load_run

    frame = load_run(out)
    best = frame.groupby("token_id")["score"].mean().sort_values(ascending=False)
    assert records[0]["token_id"] == int(best.index[0])
    listed = run_cli("runs", out, "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["kind_of_run"] == "implicit"
    tokens = run_cli("analyze", "tokens", out, "--out", tmp_path / "tokens", "--k", "3", "--no-figures")
    assert tokens.exit_code == 0, tokens.stderr
    assert (tmp_path / "tokens" / "top_bottom.csv").is_file()


def test_cli_lexicon_run_prints_the_summary(run_cli, tiny_model_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    words = tmp_path / "w.csv"
    words.write_text("word,category\nlove,Communion\npower,Agency\n", encoding="utf-8")
    policy = tiny_model_dir("llama", "lm")
    result = run_cli(
        "implicit", "--policy", policy, "--reference", policy, "-p", PROMPT, "--lexicon", words,
        "--out", tmp_path / "run", "--device", "cpu", "--measure", "mwlr",
    )
    assert result.exit_code == 0, result.stderr
    assert "2 / 2 rows (complete)" in result.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--vocab"),
        (["--vocab", "--lexicon", "big2-nouns"], "not both"),
        (["--vocab", "--measure", "ratio"], "unknown measure"),
        (["--vocab", "--beta", "0"], "--beta"),
        (["--vocab", "--reference-template", "nosuch.jinja"], "--reference-template"),
        (["--vocab", "--align", "id"], "same tokenizer"),
        (["--vocab", "--align", "auto"], "unknown alignment 'auto' (use text, id)"),
        (["--vocab", "--text-rule", "fuzzy"], "text rule"),
    ],
)
def test_cli_bad_options(run_cli, tiny_model_dir, tmp_path, extra, message) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(
        "implicit", "--policy", tiny_model_dir("llama", "lm"), "--reference", tiny_model_dir("qwen2", "lm"),
        "-p", PROMPT, "--out", tmp_path / "run", "--device", "cpu", *extra,
    )
    assert message in _error_line(result)


@pytest.mark.parametrize("role", ["policy", "reference"])
def test_cli_refuses_a_reward_model(run_cli, tiny_model_dir, tmp_path, role: str) -> None:  # type: ignore[no-untyped-def]
    models = {"policy": tiny_model_dir("llama", "lm"), "reference": tiny_model_dir("llama", "lm")}
    models[role] = tiny_model_dir("llama", "reward")
    result = run_cli(
        "implicit", "--policy", models["policy"], "--reference", models["reference"], "-p", PROMPT,
        "--vocab", "--out", tmp_path / "run", "--device", "cpu",
    )
    line = _error_line(result)
    assert f"the {role} model" in line and "not a causal language model" in line
    assert not (tmp_path / "run" / "_run.json").exists()


def test_cli_policy_without_chat_template(run_cli, tiny_model_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bare = tiny_model_dir("gemma2", "lm", chat_template=False)
    result = run_cli(
        "implicit", "--policy", bare, "--reference", bare, "-p", PROMPT, "--vocab", "--out", tmp_path / "r",
        "--device", "cpu",
    )
    assert "--policy-template" in _error_line(result)
    fixed = run_cli(
        "implicit", "--policy", bare, "--reference", bare, "-p", PROMPT, "--vocab", "--out", tmp_path / "r",
        "--device", "cpu", "--policy-template", "plain",
    )
    assert fixed.exit_code == 0, fixed.stderr


def test_cli_empty_prompts(run_cli, tiny_model_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    policy = tiny_model_dir("llama", "lm")
    common = ("implicit", "--policy", policy, "--reference", policy, "--vocab", "--out", tmp_path / "r")
    assert "prompt" in _error_line(run_cli(*common))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    _error_line(run_cli(*common, "--prompts", empty))


def test_cli_refuses_another_run_in_out(run_cli, tiny_model_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    policy = tiny_model_dir("llama", "lm")
    common = ("implicit", "--policy", policy, "--reference", policy, "-p", PROMPT, "--vocab", "--out", tmp_path / "r")
    assert run_cli(*common, "--device", "cpu").exit_code == 0
    assert "another run" in _error_line(run_cli(*common, "--beta", "2"))
    assert run_cli(*common, "--beta", "2", "--overwrite", "--device", "cpu").exit_code == 0
