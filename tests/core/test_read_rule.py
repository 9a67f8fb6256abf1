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


# A checkpoint whose forward lives in its own modeling file (as URM's does): two heads that only the forward combines.
REMOTE_MODELING = """
import torch
from transformers import LlamaModel, LlamaPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutputWithPast


class TwoHeadRM(LlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.score = torch.nn.Linear(config.hidden_size, 4, bias=False)
        self.weights = torch.nn.Linear(config.hidden_size, 4, bias=False)
        self.post_init()

    def forward(self, input_ids=None, **kwargs):
        hidden = self.model(input_ids=input_ids).last_hidden_state[:, -1]
        combined = (self.score(hidden) * torch.softmax(self.weights(hidden), dim=-1)).sum(-1, keepdim=True)
        return SequenceClassifierOutputWithPast(logits=combined)
"""


def _remote_checkpoint(tmp_path: Path, source: Path, modeling: str) -> Path:
    from transformers import AutoModelForSequenceClassification

    directory = _retarget(source, tmp_path / "remote", ["TwoHeadRM"])
    (directory / "modeling_two_head.py").write_text(modeling)
    config = json.loads((directory / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_two_head.TwoHeadRM"}
    (directory / "config.json").write_text(json.dumps(config))
    if "import torch" in modeling and "no_such_module" not in modeling:
        torch.manual_seed(1)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(directory), trust_remote_code=True, ignore_mismatched_sizes=True
        )
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_(0.0, 0.3)
        model.save_pretrained(directory)
    return directory


def test_remote_code_scores_through_its_own_forward_in_every_engine(
    tmp_path: Path, tiny_model_dir: Callable[..., Path]
) -> None:
    directory = _remote_checkpoint(tmp_path, tiny_model_dir("llama", "reward"), REMOTE_MODELING)
    with pytest.raises(UserError, match="TwoHeadRM.*--trust-remote-code"):
        load_scorer(str(directory), device="cpu")
    scorer = load_scorer(str(directory), device="cpu", trust_remote_code=True)
    assert scorer.describe()["head"] == "remote-code"
    requests = scorer.token_requests(PROMPT, range(0, 60, 5)) + scorer.text_requests(PROMPT, ["love"])
    with torch.no_grad():
        own = np.array([float(scorer.model(input_ids=torch.tensor([r.ids])).logits[0, 0]) for r in requests])
        first_output = np.array(  # what a linear-head reader would take: score(h)[:, 0]
            [float(scorer.model.score(scorer.model.model(input_ids=torch.tensor([r.ids])).last_hidden_state[0, -1])[0])
             for r in requests]
        )
    assert np.abs(first_output - own).max() > 1e-2
    for engine in ("reference", "cached", "batched"):
        np.testing.assert_allclose(scorer.score_requests(requests, engine=engine), own, atol=1e-5, rtol=0)


def test_remote_code_that_does_not_import_is_one_line(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], run_cli: Callable[..., object]
) -> None:
    broken = "from transformers.models.llama.modeling_llama import no_such_module\n" + REMOTE_MODELING
    directory = _remote_checkpoint(tmp_path, tiny_model_dir("llama", "reward"), broken)
    result = run_cli("score", "--model", directory, "--trust-remote-code", "-p", PROMPT, "-r", "love")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "does not import" in result.stderr and "no_such_module" in result.stderr  # type: ignore[attr-defined]
