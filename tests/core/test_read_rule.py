"""Scores are read where the model's own forward reads them; checkpoints without their head are refused."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlens.errors import UserError
from rewardlens.models.read_rule import ReadRule
from rewardlens.scorers import load_scorer

PROMPT = "What, in one word, is the greatest thing ever?"


def test_rules_on_ids() -> None:
    pad = 9
    assert ReadRule("rightmost-non-pad", pad).position([1, 5, 9, 7, 9, 9]) == 3
    assert ReadRule("rightmost-non-pad", pad).position([9, 9]) == 0  # transformers' argmax over an all-pad row
    assert ReadRule("rightmost-non-pad", None).position([1, 9, 9]) == 2
    assert ReadRule("before-first-pad", pad).position([1, 5, 9, 7, 9]) == 1
    assert ReadRule("before-first-pad", pad).position([1, 5, 7]) == 2
    assert ReadRule("before-first-pad", pad).position([9, 5, 7]) == 2  # -1 modulo the length, as published


@pytest.mark.parametrize("engine", ["reference", "cached", "batched"])
def test_pad_equal_to_end_of_turn_reads_the_token_before_it(
    tiny_model_dir: Callable[..., Path], engine: str
) -> None:
    from transformers import AutoModelForSequenceClassification

    directory = tiny_model_dir("llama", "reward")  # Llama-3 style: pad = eos = <|eot_id|>
    scorer = load_scorer(str(directory), device="cpu", dtype="float32")
    eot = scorer.tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert scorer.loaded.model.config.pad_token_id == eot and scorer.template.suffix_ids[-1] == eot
    own = AutoModelForSequenceClassification.from_pretrained(str(directory)).eval()
    token_ids = [i for i in range(0, len(scorer.tokenizer), 7)] + [eot]  # the end of turn as a response too
    requests = scorer.token_requests(PROMPT, token_ids) + scorer.text_requests(PROMPT, ["love", "power and wealth"])
    scores = scorer.score_requests(requests, engine=engine, batch_size=5)
    with torch.no_grad():
        expected = np.array([float(own(input_ids=torch.tensor([r.ids])).logits[0, 0]) for r in requests])
        at_end = np.array(
            [float(own.score(own.model(input_ids=torch.tensor([r.ids])).last_hidden_state[0, -1])[0]) for r in requests]
        )
    np.testing.assert_allclose(scores, expected, atol=1e-4, rtol=0)
    assert np.abs(at_end - expected).max() > 1e-2  # reading at the end-of-turn token would be another score
    assert scorer.describe()["read_rule"] == {"rule": "rightmost-non-pad", "pad_token_id": eot}


def _retarget(source: Path, target: Path, architectures: list[str]) -> Path:
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config["architectures"] = architectures
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_a_checkpoint_without_its_score_head_is_refused(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], run_cli: Callable[..., object]
) -> None:
    # A causal LM's weights under a sequence-classification architecture: transformers would add a random head.
    directory = _retarget(tiny_model_dir("llama", "lm"), tmp_path / "headless", ["LlamaForSequenceClassification"])
    with pytest.raises(UserError, match=r"lacks weights score\.weight"):
        load_scorer(str(directory), device="cpu")
    result = run_cli("score", "--model", directory, "-p", PROMPT, "-r", "love")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "score.weight" in result.stderr and "Traceback" not in result.stderr  # type: ignore[attr-defined]


def test_an_unknown_custom_architecture_is_refused_naming_what_is_supported(
    tmp_path: Path, tiny_model_dir: Callable[..., Path]
) -> None:
    directory = _retarget(tiny_model_dir("llama", "reward"), tmp_path / "custom", ["LlamaForFancyRewardModel"])
    with pytest.raises(UserError, match="LlamaForFancyRewardModel.*LlamaForRewardModelWithGating"):
        load_scorer(str(directory), device="cpu", kind="reward")


def test_bf16_models_score_with_a_float32_head(tiny_model_dir: Callable[..., Path]) -> None:
    """A bf16 head rounds the score to 8 bits of mantissa: a sweep collapses onto few distinct values."""
    scorer = load_scorer(str(tiny_model_dir("qwen2", "reward")), device="cpu", dtype="bfloat16")
    assert scorer.describe()["head_dtype"] == "float32" and scorer.describe()["dtype"] == "bfloat16"
    token_ids = list(range(len(scorer.tokenizer)))
    float32_head = scorer.score_token_ids(PROMPT, token_ids, engine="cached", batch_size=64)
    requests = scorer.token_requests(PROMPT, token_ids)
    backbone, head = scorer.loaded.model.model, scorer.loaded.model.score
    with torch.no_grad():
        bf16_head = []
        for request in requests:
            hidden = backbone(input_ids=torch.tensor([request.ids])).last_hidden_state[0]
            at = scorer.loaded.read_rule.position(request.ids)  # type: ignore[union-attr]
            bf16_head.append(float(torch.nn.functional.linear(hidden[at], head.weight.bfloat16())[0]))
    assert len(np.unique(float32_head)) >= 3 * len(np.unique(bf16_head))
