"""Implicit rewards equal log-probability differences computed here with transformers alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewardlens.implicit import implicit_reward, run_implicit
from rewardlens.prompts import prompts_from_texts
from rewardlens.runs import load_run, read_manifest

PROMPTS = ["What, in one word, is the greatest thing ever?", "What is the best thing in the world?"]

# Words the tiny tokenizers split into several tokens, and words they hold whole.
WORDS = {"freedom": "Agency", "xylophone": "Agency", "kindness": "Communion", "zebra crossing": "Communion"}


def _lexicon(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "words.csv"
    path.write_text("word,category\n" + "".join(f"{w},{c}\n" for w, c in WORDS.items()), encoding="utf-8")
    return path


def test_vocab_paired_by_id_is_the_log_softmax_difference_of_each_id(  # type: ignore[no-untyped-def]
    tiny_model_dir, second_llama_dir, independent, tmp_path
) -> None:
    policy_dir, reference_dir = tiny_model_dir("llama", "lm"), second_llama_dir
    prompts = prompts_from_texts(PROMPTS)
    summary = run_implicit(
        str(policy_dir), str(reference_dir), prompts, tmp_path / "run", vocab=True, device="cpu", align="id"
    )
    frame, manifest = load_run(tmp_path / "run"), read_manifest(tmp_path / "run")
    assert summary.complete and len(frame) == summary.rows_expected
    assert manifest["alignment"]["by"] == "id" and manifest["align"] == "id"
    policy, reference = independent(policy_dir), independent(reference_dir)
    non_special = sorted(set(range(len(policy.tokenizer))) - policy.special_ids())
    for prompt in prompts:
        rows = frame[frame["prompt_id"] == prompt.id]
        ids = rows["token_id"].to_numpy()
        assert sorted(ids.tolist()) == non_special
        assert (rows["reference_token_id"].to_numpy() == ids).all()
        expected_policy = policy.next_logprobs(policy.chat_prefix(prompt.text))[ids]
        expected_reference = reference.next_logprobs(reference.plain_prefix(prompt.text))[ids]
        np.testing.assert_allclose(rows["logp_policy"], expected_policy, atol=1e-5, rtol=0)
        np.testing.assert_allclose(rows["logp_reference"], expected_reference, atol=1e-5, rtol=0)
        np.testing.assert_allclose(rows["score"], expected_policy - expected_reference, atol=1e-5, rtol=0)
        assert rows["score"].std() > 0.05  # the two models really differ
    assert frame["model"].iloc[0] == f"implicit:{policy_dir.name}|{reference_dir.name}"


def test_lexicon_words_are_teacher_forced_sums(  # type: ignore[no-untyped-def]
    tiny_model_dir, independent, tmp_path
) -> None:
    """Multi-token words: the summed log-probabilities of their tokens after each model's own prefix."""
    policy_dir, reference_dir = tiny_model_dir("llama", "lm"), tiny_model_dir("qwen2", "lm")
    prompts = prompts_from_texts(PROMPTS[:1])
    run_implicit(
        str(policy_dir), str(reference_dir), prompts, tmp_path / "run", lexicon=str(_lexicon(tmp_path)), device="cpu"
    )
    frame = load_run(tmp_path / "run").set_index("response")
    assert set(frame.index) == set(WORDS)
    assert frame["category"].to_dict() == WORDS
    policy, reference = independent(policy_dir), independent(reference_dir)
    prompt = prompts[0].text
    policy_prefix = policy.chat_prefix(prompt)
    reference_prefix = reference.plain_prefix(prompt)
    n_tokens = []
    for word in WORDS:
        # The policy's conversation text is its prefix then the word; the reference's "User: ...\nAssistant: word".
        policy_full = policy_prefix + policy.encode(word)
        reference_full = reference.bos() + reference.encode(f"User: {prompt}\nAssistant: {word}")
        n_tokens.append(len(reference_full) - len(reference_prefix))
        expected_policy = policy.continuation_logprob(policy_prefix, policy_full)
        expected_reference = reference.continuation_logprob(reference_prefix, reference_full)
        assert frame.loc[word, "logp_policy"] == pytest.approx(expected_policy, abs=1e-4)
        assert frame.loc[word, "logp_reference"] == pytest.approx(expected_reference, abs=1e-4)
        assert frame.loc[word, "score"] == pytest.approx(expected_policy - expected_reference, abs=1e-4)
    assert max(n_tokens) > 1  # multi-token words are really there


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_mwlr_and_beta(tiny_model_dir, second_llama_dir, tmp_path, beta: float) -> None:  # type: ignore[no-untyped-def]
    policy_dir, reference_dir = str(tiny_model_dir("llama", "lm")), str(second_llama_dir)
    prompts = prompts_from_texts(PROMPTS[:1])
    run_implicit(policy_dir, reference_dir, prompts, tmp_path / "ratio", vocab=True, device="cpu", beta=beta)
    run_implicit(
        policy_dir, reference_dir, prompts, tmp_path / "mwlr", vocab=True, device="cpu", measure="mwlr", beta=beta
    )
    ratio, mwlr = load_run(tmp_path / "ratio"), load_run(tmp_path / "mwlr")
    np.testing.assert_array_equal(ratio["logp_policy"], mwlr["logp_policy"])
    p, q = mwlr["logp_policy"].to_numpy(), mwlr["logp_reference"].to_numpy()
    np.testing.assert_allclose(ratio["score"], beta * (p - q), rtol=1e-12)
    np.testing.assert_allclose(mwlr["score"], 0.5 * (np.exp(p) + np.exp(q)) * beta * (p - q), rtol=1e-12)
    assert "0.5 * (p_policy" in read_manifest(tmp_path / "mwlr")["score_definition"]


