"""`rewardlens render`: the ids each response is scored as, their pieces and read position; exact vs published."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rewardlens.engine import ScoreRequest
from rewardlens.models.vocabulary import select_tokens
from rewardlens.render import load_render_subject, pipeline_table
from rewardlens.runs import load_run
from rewardlens.scorers import load_scorer

PROMPT = "What, in one word, is the greatest thing ever?"


def _lines(result: Any) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def _rightmost_not(ids: list[int], pad: int | None) -> int:
    """transformers' sequence-classification pooling, written out: the last index whose id is not the pad id."""
    non_pad = [index for index, token in enumerate(ids) if token != pad]
    return non_pad[-1] if non_pad else 0


def _published(tokenizer: Any, text: str) -> list[int]:
    """The published pipeline, written out with transformers alone: render as text, tokenize with specials."""
    conversation = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": text}]
    return list(tokenizer(tokenizer.apply_chat_template(conversation, tokenize=False))["input_ids"])


@pytest.mark.parametrize("arch", ["llama", "gemma2", "qwen2"])
def test_render_json_is_what_the_scorer_scores(
    arch: str, run_cli: Callable[..., Any], tiny_model_dir: Callable[..., Path]
) -> None:
    model = tiny_model_dir(arch, "reward")
    rows = _lines(
        run_cli("render", "--model", model, "-r", "love", "-r", " power and wealth", "--token-id", 70, "--json")
    )
    scorer = load_scorer(str(model), device="cpu")
    expected = scorer.text_requests(PROMPT, ["love", " power and wealth"]) + scorer.token_requests(PROMPT, [70])
    pad = scorer.model.config.pad_token_id
    assert [row["response"] for row in rows[:2]] == ["love", " power and wealth"]
    assert rows[2]["token_id"] == 70 and rows[2]["response"] == scorer.tokenizer.decode([70])
    for row, request in zip(rows, expected, strict=True):
        assert row["ids"] == request.ids and row["prompt_length"] == len(request.prompt_ids)
        assert row["pieces"] == [scorer.tokenizer.decode([i]) for i in row["ids"]]
        assert row["tokens"] == scorer.tokenizer.convert_ids_to_tokens(row["ids"])
        assert row["read_at"] == _rightmost_not(row["ids"], pad)
        assert row["read_token"] == row["pieces"][row["read_at"]]
        assert row["read_rule"] == {"rule": "rightmost-non-pad", "pad_token_id": pad, "from": "config"}
        assert row["read_rule"] == {**scorer.loaded.read_rule.describe(), "from": "config"}  # the engine's rule
    # pad = end of turn on the tiny Llama and Qwen tokenizers: the read skips the trailing end-of-turn token(s).
    if arch == "llama":
        assert rows[0]["ids"][-1] == pad and rows[0]["read_at"] == len(rows[0]["ids"]) - 2


def test_a_language_model_has_no_read_position(
    run_cli: Callable[..., Any], tiny_model_dir: Callable[..., Path]
) -> None:
    (row,) = _lines(run_cli("render", "--model", tiny_model_dir("gemma2", "lm"), "-r", "love", "--json"))
    scorer = load_scorer(str(tiny_model_dir("gemma2", "lm")), device="cpu")
    (request,) = scorer.text_requests(PROMPT, ["love"])
    assert row["ids"] == request.ids and row["read_at"] is None and row["read_token"] is None


def test_published_sequences_double_the_bos_on_llama(
    run_cli: Callable[..., Any], tiny_model_dir: Callable[..., Path]
) -> None:
    model = tiny_model_dir("llama", "reward")
    scorer = load_scorer(str(model), device="cpu")
    tokenizer, bos = scorer.tokenizer, scorer.tokenizer.bos_token_id
    the_id = tokenizer.convert_tokens_to_ids("Ġthe")
    args = ["render", "--model", model, "-r", " freedom", "--token-id", the_id, "--json"]
    exact, published = _lines(run_cli(*args)), _lines(run_cli(*args, "--sequences", "published"))
    for row in exact:
        assert row["ids"][:2] != [bos, bos] and row["ids"].count(bos) == 1
    for row in published:
        assert row["ids"][:2] == [bos, bos] and row["sequences"] == "published"
    assert published[0]["ids"] == _published(tokenizer, " freedom")
    assert published[1]["response"] == " the" and published[1]["ids"] == _published(tokenizer, " the")
    # The template's trim: " the" is scored as "the", not as the id asked for.
    assert exact[1]["ids"][exact[1]["prompt_length"]] == the_id
    assert the_id not in published[1]["ids"][published[1]["prompt_length"] :]


