import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rewardlens.analysis.tokens import (
    agreement,
    agreement_mds,
    align_tokens,
    alignment_report,
    classical_mds,
    mean_tau_matrix,
    rank_biased_overlap,
)
from rewardlens.errors import UserError


def two_tokenizers(sweep):
    """Model A and model B share the texts ' the', 'cat', ' dog', ' sun', 'moon', ' red'; each has its own
    extra texts; A decodes ' dog' from two ids (dropped); B's SentencePiece-style 'red' with a leading-space
    flag aligns with A's ' red'."""
    a_texts = [" the", "cat", " dog", " dog", " sun", "moon", " red", "onlyA", " alsoA"]
    b_texts = [" the", "cat", " dog", " sun", "moon", "red", "onlyB"]
    b_space = [True, False, True, True, False, True, False]
    a = sweep(
        "A",
        a_texts,
        {"best": [6, 5, 4, 3, 2, 1, 0, 9, 9], "worst": [0, 1, 2, 3, 4, 5, 6, 9, 9]},
        token_ids=[10, 11, 12, 13, 14, 15, 16, 17, 18],
    )
    b = sweep(
        "B",
        b_texts,
        {"best": [1, 2, 3, 4, 5, 6, -1], "worst": [0, 1, 2, 3, 4, 5, -1]},
        token_ids=[100, 101, 102, 103, 104, 105, 106],
        leading_space=b_space,
    )
    return pd.concat([a, b], ignore_index=True)


def test_alignment_drops_duplicated_texts_and_keeps_only_texts_every_model_has(sweep):
    frame = two_tokenizers(sweep)
    aligned = align_tokens(frame)
    shared = {" the", "cat", " sun", "moon", " red"}
    assert set(aligned["text"]) == shared
    assert len(aligned) == len(shared) * 2 * 2  # x 2 models x 2 prompts
    report = alignment_report(frame).set_index("model")
    assert report.loc["A", "n_tokens"] == 9
    assert report.loc["A", "n_duplicate_texts"] == 1 and report.loc["A", "n_duplicate_ids"] == 2
    assert report.loc["B", "n_duplicate_texts"] == 0
    assert report.loc["A", "n_unique_texts"] == 7
    assert set(report["n_shared_texts"]) == {5}


def test_agreement_statistics_equal_scipy_on_the_shared_texts(sweep):
    frame = two_tokenizers(sweep)
    result = agreement(frame).set_index("prompt_id")
    # Shared texts in order ' the', 'cat', ' sun', 'moon', ' red': A best 6 5 3 2 0, B best 1 2 4 5 6.
    a, b = [6, 5, 3, 2, 0], [1, 2, 4, 5, 6]
    assert result.loc["best", "n_shared"] == 5
    assert result.loc["best", "kendall_tau"] == pytest.approx(-1.0)
    assert result.loc["best", "spearman_rho"] == pytest.approx(stats.spearmanr(a, b).statistic)
    order = [" the", "cat", " sun", "moon", " red"]
    assert result.loc["best", "rbo"] == pytest.approx(rank_biased_overlap(order, order[::-1]))
    # Under 'worst' the two models agree exactly.
    assert result.loc["worst", "kendall_tau"] == pytest.approx(1.0)
    assert result.loc["worst", "rbo"] == pytest.approx(1.0)


def test_tau_b_handles_ties_like_scipy(sweep, texts):
    rng = np.random.default_rng(1)
    vocab = texts(60)
    a = rng.integers(0, 5, size=60).astype(float)  # many ties
    b = a + rng.integers(0, 3, size=60)
    frame = pd.concat([sweep("A", vocab, {"p": a}), sweep("B", vocab, {"p": b})])
    row = agreement(frame).iloc[0]
    assert row["kendall_tau"] == pytest.approx(stats.kendalltau(a, b).statistic)
    assert row["spearman_rho"] == pytest.approx(stats.spearmanr(a, b).statistic)


def test_every_pair_of_three_models(sweep, texts):
    rng = np.random.default_rng(5)
    vocab = texts(40)
    base = rng.normal(size=40)
    frame = pd.concat(
        [
            sweep("A", vocab, {"p": base, "q": rng.normal(size=40)}),
            sweep("B", vocab, {"p": base + 0.01 * rng.normal(size=40), "q": rng.normal(size=40)}),
            sweep("C", vocab, {"p": -base, "q": rng.normal(size=40)}),
        ]
    )
    result = agreement(frame)
    assert len(result) == 3 * 2
    assert set(zip(result["model_a"], result["model_b"], strict=True)) == {("A", "B"), ("A", "C"), ("B", "C")}
    p = result[result["prompt_id"] == "p"].set_index(["model_a", "model_b"])
    assert p.loc[("A", "B"), "kendall_tau"] > 0.9 and p.loc[("A", "C"), "kendall_tau"] == pytest.approx(-1.0)
    matrix = mean_tau_matrix(result)
    assert matrix.loc["A", "A"] == 1.0
    assert matrix.loc["A", "C"] == pytest.approx(
        result.query("model_a == 'A' and model_b == 'C'")["kendall_tau"].mean()
    )
    coordinates = agreement_mds(result).set_index("model")
    # A and B nearly agree, so MDS puts them closer to each other than either to C.
    distance = lambda m, n: np.hypot(*(coordinates.loc[m] - coordinates.loc[n]))  # noqa: E731
    assert distance("A", "B") < distance("A", "C") and distance("A", "B") < distance("B", "C")


def test_classical_mds_recovers_euclidean_distances():
    points = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [1.0, 1.0]])
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    embedded = classical_mds(distances, 2)
    np.testing.assert_allclose(np.linalg.norm(embedded[:, None] - embedded[None], axis=-1), distances, atol=1e-9)
    assert classical_mds(np.array([[0.0, 1.0], [1.0, 0.0]]), 2).shape == (2, 2)


def test_no_shared_text_or_a_single_model_is_a_user_error(sweep):
    a = sweep("A", ["x", "y"], {"p": [1.0, 2.0]})
    b = sweep("B", ["u", "v"], {"p": [1.0, 2.0]})
    with pytest.raises(UserError, match="share no token text"):
        agreement(pd.concat([a, b]))
    with pytest.raises(UserError, match="at least 2 models"):
        agreement(a)
