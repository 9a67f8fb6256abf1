"""Alignment of two vocabularies on decoded text: the rules, the counts and the per-prompt pick."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlens.analysis.alignment import align_vocabularies, text_keys
from rewardlens.errors import UserError

POLICY = ([0, 1, 2, 3, 4, 5], [" love", "love", "power", "\ufffd", "  ", "cat"])
REFERENCE = ([10, 11, 12, 13], ["love", " power", "dog", " love "])


def test_text_keys() -> None:
    keys = text_keys([" love", "love ", "\ufffd", "a\ufffd", " ", ""], "stripped")
    assert keys.tolist() == ["love", "love", "", "", "", ""]
    assert text_keys([" love", " "], "exact").tolist() == [" love", " "]
    with pytest.raises(ValueError):
        text_keys(["x"], "lower")  # type: ignore[arg-type]


def test_stripped_max_keeps_shared_texts_and_counts_the_drops() -> None:
    alignment = align_vocabularies(POLICY, REFERENCE, "stripped", "max")
    assert alignment.texts.tolist() == ["love", "power"]
    described = alignment.describe(("policy", "reference"))
    policy, reference = described["policy"], described["reference"]
    assert policy["n_unusable_ids"] == 2  # U+FFFD and whitespace only
    assert policy["n_texts"] == 3 and policy["n_unshared_texts"] == 1  # "cat"
    assert policy["n_duplicate_texts"] == 1 and policy["n_ids_of_duplicate_texts"] == 2
    assert reference["n_texts"] == 3 and reference["n_unshared_texts"] == 1  # "dog"
    assert reference["n_duplicate_texts"] == 1  # "love" and " love "
    assert described["n_shared_texts"] == 2 and "highest" in described["rule"]


def test_pick_takes_the_highest_value_per_text_per_call() -> None:
    policy_side, reference_side = align_vocabularies(POLICY, REFERENCE).sides
    values, ids = policy_side.pick(np.array([-1.0, -3.0, -2.0, 0.0, 0.0, 0.0]))
    assert values.tolist() == [-1.0, -2.0] and ids.tolist() == [0, 2]
    # Another prompt: now the id without the space is the likelier one.
    values, ids = policy_side.pick(np.array([-3.0, -1.0, -2.0, 0.0, 0.0, 0.0]))
    assert values.tolist() == [-1.0, -2.0] and ids.tolist() == [1, 2]
    # Ties go to the lower id; NaN never wins.
    values, ids = policy_side.pick(np.array([-1.0, -1.0, -2.0, 0.0, 0.0, 0.0]))
    assert ids.tolist() == [0, 2]
    values, ids = policy_side.pick(np.array([np.nan, -4.0, -2.0, 0.0, 0.0, 0.0]))
    assert values.tolist() == [-4.0, -2.0] and ids.tolist() == [1, 2]
    vector = np.full(14, -9.0)
    vector[[10, 11, 13]] = [-5.0, -6.0, -0.5]
    values, ids = reference_side.pick(vector)
    assert values.tolist() == [-0.5, -6.0] and ids.tolist() == [13, 11]


def test_exact_rule_and_drop_duplicates() -> None:
    exact = align_vocabularies(POLICY, REFERENCE, "exact", "max")
    assert exact.texts.tolist() == ["love"]  # " love", " power" and " love " have no exact twin
    assert exact.describe()["first"]["n_unusable_ids"] == 1  # "  " is a text under the exact rule
    dropped = align_vocabularies(POLICY, REFERENCE, "stripped", "drop")
    assert dropped.texts.tolist() == ["power"]  # "love" is duplicated on both sides
    assert dropped.describe()["first"]["n_dropped_duplicate_texts"] == 1
    assert "dropped" in dropped.describe()["rule"]


def test_disjoint_vocabularies_share_nothing() -> None:
    alignment = align_vocabularies(([0, 1], ["a", "b"]), ([0, 1], ["c", "d"]))
    assert len(alignment.texts) == 0
    assert all(len(side.ids) == 0 for side in alignment.sides)
    assert alignment.describe()["second"]["n_unshared_texts"] == 2


class _Head:
    def __init__(self, n: int) -> None:
        self.weight = np.zeros((n, 1))


class _Model:
    def __init__(self, n: int) -> None:
        self._head = _Head(n)

    def get_output_embeddings(self) -> _Head:
        return self._head


class _Scorer:
    """What `pair_vocabularies` reads: a tokenizer and a model with an output layer."""

    def __init__(self, words: list[str]) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[0]))
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        self.tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend)
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
    assert pair_vocabularies(policy, _Scorer(["alpha", "beta", "gamma"])).by == "id"
