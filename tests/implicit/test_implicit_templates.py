"""`plain-nospace`: the plain conversation text with the prefix ending at "Assistant:" (no bare space token)."""

from __future__ import annotations

from rewardlens.models.templates import make_template
from rewardlens.scorers import load_scorer

PROMPT = "What is the best thing in the world?"


def test_plain_nospace_prefix_is_an_exact_prefix_of_every_word(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    scorer = load_scorer(str(tiny_model_dir("llama", "lm")), device="cpu", template="plain-nospace")
    tokenizer, template = scorer.tokenizer, scorer.template
    plain = make_template(tokenizer, "plain")
    bos = [tokenizer.bos_token_id]
    prefix = template.prefix_ids(PROMPT)
    assert prefix == bos + tokenizer(f"User: {PROMPT}\nAssistant:", add_special_tokens=False)["input_ids"]
    for word in ["love", "family", "kindness and peace"]:
        assert template.render(PROMPT, word) == plain.render(PROMPT, word)
        ids = template.conversation_ids(PROMPT, word)
        assert ids == plain.conversation_ids(PROMPT, word)
        assert ids[: len(prefix)] == prefix  # the space went to the word's first token
        (request,) = scorer.text_requests(PROMPT, [word])
        assert list(request.prompt_ids) == prefix
    # The plain prefix ends in a lone space token, which the tokenized conversation never contains there.
    plain_prefix = plain.prefix_ids(PROMPT)
    assert tokenizer.decode(plain_prefix[-1:]) == " " and plain_prefix[:-1] == prefix
    assert plain.conversation_ids(PROMPT, "family")[: len(plain_prefix)] != plain_prefix  # " family" is one token
    described = template.describe()
    assert described["source"] == "plain-nospace" and described["prefix"] == "User: {prompt}\nAssistant:"