def test_score_accepts_published_sequences(run_cli: Callable[..., Any], tiny_model_dir: Callable[..., Path]) -> None:
    model = tiny_model_dir("llama", "reward")
    scorer = load_scorer(str(model), device="cpu", sequences="published")
    args = ["score", "--model", model, "-r", " freedom", "--json", "--device", "cpu"]
    (published,) = _lines(run_cli(*args, "--sequences", "published"))
    (exact,) = _lines(run_cli(*args))
    ids = _published(scorer.tokenizer, " freedom")
    (reference,) = scorer.score_requests([ScoreRequest.split(ids, ids[:3])], engine="reference")
    assert published["score"] == pytest.approx(reference, abs=1e-4)
    assert abs(published["score"] - exact["score"]) > 1e-3  # the second BOS changes what is scored


def test_a_published_sweep_records_its_sequences(
    run_cli: Callable[..., Any], tiny_model_dir: Callable[..., Path], tmp_path: Path
) -> None:
    model, out = tiny_model_dir("llama", "reward"), tmp_path / "run"
    args = ["sweep", "--model", model, "--out", out, "--prompt", PROMPT, "--tokens", "260:268", "--device", "cpu"]
    assert run_cli(*args, "--sequences", "published").exit_code == 0
    manifest = json.loads((out / "_run.json").read_text())
    assert manifest["sequences"] == "published" and manifest["template"]["sequences"] == "published"
    assert "published sequence" in manifest["score_definition"]
    refused = run_cli(*args)
    assert refused.exit_code == 2 and "another sequences" in refused.stderr
    frame = load_run(out)
    scorer = load_scorer(str(model), device="cpu", sequences="published")
    expected = scorer.score_token_ids(PROMPT, frame["token_id"].tolist(), engine="reference")
    np.testing.assert_allclose(frame["score"].to_numpy(), expected, atol=1e-4)


def _independent_counts(tokenizer: Any, exact_of: Callable[[int], list[int]]) -> dict[str, Any]:
    """The figures of `render --vocab`, computed token by token with transformers alone."""
    ids = select_tokens(tokenizer, "all", include_special=False)["token_id"].tolist()
    bos = tokenizer.bos_token_id
    published = {i: tuple(_published(tokenizer, tokenizer.decode([i]))) for i in ids}
    counts = Counter(published.values())
    differ = [i for i in ids if list(published[i]) != exact_of(i)]
    return {
        "tokens": len(ids),
        "differ": len(differ),
        "double_bos": sum(1 for i in differ if bos is not None and published[i][:2] == (bos, bos)),
        "collisions": sum(1 for i in ids if counts[published[i]] > 1),
        "collision_groups": sum(1 for c in counts.values() if c > 1),
        # The tiny templates trim (Llama) or keep (Gemma, Qwen) the response; Jinja's trim is str.strip.
        "trimmed_texts": sum(1 for i in differ if tokenizer.decode([i]) != tokenizer.decode([i]).strip()),
    }