def test_implicit_reward_formulas() -> None:
    p, q = np.log([0.5, 0.1, 0.2]), np.log([0.25, 0.1, 0.4])
    np.testing.assert_allclose(implicit_reward(p, q), [np.log(2), 0.0, -np.log(2)])
    np.testing.assert_allclose(implicit_reward(p, q, beta=2.0), [2 * np.log(2), 0.0, -2 * np.log(2)])
    np.testing.assert_allclose(implicit_reward(p, q, "mwlr"), [0.375 * np.log(2), 0.0, -0.3 * np.log(2)])


def _aligned_texts(model, lead: str):  # type: ignore[no-untyped-def]
    """Per stripped text: the non-special ids that decode to it (any whitespace), and whether one of them is
    `lead + text`, the form a response starts with after that template's prefix; computed here directly."""
    variants: dict[str, list[int]] = {}
    startable: set[str] = set()
    for token_id in sorted(set(range(len(model.tokenizer))) - model.special_ids()):
        decoded = model.tokenizer.decode([token_id])
        text = decoded.strip()
        if text and "\ufffd" not in text:
            variants.setdefault(text, []).append(token_id)
            if decoded == lead + text:
                startable.add(text)
    return variants, startable


def _logsumexp(values) -> float:  # type: ignore[no-untyped-def]
    return float(np.log(np.sum(np.exp(np.asarray(values, dtype=np.float64)))))


def test_cross_tokenizer_alignment_sums_the_variants_of_the_texts_both_can_start(  # type: ignore[no-untyped-def]
    tiny_model_dir, independent, tmp_path
) -> None:
    policy_dir, reference_dir = tiny_model_dir("llama", "lm"), tiny_model_dir("qwen2", "lm")
    policy, reference = independent(policy_dir), independent(reference_dir)
    assert policy.tokenizer.get_vocab() != reference.tokenizer.get_vocab()
    prompts = prompts_from_texts(PROMPTS)
    run_implicit(str(policy_dir), str(reference_dir), prompts, tmp_path / "run", vocab=True, device="cpu")
    frame, manifest = load_run(tmp_path / "run"), read_manifest(tmp_path / "run")
    # The chat template starts a response right after its newline, plain-nospace after one space.
    policy_variants, policy_startable = _aligned_texts(policy, "")
    reference_variants, reference_startable = _aligned_texts(reference, " ")
    shared = policy_startable & reference_startable
    alignment = manifest["alignment"]
    assert alignment["by"] == "text" and alignment["text_rule"] == "stripped" and alignment["variants"] == "logsumexp"
    assert alignment["response_lead"] == {"policy": "", "reference": " "}
    assert alignment["n_shared_texts"] == len(shared) > 5
    assert alignment["policy"]["n_unshared_texts"] == len(policy_startable - shared)
    assert alignment["reference"]["n_texts_without_response_form"] == len(set(reference_variants) - reference_startable)
    assert alignment["policy"]["n_texts_without_response_form"] == len(set(policy_variants) - policy_startable)
    n_special = len(policy.special_ids())
    n_usable = sum(len(ids) for ids in policy_variants.values())
    assert alignment["policy"]["n_unusable_ids"] == len(policy.tokenizer) - n_special - n_usable
    assert any(len(policy_variants[text]) > 1 for text in shared)  # variants are really summed
    for prompt in prompts:
        rows = frame[frame["prompt_id"] == prompt.id].set_index("response")
        assert set(rows.index) == shared and len(rows) == len(shared)
        policy_lp = policy.next_logprobs(policy.chat_prefix(prompt.text))
        reference_lp = reference.next_logprobs(reference.plain_prefix(prompt.text))
        for text in shared:
            expected_policy = _logsumexp(policy_lp[policy_variants[text]])
            expected_reference = _logsumexp(reference_lp[reference_variants[text]])
            assert rows.loc[text, "logp_policy"] == pytest.approx(expected_policy, abs=1e-5)
            assert rows.loc[text, "logp_reference"] == pytest.approx(expected_reference, abs=1e-5)
            assert rows.loc[text, "score"] == pytest.approx(expected_policy - expected_reference, abs=1e-5)
            # The ids shown are the forms each template starts a response with, whatever the prompt.
            assert policy.tokenizer.decode([rows.loc[text, "token_id"]]) == text
            assert reference.tokenizer.decode([rows.loc[text, "reference_token_id"]]) == " " + text


