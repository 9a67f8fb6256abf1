"""The cached and batched engines equal the reference engine on every request."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlens.engine import ScoreRequest, run_engine
from rewardlens.scorers import load_scorer

PROMPTS = [
    "What, in one word, is the greatest thing ever?",
    "Hello?",
    "What is the best thing in the world? Please answer in one word only, with love and courage.",
]
RESPONSES = ["love", " freedom", "power and wealth", "", "The quick brown fox jumps over the lazy dog."]


@pytest.fixture(scope="module", params=[(a, h) for a in ("llama", "gemma2", "qwen2") for h in ("reward", "lm")])
def scorer(request, tiny_model_dir):  # type: ignore[no-untyped-def]
    arch, head = request.param
    return load_scorer(str(tiny_model_dir(arch, head)), device="cpu")


def _mixed_requests(scorer) -> list[ScoreRequest]:  # type: ignore[no-untyped-def]
    """Single-token and text requests under prompts of different lengths, interleaved in one call."""
    requests: list[ScoreRequest] = []
    vocab = len(scorer.tokenizer)
    for index, prompt in enumerate(PROMPTS):
        requests += scorer.token_requests(prompt, range(index, vocab, 23))
        requests += scorer.text_requests(prompt, RESPONSES)
    rng = np.random.default_rng(0)
    return [requests[i] for i in rng.permutation(len(requests))]


def _flat(results: list) -> np.ndarray:  # type: ignore[type-arg]
    return np.concatenate([np.atleast_1d(np.asarray(r, dtype=np.float64)) for r in results])


@pytest.mark.parametrize("engine", ["cached", "batched"])
@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_engine_equals_reference(scorer, engine: str, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    requests = _mixed_requests(scorer)
    if batch_size == 1:
        requests = requests[:40]  # one sequence per batch is slow and adds nothing past a few groups
    device = scorer.loaded.device
    reference = run_engine("reference", scorer._backbone, scorer._readout, requests, device, 1)
    fast = run_engine(engine, scorer._backbone, scorer._readout, requests, device, batch_size)
    assert len(fast) == len(requests)
    for ref, got in zip(reference, fast, strict=True):
        assert np.shape(ref) == np.shape(got)
    np.testing.assert_allclose(_flat(fast), _flat(reference), atol=1e-4, rtol=0)


def test_scores_are_not_trivially_equal(scorer) -> None:  # type: ignore[no-untyped-def]
    """Guards the equality test: different responses must get different scores."""
    scores = scorer.score_token_ids(PROMPTS[0], range(10, 40), engine="reference")
    assert np.unique(np.round(scores, 6)).size > 20


def test_pad_token_equal_to_eos_is_not_skipped(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    """Llama and Qwen fixtures pad with EOS, and their end-of-turn token is EOS: the RM must read it."""
    scorer = load_scorer(str(tiny_model_dir("qwen2", "reward")), device="cpu")
    assert scorer.tokenizer.pad_token_id == scorer.tokenizer.eos_token_id
    assert scorer.tokenizer.eos_token_id in scorer.template.suffix_ids
    ids = list(range(5, 40))
    scores = scorer.score_token_ids(PROMPTS[0], ids, engine="cached", batch_size=8)
    # Independent check: a plain forward of the whole model, read at the true last position.
    import torch

    for token_id, value in zip(ids[:5], scores[:5], strict=False):
        sequence = scorer.template.single_token_ids(PROMPTS[0], token_id)
        with torch.no_grad():
            hidden = scorer.model.model(input_ids=torch.tensor([sequence])).last_hidden_state[0, -1]
            expected = float(scorer.model.score(hidden)[0])
        assert value == pytest.approx(expected, abs=1e-5)


def test_lm_scores_equal_independent_log_softmax(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    import torch

    scorer = load_scorer(str(tiny_model_dir("gemma2", "lm")), device="cpu")
    prompt = PROMPTS[0]
    for response in ["love", "power and wealth"]:
        full = scorer.template.conversation_ids(prompt, response)
        prefix = scorer.template.prefix_ids(prompt)
        suffix = scorer.template.suffix_ids
        assert full[: len(prefix)] == prefix and full[len(full) - len(suffix) :] == suffix
        with torch.no_grad():
            logits = scorer.model(input_ids=torch.tensor([full])).logits[0].double()
        logprobs = torch.log_softmax(logits, -1)
        expected = sum(float(logprobs[p - 1, full[p]]) for p in range(len(prefix), len(full) - len(suffix)))
        assert scorer.score_texts(prompt, [response])[0] == pytest.approx(expected, abs=1e-4)
    first = scorer.first_token_logprobs(prompt)
    with torch.no_grad():
        logits = scorer.model(input_ids=torch.tensor([scorer.template.prefix_ids(prompt)])).logits[0, -1].double()
    np.testing.assert_allclose(first, torch.log_softmax(logits, -1).numpy(), atol=1e-5)
    ids = [7, 50, 120]
    np.testing.assert_allclose(scorer.score_token_ids(prompt, ids), first[ids], atol=1e-5)
