"""Alignment of two vocabularies on decoded text: the keys, which texts are compared, the counts, and the
one rule for the surface variants of a text (log-sum-exp of their probabilities)."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlens.analysis.alignment import align_vocabularies, text_keys
from rewardlens.errors import UserError

# The policy's template starts a response directly ("love"), the reference's after one space (" love").
POLICY = ([0, 1, 2, 3, 4, 5, 6], [" love", "love", "power", "\ufffd", "  ", "cat", "dog "])
REFERENCE = ([10, 11, 12, 13, 14, 15], ["love", " power", "dog", " love ", " love", "power"])
LEADS = ("", " ")


def test_text_keys() -> None:
    keys = text_keys([" love", "love ", "\ufffd", "a\ufffd", " ", ""], "stripped")
    assert keys.tolist() == ["love", "love", "", "", "", ""]
    assert text_keys([" love", " "], "exact").tolist() == [" love", " "]
    # Under `exact` the key is the response text after the template's lead; a token without it is glued.
    assert text_keys([" love", "  love", "love", " "], "exact", lead=" ").tolist() == ["love", " love", "", ""]
    with pytest.raises(ValueError):
        text_keys(["x"], "lower")  # type: ignore[arg-type]


def test_a_text_is_kept_where_each_side_can_start_a_response_with_it() -> None:
    alignment = align_vocabularies(POLICY, REFERENCE, "stripped", LEADS)
    # "love": policy "love", reference " love". "power": policy "power", reference " power".
    # "dog": the reference has only "dog" (glued to "Assistant:"), the policy only "dog " (not a response start).
    assert alignment.texts.tolist() == ["love", "power"]
    described = alignment.describe(("policy", "reference"))
    policy, reference = described["policy"], described["reference"]
    assert described["variants"] == "logsumexp" and "log-sum-exp" in described["rule"]
    assert described["response_lead"] == {"policy": "", "reference": " "}
    assert policy["n_unusable_ids"] == 2  # U+FFFD and whitespace only
    assert policy["n_texts"] == 4 and policy["n_texts_with_variants"] == 1  # love, power, cat, dog
    assert policy["n_texts_without_response_form"] == 1  # "dog "
    assert policy["n_unshared_texts"] == 1  # "cat"
    assert reference["n_texts"] == 3 and reference["n_texts_with_variants"] == 2  # love x3, power x2
    assert reference["n_texts_without_response_form"] == 1 and reference["n_unshared_texts"] == 0
    assert policy["n_kept_ids"] == 3 and reference["n_kept_ids"] == 5
    policy_side, reference_side = alignment.sides
    assert policy_side.response_ids.tolist() == [1, 2] and reference_side.response_ids.tolist() == [14, 11]
    # With the same lead on both sides, "dog" is still missing a response form on the policy side only.
    same_leads = align_vocabularies(POLICY, REFERENCE, "stripped", ("", ""))
    assert same_leads.texts.tolist() == ["love", "power"]
    assert same_leads.sides[1].response_ids.tolist() == [10, 15]


def test_variants_are_summed_by_log_sum_exp() -> None:
    policy_side, reference_side = align_vocabularies(POLICY, REFERENCE, "stripped", LEADS).sides
    probabilities = np.array([0.1, 0.3, 0.2, 0.05, 0.05, 0.2, 0.1])
    values = policy_side.logsumexp(np.log(probabilities))
    np.testing.assert_allclose(values, np.log([0.1 + 0.3, 0.2]), rtol=1e-12)
    # Another prompt, another vector: the sum follows it (no id is chosen once and for all).
    values = policy_side.logsumexp(np.log(probabilities[::-1]))
    np.testing.assert_allclose(values, np.log([0.1 + 0.2, 0.05]), rtol=1e-12)
    vector = np.full(16, -30.0)
    vector[[10, 11, 13, 14, 15]] = [-1.0, -2.0, -3.0, -1.5, -700.0]
    expected = [np.log(np.exp(-1.0) + np.exp(-3.0) + np.exp(-1.5)), np.log(np.exp(-2.0) + np.exp(-700.0))]
    np.testing.assert_allclose(reference_side.logsumexp(vector), expected, rtol=1e-12)
    # Large magnitudes stay finite; a text whose ids all have probability 0 has log-probability -inf.
    np.testing.assert_allclose(reference_side.logsumexp(vector - 1e4), np.asarray(expected) - 1e4, rtol=1e-12)
    impossible = reference_side.logsumexp(np.full(16, -np.inf))
    assert np.isneginf(impossible).all()


def test_exact_rule_aligns_the_response_text_after_each_lead() -> None:
    exact = align_vocabularies(POLICY, REFERENCE, "exact", LEADS)
    # The policy's "love" meets the reference's " love", "power" meets " power"; " love " is not "love".
    assert exact.texts.tolist() == ["love", "power"]
    policy_side, reference_side = exact.sides
    assert policy_side.response_ids.tolist() == [1, 2] and reference_side.response_ids.tolist() == [14, 11]
    assert reference_side.ids.tolist() == [14, 11]  # no whitespace variants under the exact rule
    assert exact.describe()["second"]["n_unusable_ids"] == 3  # "love", "dog", "power" lack the lead
    assert exact.describe()["first"]["n_unusable_ids"] == 1  # "  " is a text under the exact rule
    # Identical texts of one side (byte-level duplicates) are variants under `exact` too.
    duplicated = align_vocabularies(([0, 1], ["a", "a"]), ([5], ["a"]), "exact")
    np.testing.assert_allclose(duplicated.sides[0].logsumexp(np.log([0.25, 0.5])), [np.log(0.75)])
    assert duplicated.sides[0].response_ids.tolist() == [0]


def test_disjoint_vocabularies_share_nothing() -> None:
    alignment = align_vocabularies(([0, 1], ["a", "b"]), ([0, 1], ["c", "d"]))
    assert len(alignment.texts) == 0
    assert all(len(side.ids) == 0 for side in alignment.sides)
    assert alignment.describe()["second"]["n_unshared_texts"] == 2
    assert alignment.sides[0].logsumexp(np.zeros(2)).shape == (0,)


class _Head:
    def __init__(self, n: int) -> None:
        self.weight = np.zeros((n, 1))


class _Model:
    def __init__(self, n: int) -> None:
        self._head = _Head(n)

    def get_output_embeddings(self) -> _Head:
        return self._head


class _Scorer:
    """What `pair_vocabularies` reads: a tokenizer, its template and a model with an output layer."""

    def __init__(self, words: list[str]) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        from rewardlens.models.templates import make_template

        backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[0]))
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        self.tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend)
        self.template = make_template(self.tokenizer, "plain")
        self.model = _Model(len(words))


def test_pairing_without_shared_text_is_a_user_error() -> None:
    from rewardlens.implicit import pair_vocabularies

    policy, reference = _Scorer(["alpha", "beta", "gamma"]), _Scorer(["delta", "epsilon"])
    with pytest.raises(UserError, match="share no decoded text"):
        pair_vocabularies(policy, reference)
    pairing = pair_vocabularies(policy, _Scorer(["beta", "delta", "alpha"]))
    assert pairing.by == "text" and sorted(pairing.alignment.texts.tolist()) == ["alpha", "beta"]  # type: ignore[union-attr]
    frame = pairing.frame(np.log([0.2, 0.3, 0.5]), np.log([0.6, 0.1, 0.3]))
    row = frame.set_index("response").loc["alpha"]
    assert row["token_id"] == 0 and row["reference_token_id"] == 2
    assert row["logp_policy"] == pytest.approx(np.log(0.2)) and row["logp_reference"] == pytest.approx(np.log(0.3))
    # One tokenizer is aligned on text too, unless ids are asked for.
    assert pair_vocabularies(policy, _Scorer(["alpha", "beta", "gamma"])).by == "text"
    assert pair_vocabularies(policy, _Scorer(["alpha", "beta", "gamma"]), align="id").by == "id"
    with pytest.raises(UserError, match="same tokenizer"):
        pair_vocabularies(policy, reference, align="id")
    with pytest.raises(UserError, match="unknown alignment 'auto'"):
        pair_vocabularies(policy, reference, align="auto")
