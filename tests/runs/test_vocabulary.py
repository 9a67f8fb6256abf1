"""Vocabulary enumeration: ids, raw tokens, decoded responses and the special/space/word flags."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rewardlens.errors import UserError
from rewardlens.models.vocabulary import parse_token_filter, select_tokens, vocabulary_table


class SentencePieceLike:
    """A stand-in tokenizer with SentencePiece pieces whose decoder strips a sequence's leading space."""

    vocab = ["<pad>", "<bos>", "<unused12>", "<|reserved_special_token_3|>", "▁hello", "hello", "▁über",
             "▁42", "<0x41>", "▁", "<start_of_turn>", "naïve", "▁two words"]  # fmt: skip
    decoded = ["<pad>", "<bos>", "<unused12>", "<|reserved_special_token_3|>", "hello", "hello", "über",
               "42", "A", "", "<start_of_turn>", "naïve", "two words"]  # fmt: skip
    all_special_ids = [0, 1]
    added_tokens_decoder = {10: object()}

    def __len__(self) -> int:
        return len(self.vocab)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.vocab[i] for i in ids]

    def batch_decode(self, sequences: list[list[int]], **_: Any) -> list[str]:
        return ["".join(self.decoded[i] for i in ids) for ids in sequences]


def test_flags_of_a_sentencepiece_vocabulary() -> None:
    table = vocabulary_table(SentencePieceLike()).set_index("token")
    assert list(table.index[table["is_special"]]) == [
        "<pad>", "<bos>", "<unused12>", "<|reserved_special_token_3|>", "<start_of_turn>"
    ]  # fmt: skip
    # The ▁ marker is a real space in the conversation even where the decoder strips it.
    assert table.loc["▁hello", "response"] == " hello" and table.loc["▁hello", "leading_space"]
    assert not table.loc["hello", "leading_space"]
    words = set(table.index[table["is_word"]])
    # Letters of any script, after one optional space.
    assert words == {"▁hello", "hello", "▁über", "naïve", "<0x41>"}
    assert table.loc["<0x41>", "response"] == "A"


def test_table_follows_the_byte_level_tokenizer(tiny_model_dir: Callable[..., Path]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir("qwen2", "reward"))
    table = vocabulary_table(tokenizer)
    assert list(table["token_id"]) == list(range(len(tokenizer)))
    for row in table.itertuples():
        assert row.response == tokenizer.decode([row.token_id])
        assert row.token == tokenizer.convert_ids_to_tokens(row.token_id)
        assert row.leading_space == row.token.startswith("Ġ")
    special = set(table.loc[table["is_special"], "token_id"])
    markers = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    assert special == {tokenizer.convert_tokens_to_ids(t) for t in markers}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("all", "all"), ("words", "words"), ("2:5", range(2, 5)), (":3", range(0, 3)), ("10:", range(10, 13))],
)
def test_token_filters(spec: str, expected: object) -> None:
    assert parse_token_filter(spec, 13) == expected


@pytest.mark.parametrize("spec", ["5:5", "0:14", "-1:3", "a:b", "everything", "7:2"])
def test_token_filters_outside_the_vocabulary_are_user_errors(spec: str) -> None:
    with pytest.raises(UserError, match="--tokens"):
        parse_token_filter(spec, 13)


def test_select_tokens_leaves_specials_out_unless_asked() -> None:
    tokenizer = SentencePieceLike()
    assert len(select_tokens(tokenizer, "all", include_special=True)) == len(tokenizer)
    plain = select_tokens(tokenizer, "all")
    assert not plain["is_special"].any() and len(plain) == len(tokenizer) - 5
    assert select_tokens(tokenizer, "words")["is_word"].all()
    assert list(select_tokens(tokenizer, "0:5", include_special=False)["token_id"]) == [4]
    with pytest.raises(UserError, match="no candidate"):
        select_tokens(tokenizer, "0:2")
