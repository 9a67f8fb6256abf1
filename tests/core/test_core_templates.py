"""Exact token sequences: ids, never decoded and re-tokenized text; never a second BOS."""

from __future__ import annotations

import pytest

from rewardlens.errors import UserError
from rewardlens.models.templates import make_template
from rewardlens.scorers import load_scorer

PROMPT = "What, in one word, is the greatest thing ever?"


@pytest.mark.parametrize("arch", ["llama", "gemma2", "qwen2"])
def test_single_token_sequence_is_prefix_id_suffix(tiny_model_dir, arch: str) -> None:  # type: ignore[no-untyped-def]
    scorer = load_scorer(str(tiny_model_dir(arch, "reward")), device="cpu")
    template = scorer.template
    prefix, suffix = template.prefix_ids(PROMPT), template.suffix_ids
    for token_id in range(len(scorer.tokenizer)):
        request = scorer.token_requests(PROMPT, [token_id])[0]
        assert request.ids == prefix + [token_id] + suffix
    # The prefix is what the template renders with its generation prompt, as ids.
    rendered = scorer.tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True
    )
    assert prefix == scorer.tokenizer(rendered, add_special_tokens=False)["input_ids"]


def test_llama_has_exactly_one_bos(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    """The Llama-3 template renders BOS and the tokenizer adds one too: the published pipelines doubled it."""
    scorer = load_scorer(str(tiny_model_dir("llama", "reward")), device="cpu")
    bos = scorer.tokenizer.bos_token_id
    naive = scorer.tokenizer(scorer.template.render(PROMPT, "love"))["input_ids"]
    assert naive[:2] == [bos, bos]  # the trap exists in this fixture
    ids = scorer.template.conversation_ids(PROMPT, "love")
    assert ids[0] == bos and ids.count(bos) == 1
    assert scorer.template.prefix_ids(PROMPT).count(bos) == 1


def test_text_response_is_tokenization_of_the_rendered_conversation(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    scorer = load_scorer(str(tiny_model_dir("gemma2", "reward")), device="cpu")
    for response in ["love", " freedom", "power and wealth"]:
        rendered = scorer.template.render(PROMPT, response)
        expected = scorer.tokenizer(rendered, add_special_tokens=False)["input_ids"]
        (request,) = scorer.text_requests(PROMPT, [response])
        assert request.ids == expected


def test_plain_template_and_jinja_file(tiny_model_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tiny_model_dir("gemma2", "lm", chat_template=False)
    with pytest.raises(UserError, match="no chat template"):
        load_scorer(str(path), device="cpu")
    plain = load_scorer(str(path), device="cpu", template="plain")
    ids = plain.template.conversation_ids("Hi?", "love")
    assert ids[0] == plain.tokenizer.bos_token_id and ids.count(plain.tokenizer.bos_token_id) == 1
    assert plain.tokenizer.decode(ids[1:]) == "User: Hi?\nAssistant: love"
    jinja = tmp_path / "t.jinja"
    jinja.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}")
    custom = make_template(plain.tokenizer, str(jinja))
    assert custom.render("Hi?", "love") == "[user] Hi?\n[assistant] love\n"
    assert plain.tokenizer.decode(custom.suffix_ids) == "\n"
