"""`rewardlens score` and every bad input of the core issue: one clear line, exit code 2."""

from __future__ import annotations

import json

import pytest
import torch


def test_score_json(run_cli, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model_dir("qwen2", "reward")
    result = run_cli("score", "--model", model, "-r", "love", "-r", "power and wealth", "--json", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["response"] for r in rows] == ["love", "power and wealth"]
    reference = run_cli("score", "--model", model, "-r", "love", "--json", "--engine", "reference")
    assert json.loads(reference.stdout)["score"] == pytest.approx(rows[0]["score"], abs=1e-4)


def test_score_table_and_responses_file(run_cli, tiny_model_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    responses = tmp_path / "r.txt"
    responses.write_text("love\n\nfreedom\n")
    result = run_cli("score", "--model", tiny_model_dir("llama", "lm"), "--responses-file", responses)
    assert result.exit_code == 0, result.stderr
    assert "freedom" in result.stdout and "log p" in result.stdout


def _assert_user_error(result, fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_path_that_does_not_exist(run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _assert_user_error(run_cli("score", "--model", tmp_path / "nope", "-r", "x"), "does not exist")


def test_hub_id_not_cached(run_cli, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _assert_user_error(run_cli("score", "--model", "nobody/no-such-rm", "-r", "x"), "nobody/no-such-rm")


def test_corrupt_gguf(run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 20)
    _assert_user_error(run_cli("score", "--model", broken, "-r", "x"), "cannot load model")


def test_neither_classifier_nor_causal_lm(run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    BertModel(config).save_pretrained(tmp_path / "bert")
    _assert_user_error(run_cli("score", "--model", tmp_path / "bert", "-r", "x"), "neither")


def test_kind_reward_without_score_head(run_cli, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("score", "--model", tiny_model_dir("llama", "lm"), "--kind", "reward", "-r", "x")
    _assert_user_error(result, "no score head")


def test_empty_response_list(run_cli, tiny_model_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    _assert_user_error(run_cli("score", "--model", tiny_model_dir("llama", "reward"), "--responses-file", empty),
                       "no responses")


def test_longer_than_context(run_cli, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    long_response = "love " * 400
    result = run_cli("score", "--model", tiny_model_dir("llama", "reward"), "-r", long_response)
    _assert_user_error(result, "longer than the model's context")


def test_no_chat_template(run_cli, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("score", "--model", tiny_model_dir("gemma2", "lm", chat_template=False), "-r", "x")
    _assert_user_error(result, "--template plain")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(run_cli, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("score", "--model", tiny_model_dir("llama", "reward"), "--device", "cuda", "-r", "x")
    _assert_user_error(result, "no CUDA device")


def test_unknown_engine(run_cli, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    _assert_user_error(run_cli("score", "--model", tiny_model_dir("llama", "reward"), "--engine", "x", "-r", "x"),
                       "unknown engine")