@pytest.mark.parametrize("arch", ["llama", "gemma2", "qwen2"])
def test_vocab_figures_are_consistent_and_match_a_direct_count(
    arch: str, run_cli: Callable[..., Any], tiny_model_dir: Callable[..., Path]
) -> None:
    model = tiny_model_dir(arch, "reward")
    (summary,) = _lines(run_cli("render", "--model", model, "--vocab", "--json"))
    subject = load_render_subject(str(model))
    table = pipeline_table(subject.template, PROMPT)
    # Every differing id has a reason; trimmed and merged are disjoint.
    assert np.array_equal(table.differ, table.double_bos | table.trimmed | table.merged)
    assert not (table.trimmed & table.merged).any()
    assert summary == {"model": subject.name, "prompt": PROMPT, "date": "26 Jul 2024", **table.summary().to_dict()}

    direct = _independent_counts(subject.tokenizer, lambda i: subject.template.single_token_ids(PROMPT, i))
    for key in ("tokens", "differ", "double_bos", "collisions", "collision_groups"):
        assert summary[key] == direct[key], key
    trims = arch == "llama"
    assert summary["trimmed"] == (direct["trimmed_texts"] if trims else 0)
    if arch in ("llama", "gemma2"):  # templates that render the BOS the tokenizer adds again
        assert summary["double_bos"] == summary["tokens"] == summary["differ"]
    else:
        assert summary["double_bos"] == 0 and 0 < summary["differ"] < summary["tokens"]


def test_render_a_directory_holding_only_a_tokenizer(
    run_cli: Callable[..., Any], tiny_model_dir: Callable[..., Path], tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir("llama", "reward")))
    tokenizer.save_pretrained(tmp_path / "tok")
    assert not (tmp_path / "tok" / "config.json").exists()
    (row,) = _lines(run_cli("render", "--model", tmp_path / "tok", "--token-id", 70, "--json"))
    pad = tokenizer.pad_token_id
    assert row["read_rule"] == {"rule": "rightmost-non-pad", "pad_token_id": pad, "from": "tokenizer"}
    assert row["read_at"] == _rightmost_not(row["ids"], pad)
    (summary,) = _lines(run_cli("render", "--model", tmp_path / "tok", "--vocab", "--json"))
    assert summary["tokens"] == len(select_tokens(tokenizer))


def test_render_table_marks_the_read_position(run_cli: Callable[..., Any], tiny_model_dir: Callable[..., Path]) -> None:
    result = run_cli("render", "--model", tiny_model_dir("llama", "reward"), "-r", "love")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("<- read") == 1 and "rightmost-non-pad" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "nothing to render"),
        (("--vocab", "-r", "love"), "takes no --response"),
        (("--token-id", 100000), "outside the vocabulary"),
        (("-r", "love", "--sequences", "retokenized"), "use exact or published"),
    ],
)
def test_render_bad_input(
    args: tuple[Any, ...], fragment: str, run_cli: Callable[..., Any], tiny_model_dir: Callable[..., Path]
) -> None:
    result = run_cli("render", "--model", tiny_model_dir("qwen2", "reward"), *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_words_accepts_published_sequences_and_a_date(
    run_cli: Callable[..., Any], tiny_model_dir: Callable[..., Path], tmp_path: Path
) -> None:
    model, out = tiny_model_dir("llama", "reward"), tmp_path / "words"
    lexicon, prompts = tmp_path / "small.csv", tmp_path / "prompts.yaml"
    lexicon.write_text("word,category\nlove,Communion\npower,Agency\n")
    prompts.write_text(f"one: {PROMPT}\n")
    args = ["words", "--model", model, "--out", out, "--lexicon", lexicon, "--prompts", prompts, "--device", "cpu"]
    bad = run_cli(*args, "--date", "soon")
    assert bad.exit_code == 2 and "is not a date" in bad.stderr and not out.exists()
    assert run_cli(*args, "--sequences", "published", "--date", "2025-01-02").exit_code == 0
    manifest = json.loads((out / "_run.json").read_text())
    assert manifest["sequences"] == "published" and manifest["date"] == "02 Jan 2025"
    rows = load_run(out).set_index("response")["score"]
    scorer = load_scorer(str(model), device="cpu")
    for word in ("love", "power"):
        ids = _published(scorer.tokenizer, word)
        (expected,) = scorer.score_requests([ScoreRequest.split(ids, ids[:3])], engine="reference")
        assert rows[word] == pytest.approx(expected, abs=1e-4)
