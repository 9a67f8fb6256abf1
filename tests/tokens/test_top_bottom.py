import numpy as np
import pytest

from rewardlens.analysis.tokens import top_bottom
from rewardlens.errors import UserError


def test_top_and_bottom_are_the_k_extremes_per_model_and_prompt(sweep, texts):
    rng = np.random.default_rng(3)
    vocab = texts(50)
    frame = sweep("m1", vocab, {"best": rng.normal(size=50), "worst": rng.normal(size=50)})
    result = top_bottom(frame, k=5)
    for prompt_id in ("best", "worst"):
        rows = frame[frame["prompt_id"] == prompt_id]
        top = result[(result["prompt_id"] == prompt_id) & (result["end"] == "top")]
        bottom = result[(result["prompt_id"] == prompt_id) & (result["end"] == "bottom")]
        assert list(top["token_id"]) == list(rows.nlargest(5, "score")["token_id"])
        assert list(bottom["token_id"]) == list(rows.nsmallest(5, "score")["token_id"])
        assert list(top["rank"]) == [1, 2, 3, 4, 5]
        assert list(top["text"]) == [vocab[i] for i in top["token_id"]]


def test_ties_are_broken_by_token_id_and_special_tokens_left_out(sweep, texts):
    vocab = texts(6)
    frame = sweep("m", vocab, {"p": [1.0, 5.0, 5.0, 0.0, 9.0, 5.0]}, is_special=[0, 0, 0, 0, 1, 0])
    top = top_bottom(frame, k=3)
    top = top[top["end"] == "top"]
    assert list(top["token_id"]) == [1, 2, 5]  # 4 is special; the tied 5.0s in id order


def test_k_larger_than_the_vocabulary_returns_every_token(sweep, texts):
    frame = sweep("m", texts(4), {"p": [4.0, 3.0, 2.0, 1.0]})
    result = top_bottom(frame, k=10)
    assert len(result) == 8
    assert list(result.loc[result["end"] == "bottom", "token_id"]) == [3, 2, 1, 0]


def test_k_below_one_is_a_user_error(sweep, texts):
    with pytest.raises(UserError):
        top_bottom(sweep("m", texts(3), {"p": [1.0, 2.0, 3.0]}), k=0)