def test_exact_text_rule_aligns_the_response_text_after_each_template(  # type: ignore[no-untyped-def]
    tiny_model_dir, second_llama_dir, independent, tmp_path
) -> None:
    """One tokenizer, exact rule: the policy's "love" (after its newline) meets the reference's " love" (after
    "Assistant:"): the response text is the same, the token is not."""
    policy_dir, reference_dir = tiny_model_dir("llama", "lm"), second_llama_dir
    prompts = prompts_from_texts(PROMPTS[:1])
    run_implicit(
        str(policy_dir), str(reference_dir), prompts, tmp_path / "run", vocab=True, device="cpu", text_rule="exact"
    )
    alignment = read_manifest(tmp_path / "run")["alignment"]
    policy = independent(policy_dir)
    texts = [policy.tokenizer.decode([i]) for i in set(range(len(policy.tokenizer))) - policy.special_ids()]
    usable = {t for t in texts if t and "\ufffd" not in t}
    after_space = {t[1:] for t in usable if t.startswith(" ") and len(t) > 1}
    assert alignment["by"] == "text" and alignment["text_rule"] == "exact"
    assert alignment["n_shared_texts"] == len(usable & after_space) > 0
    n_after_space = sum(1 for t in texts if t.startswith(" ") and len(t) > 1 and "\ufffd" not in t)
    assert alignment["reference"]["n_unusable_ids"] == len(texts) - n_after_space  # the rest is glued to ":"
    frame = load_run(tmp_path / "run")
    assert set(frame["response"]) == usable & after_space
    reference_tokens = [policy.tokenizer.decode([i]) for i in frame["reference_token_id"]]
    assert reference_tokens == [" " + text for text in frame["response"]]


def test_run_json_records_both_templates_and_the_rule(  # type: ignore[no-untyped-def]
    tiny_model_dir, second_llama_dir, tmp_path
) -> None:
    run_implicit(
        str(tiny_model_dir("llama", "lm")), str(second_llama_dir), prompts_from_texts(PROMPTS[:1]),
        tmp_path / "run", vocab=True, device="cpu",
    )
    manifest = read_manifest(tmp_path / "run")
    assert manifest["kind_of_run"] == "implicit"
    assert manifest["templates"]["policy"]["source"] == "chat"
    assert "<|start_header_id|>" in manifest["templates"]["policy"]["template"]
    assert manifest["templates"]["reference"]["source"] == "plain-nospace"
    assert manifest["templates"]["reference"]["prefix"] == "User: {prompt}\nAssistant:"
    assert manifest["policy"]["template"] == manifest["templates"]["policy"]
    assert manifest["measure"] == "log-ratio" and manifest["beta"] == 1.0
    assert manifest["align"] == "text" and manifest["alignment"]["by"] == "text"  # one tokenizer, on text
    assert "log-sum-exp" in manifest["alignment"]["rule"] and manifest["alignment"]["variants"] == "logsumexp"
    assert manifest["alignment_rule"] == manifest["alignment"]["rule"]
    json.dumps(manifest)


def test_resume_skips_finished_prompts_and_refuses_another_run(  # type: ignore[no-untyped-def]
    tiny_model_dir, second_llama_dir, tmp_path
) -> None:
    from rewardlens.errors import UserError

    args = (str(tiny_model_dir("llama", "lm")), str(second_llama_dir), prompts_from_texts(PROMPTS), tmp_path / "r")
    first = run_implicit(*args, vocab=True, device="cpu")
    again = run_implicit(*args, vocab=True, device="cpu")
    assert first.rows_written == first.rows and again.rows_written == 0 and again.rows == first.rows
    with pytest.raises(UserError, match="another run"):
        run_implicit(*args, vocab=True, device="cpu", measure="mwlr")
    with pytest.raises(UserError, match="another align"):
        run_implicit(*args, vocab=True, device="cpu", align="id")
    # A run aligned by an earlier rule (same options, other wording in _run.json) is not resumed with this one.
    manifest_path = tmp_path / "r" / "_run.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["alignment_rule"] = "aligned on decoded text; a text with several ids keeps the highest value"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(UserError, match="another alignment rule"):
        run_implicit(*args, vocab=True, device="cpu")
