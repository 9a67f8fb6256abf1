"""Training tiny reward models: the loss falls, the planted preference is learnt, checkpoints load, run.json."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from planted import AGENCY, COMMUNION, planted_pairs, write_jsonl

from rewardlens.errors import UserError
from rewardlens.scorers import load_scorer
from rewardlens.training import TrainingConfig, load_preference_data, train_reward_model
from rewardlens.training.train import TrainResult, tokenize_pairs

TINY = dict(epochs=3, learning_rate=1e-2, batch_size=8, max_length=64, log_every=1)


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """A tiny Llama (pad token = end of turn) trained on 48 pairs that prefer communion words."""
    root = tmp_path_factory.mktemp("trained")
    data = write_jsonl(root / "pairs.jsonl", planted_pairs(48, seed=0))
    config = TrainingConfig(**TINY, checkpoint_every=6, seed=0)  # type: ignore[arg-type]
    return train_reward_model(str(tiny_model_dir("llama", "lm")), data, root / "rm", config)


def held_out_accuracy(checkpoint: Path, pairs: list[dict[str, str]]) -> float:
    scorer = load_scorer(str(checkpoint))
    wins = [
        scorer.score_texts(pair["prompt"], [pair["chosen"], pair["rejected"]]) @ np.array([1.0, -1.0]) > 0
        for pair in pairs
    ]
    return float(np.mean(wins))


def test_loss_falls_and_held_out_pairs_are_ranked(trained: TrainResult) -> None:
    losses = [entry["loss"] for entry in trained.manifest["losses"]]
    assert len(losses) == trained.manifest["steps"] == 18
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1
    # New filler contexts and prompt choices (another seed): chance is 0.5.
    held_out = planted_pairs(40, seed=123)
    assert held_out_accuracy(trained.final_checkpoint, held_out) >= 0.75


def test_every_checkpoint_is_a_reward_model_directory(trained: TrainResult) -> None:
    assert [path.name for path in trained.checkpoints] == ["step-000006", "step-000012", "step-000018"]
    for checkpoint in trained.checkpoints:
        scorer = load_scorer(str(checkpoint))
        assert scorer.kind == "reward"
        assert scorer.model.config.num_labels == 1
        assert scorer.tokenizer.pad_token_id is not None
        assert scorer.tokenizer.chat_template  # saved with the checkpoint, so `words` and `sweep` need no --template
        assert not list(checkpoint.glob("*.partial"))
    # Later checkpoints separate the categories more: the preference appears during training.
    gaps = []
    for checkpoint in trained.checkpoints:
        scores = load_scorer(str(checkpoint)).score_texts("What is the best thing in the world?", COMMUNION + AGENCY)
        gaps.append(scores[: len(COMMUNION)].mean() - scores[len(COMMUNION) :].mean())
    assert gaps[-1] > 0 and gaps[-1] > gaps[0]


def test_run_json_records_data_recipe_versions_and_losses(trained: TrainResult) -> None:
    manifest = json.loads((trained.out / "run.json").read_text())
    data_file = Path(manifest["data"]["source"])
    assert manifest["kind_of_run"] == "training" and manifest["complete"] is True
    assert manifest["data"]["sha256"] == hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert manifest["pairs_used"] == 48 and manifest["pairs_too_long"] == 0
    assert manifest["hyperparameters"]["learning_rate"] == 1e-2
    assert manifest["hyperparameters"]["batch_size"] == 8 and manifest["hyperparameters"]["lora"] is None
    assert {"trl", "peft", "torch", "transformers", "rewardlens"} <= set(manifest["versions"])
    assert manifest["device"] == "cpu" and manifest["dtype"] == "float32"
    assert [c["step"] for c in manifest["checkpoints"]] == [6, 12, 18]
    assert [entry["step"] for entry in manifest["losses"]] == list(range(1, 19))
    assert all(np.isfinite(entry["loss"]) for entry in manifest["losses"])
    assert not (trained.out / ".trainer").exists()
    with pytest.raises(UserError, match="already holds a training run"):
        train_reward_model("no/such-base", "no-such-data.jsonl", trained.out)  # refused before loading anything


def test_training_reads_the_reward_where_scoring_reads_it(trained: TrainResult) -> None:
    """Llama pads with its end-of-turn token: the checkpoint's own (HF) pooling reads the token before it, and so
    do training (TRL runs that forward) and scoring; reading at the last token would be another reward."""
    scorer = load_scorer(str(trained.final_checkpoint))
    prompt = "What is the best thing in the world?"
    texts = ["love", "quick brown fox power"]
    ids = [scorer.template.conversation_ids(prompt, text) for text in texts]
    assert ids[0][-1] == scorer.tokenizer.pad_token_id  # the trap is there
    width = max(map(len, ids))
    input_ids = torch.tensor([row + [scorer.tokenizer.pad_token_id] * (width - len(row)) for row in ids])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])
    expected = scorer.score_texts(prompt, texts)
    with torch.no_grad():
        pooled_by_hf = scorer.model(input_ids=input_ids, attention_mask=mask).logits[:, 0].numpy()
        hidden = scorer.model.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        at_last = [float(scorer.model.score(hidden[row, len(ids[row]) - 1])[0]) for row in range(len(ids))]
    np.testing.assert_allclose(pooled_by_hf, expected, atol=1e-5)
    assert np.abs(np.asarray(at_last) - expected).max() > 1e-3


def test_same_seed_same_weights_and_lora_checkpoints_merge(
    tiny_model_dir: Callable[..., Path], planted_jsonl: Callable[..., Path], tmp_path: Path
) -> None:
    base = str(tiny_model_dir("gemma2", "lm"))
    data = planted_jsonl(24)
    config = TrainingConfig(**{**TINY, "epochs": 1, "learning_rate": 3e-2}, lora=(4, 8), seed=5)  # type: ignore[arg-type]
    first = train_reward_model(base, data, tmp_path / "a", config)
    again = train_reward_model(base, data, tmp_path / "b", config)
    other = train_reward_model(base, data, tmp_path / "c", TrainingConfig(**{**TINY, "epochs": 1}, seed=6))  # type: ignore[arg-type]
    weights = [load_scorer(str(result.final_checkpoint)).model.state_dict() for result in (first, again, other)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert not all(torch.equal(weights[0][key], weights[2][key]) for key in weights[0])
    # Merged: plain weights, no adapter files or LoRA parameter names.
    assert not (first.final_checkpoint / "adapter_config.json").exists()
    assert not any("lora" in key for key in weights[0])
    assert first.manifest["hyperparameters"]["lora"] == [4, 8]
    assert first.manifest["hyperparameters"]["lora_targets"]


def test_n_pairs_is_a_seeded_nested_sample(
    tiny_model_dir: Callable[..., Path], planted_jsonl: Callable[..., Path]
) -> None:
    from rewardlens.models.templates import make_template

    scorer = load_scorer(str(tiny_model_dir("qwen2", "reward")))
    template = make_template(scorer.tokenizer, None)
    pairs = load_preference_data(planted_jsonl(30)).pairs
    small = tokenize_pairs(pairs, template, 10, 64, seed=1)
    assert small.indices == tokenize_pairs(pairs, template, 10, 64, seed=1).indices
    assert small.indices != tokenize_pairs(pairs, template, 10, 64, seed=2).indices
    assert tokenize_pairs(pairs, template, 20, 64, seed=1).indices[:10] == small.indices
    first = pairs[small.indices[0]]
    assert small.chosen_ids[0] == template.conversation_ids(str(first.prompt), str(first.chosen))
    # Pairs longer than max_length are passed over and counted, not truncated.
    short = tokenize_pairs(pairs, template, None, 42, seed=1)
    assert short.too_long > 0 and all(len(ids) <= 42 for ids in short.chosen_ids + short.rejected_ids)


def test_other_commands_read_a_checkpoint(
    trained: TrainResult, word_lexicon: Path, framed_prompts: Path, run_cli: Callable[..., object], tmp_path: Path
) -> None:
    """`words` then `analyze values` on the final checkpoint: Communion words rank above Agency words."""
    checkpoint = trained.final_checkpoint
    scored = run_cli("score", "--model", checkpoint, "--prompt", "What is the best thing?", "-r", "love", "-r", "power")
    assert scored.exit_code == 0, scored.stderr  # type: ignore[attr-defined]
    words = run_cli("words", "--model", checkpoint, "--out", tmp_path / "words", "--lexicon", word_lexicon,
                    "--prompts", framed_prompts)
    assert words.exit_code == 0, words.stderr  # type: ignore[attr-defined]
    values = run_cli("analyze", "values", tmp_path / "words", "--out", tmp_path / "values", "--lexicon",
                     word_lexicon, "--permutations", 100)
    assert values.exit_code == 0, values.stderr  # type: ignore[attr-defined]
    medians = pd.read_csv(tmp_path / "values" / "model_medians.csv")
    positive = medians[medians["framing"] == "positive"].set_index("category")["median_rank"]
    assert positive["Communion"] < positive["Agency"]


def test_multi_turn_pairs_render_with_the_chat_template_and_one_bos(tiny_model_dir: Callable[..., Path]) -> None:
    from rewardlens.models.templates import make_template
    from rewardlens.training.train import conversation_ids

    scorer = load_scorer(str(tiny_model_dir("llama", "reward")))
    tokenizer = scorer.tokenizer
    template = make_template(tokenizer, None)
    messages = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello there!"},
                {"role": "assistant", "content": "hello world"}]
    ids = conversation_ids(template, messages)
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[1] != tokenizer.bos_token_id  # rendered once, not added again
    single = [{"role": "user", "content": "Hello there!"}, {"role": "assistant", "content": "love"}]
    assert conversation_ids(template, single) == template.conversation_ids("Hello there!", "love")
    with pytest.raises(UserError, match="need a chat template"):
        conversation_ids(make_template(tokenizer, "plain"), messages)
