"""Vocabulary sweeps of tiny models: coverage, exact scores, resume after interruption, refusal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rewardlens.errors import UserError
from rewardlens.jobs.sweep import execute_sweep, prepare_sweep, run_sweep
from rewardlens.prompts import prompts_from_texts
from rewardlens.runs import load_run, read_manifest, shard_files
from rewardlens.scorers import load_scorer

PROMPTS = prompts_from_texts(["What, in one word, is the best thing ever?", "Worst thing?"])


@pytest.fixture(scope="module")
def reward_scorer(tiny_model_dir: Callable[..., Path]) -> Any:
    return load_scorer(str(tiny_model_dir("llama", "reward")), device="cpu")


@pytest.fixture(scope="module")
def lm_scorer(tiny_model_dir: Callable[..., Path]) -> Any:
    return load_scorer(str(tiny_model_dir("gemma2", "lm")), device="cpu")


def _special_ids(tokenizer: Any) -> set[int]:
    return set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)


def test_full_sweep_covers_every_non_special_id_once_per_prompt(reward_scorer: Any, tmp_path: Path) -> None:
    summary = run_sweep(reward_scorer, PROMPTS, tmp_path, shard_size=64, batch_size=32)
    frame = load_run(tmp_path)
    tokenizer = reward_scorer.tokenizer
    expected = set(range(len(tokenizer))) - _special_ids(tokenizer)
    assert summary.complete and summary.rows == len(frame) == len(expected) * len(PROMPTS)
    for prompt in PROMPTS:
        ids = frame.loc[frame["prompt_id"] == prompt.id, "token_id"]
        assert ids.is_unique and set(ids) == expected
    manifest = read_manifest(tmp_path)
    assert manifest["rows"] == manifest["rows_expected"] and manifest["complete"]
    assert manifest["prompts"] == [p.to_dict() for p in PROMPTS] and manifest["kind"] == "reward"


def test_sweep_scores_are_the_exact_single_token_conversations(reward_scorer: Any, tmp_path: Path) -> None:
    run_sweep(reward_scorer, PROMPTS[:1], tmp_path, tokens="40:60", shard_size=7, batch_size=5)
    frame = load_run(tmp_path)
    reference = reward_scorer.score_token_ids(PROMPTS[0].text, frame["token_id"].tolist(), engine="reference")
    np.testing.assert_allclose(frame["score"].to_numpy(), reference, atol=1e-4)


def test_language_model_sweep_equals_reference_log_probabilities(lm_scorer: Any, tmp_path: Path) -> None:
    calls: list[str] = []
    original = lm_scorer.first_token_logprobs

    def counted(prompt: str) -> np.ndarray:
        calls.append(prompt)
        return original(prompt)

    lm_scorer.first_token_logprobs = counted
    try:
        run_sweep(lm_scorer, PROMPTS, tmp_path, shard_size=50)
    finally:
        del lm_scorer.first_token_logprobs
    assert calls == [p.text for p in PROMPTS]  # one forward pass per prompt, not one per token
    frame = load_run(tmp_path)
    for prompt in PROMPTS:
        rows = frame[frame["prompt_id"] == prompt.id]
        reference = lm_scorer.score_token_ids(prompt.text, rows["token_id"].tolist(), engine="reference")
        np.testing.assert_allclose(rows["score"].to_numpy(), reference, atol=1e-4)
    assert read_manifest(tmp_path)["score_definition"].startswith("log p(first response token")


class Interrupt(Exception):
    pass


def test_interrupted_sweep_resumes_to_the_uninterrupted_rows(reward_scorer: Any, tmp_path: Path) -> None:
    options: dict[str, Any] = {"tokens": "all", "shard_size": 40, "batch_size": 16}
    run_sweep(reward_scorer, PROMPTS, tmp_path / "whole", **options)
    whole = load_run(tmp_path / "whole")

    plan = prepare_sweep(reward_scorer, PROMPTS, tmp_path / "cut", **options)
    real = reward_scorer.score_token_ids
    scored: list[int] = []

    def failing(*args: Any, **kwargs: Any) -> np.ndarray:
        if len(scored) == 5:
            raise Interrupt  # dies in the middle of the sixth shard
        scored.append(1)
        return real(*args, **kwargs)

    reward_scorer.score_token_ids = failing
    try:
        with pytest.raises(Interrupt):
            execute_sweep(plan)
    finally:
        del reward_scorer.score_token_ids
    assert len(shard_files(tmp_path / "cut")) == 5
    again = prepare_sweep(reward_scorer, PROMPTS, tmp_path / "cut", **options)
    assert again.store.resumed and len(again.todo) == len(again.shards) - 5
    summary = execute_sweep(again)
    assert summary.complete and summary.rows_written == len(whole) - again.rows_done
    pd.testing.assert_frame_equal(load_run(tmp_path / "cut"), whole, check_exact=False, atol=1e-6)
    # A finished run run again scores nothing.
    assert run_sweep(reward_scorer, PROMPTS, tmp_path / "cut", **options).rows_written == 0


def test_resume_keeps_the_shard_layout_it_started_with(reward_scorer: Any, tmp_path: Path) -> None:
    run_sweep(reward_scorer, PROMPTS[:1], tmp_path, tokens="10:50", shard_size=10)
    lost = shard_files(tmp_path)[1]
    lost.unlink()
    resumed = run_sweep(reward_scorer, PROMPTS[:1], tmp_path, tokens="10:50", shard_size=7)
    assert resumed.rows_written == 10 and resumed.complete
    assert [p.name for p in shard_files(tmp_path)][1] == lost.name and len(shard_files(tmp_path)) == 4
    assert list(load_run(tmp_path)["token_id"]) == list(range(10, 50))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prompts": PROMPTS[:1]}, "another prompt set"),
        ({"tokens": "words"}, "another tokens"),
        ({"include_special": True}, "another include special"),
    ],
)
def test_a_directory_with_another_run_is_refused(
    reward_scorer: Any, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    run_sweep(reward_scorer, PROMPTS, tmp_path, tokens="all", shard_size=200)
    arguments = {"prompts": PROMPTS, "tokens": "all", "include_special": False, **change}
    prompts = arguments.pop("prompts")
    with pytest.raises(UserError, match=message):
        run_sweep(reward_scorer, prompts, tmp_path, **arguments)
    replaced = run_sweep(reward_scorer, prompts, tmp_path, overwrite=True, **arguments)
    assert replaced.complete and len(load_run(tmp_path)) == replaced.rows_expected


def test_another_model_is_refused(reward_scorer: Any, lm_scorer: Any, tmp_path: Path) -> None:
    run_sweep(reward_scorer, PROMPTS[:1], tmp_path, tokens="0:20")
    with pytest.raises(UserError, match="another model spec"):
        run_sweep(lm_scorer, PROMPTS[:1], tmp_path, tokens="0:20")


def test_prompt_metadata_does_not_make_another_run(reward_scorer: Any, tmp_path: Path) -> None:
    from dataclasses import replace

    run_sweep(reward_scorer, PROMPTS, tmp_path, tokens="0:20")
    framed = [replace(prompt, framing="positive") for prompt in PROMPTS]
    assert run_sweep(reward_scorer, framed, tmp_path, tokens="0:20").rows_written == 0
    renamed = [replace(PROMPTS[0], id="renamed"), PROMPTS[1]]
    with pytest.raises(UserError, match="another prompt set"):
        run_sweep(reward_scorer, renamed, tmp_path, tokens="0:20")


def test_sweep_from_a_model_spec_refuses_another_run_before_loading(
    tiny_model_dir: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = str(tiny_model_dir("llama", "reward"))
    summary = run_sweep(model, PROMPTS[:1], tmp_path, tokens="0:20", device="cpu")
    assert summary.complete and read_manifest(tmp_path)["model_spec"] == model

    import rewardlens.scorers

    def no_loading(*_: Any, **__: Any) -> None:
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(rewardlens.scorers, "load_scorer", no_loading)
    with pytest.raises(UserError, match="another tokens"):
        run_sweep(model, PROMPTS[:1], tmp_path, tokens="0:30", device="cpu")


def test_ids_past_the_model_embeddings_are_left_out_and_recorded(
    tiny_model_dir: Callable[..., Path], tmp_path: Path
) -> None:
    scorer = load_scorer(str(tiny_model_dir("qwen2", "reward")), device="cpu")
    rows = scorer.model.get_input_embeddings().num_embeddings
    scorer.tokenizer.add_tokens(["<a_token_without_embedding>"])
    assert len(scorer.tokenizer) == rows + 1
    summary = run_sweep(scorer, PROMPTS[:1], tmp_path, include_special=True)
    assert summary.complete and set(load_run(tmp_path)["token_id"]) == set(range(rows))
    assert read_manifest(tmp_path)["ids_without_embedding"] == [rows]
