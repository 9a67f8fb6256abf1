import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rewardlens.analysis.tokens import framing, framing_movers
from rewardlens.analysis.tokens.framing import normalise_framing
from rewardlens.errors import UserError

FRAMES = {"best": "pos", "greatest": "positive", "worst": "neg"}


def test_tau_between_framed_rankings_per_model(sweep, texts):
    rng = np.random.default_rng(0)
    vocab = texts(80)
    base = rng.normal(size=80)
    noisy = -base + rng.normal(scale=0.5, size=80)
    ignores_frame = sweep("ignores", vocab, {"best": base, "greatest": 2 * base, "worst": base + 1})
    reverses = sweep("reverses", vocab, {"best": base, "greatest": base, "worst": -base})
    partly = sweep("partly", vocab, {"best": base, "greatest": base, "worst": noisy})
    result = framing(pd.concat([ignores_frame, reverses, partly]), FRAMES)
    assert len(result) == 3 * 2  # each model: (best, worst) and (greatest, worst)
    by_model = result.set_index(["model", "positive_prompt"])
    assert by_model.loc[("ignores", "best"), "kendall_tau"] == pytest.approx(1.0)
    assert by_model.loc[("reverses", "greatest"), "kendall_tau"] == pytest.approx(-1.0)
    assert by_model.loc[("partly", "best"), "kendall_tau"] == pytest.approx(stats.kendalltau(base, noisy).statistic)
    assert by_model.loc[("partly", "best"), "spearman_rho"] == pytest.approx(stats.spearmanr(base, noisy).statistic)
    assert set(result["negative_prompt"]) == {"worst"}


def test_the_token_that_moves_most_is_found(sweep):
    vocab = [" a", " b", " c", " d", " e", " f"]
    positive = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    negative = [1.5, 5.0, 4.0, 3.0, 2.0, 7.0]  # ' a' falls from rank 1 to 6, ' f' rises from 6 to 1
    frame = sweep("m", vocab, {"best": positive, "worst": negative})
    row = framing(frame, {"best": "pos", "worst": "neg"}, n_movers=2).iloc[0]
    assert row["top_falling"].split(" | ")[0] == repr(" a")
    assert row["top_rising"].split(" | ")[0] == repr(" f")
    movers = framing_movers(frame, {"best": "pos", "worst": "neg"}, n_movers=2)
    first_falling = movers[movers["direction"] == "falling"].iloc[0]
    assert (first_falling["text"], first_falling["rank_positive"], first_falling["rank_negative"]) == (
        " a",
        1,
        6,
    )
    assert first_falling["rank_shift"] == 5
    first_rising = movers[movers["direction"] == "rising"].iloc[0]
    assert (first_rising["text"], first_rising["rank_shift"]) == (" f", -5)
    assert (movers.groupby("direction").size() <= 2).all()


def test_only_tokens_scored_under_both_prompts_are_compared(sweep, texts):
    vocab = texts(10)
    best = sweep("m", vocab, {"best": np.arange(10.0)})
    worst = sweep("m", vocab[:7], {"worst": np.arange(7.0)[::-1]})
    row = framing(pd.concat([best, worst]), {"best": "pos", "worst": "neg"}).iloc[0]
    assert row["n"] == 7 and row["kendall_tau"] == pytest.approx(-1.0)


def test_unknown_prompt_id_and_bad_framing_are_user_errors(sweep, texts):
    frame = sweep("m", texts(5), {"best": np.arange(5.0), "worst": np.arange(5.0)})
    with pytest.raises(UserError, match="no run has: nope"):
        framing(frame, {"best": "pos", "nope": "neg"})
    with pytest.raises(UserError, match="pos or neg"):
        framing(frame, {"best": "sideways"})
    assert normalise_framing(" NEG ") == "negative" and normalise_framing("+") == "positive"


def test_matched_pairs_differ_in_frame_alone(sweep, texts):
    rng = np.random.default_rng(3)
    prompts = ["best_ever", "best_today", "worst_ever", "worst_today", "good_unmatched"]
    frame = sweep("m", texts(30), {p: rng.normal(size=30) for p in prompts})
    framings = {"best_ever": "pos", "best_today": "pos", "good_unmatched": "pos", "worst_ever": "neg"}
    framings["worst_today"] = "neg"
    match = {"best_ever": "ever", "worst_ever": "ever", "best_today": "today", "worst_today": "today"}
    result = framing(frame, framings, match=match)
    pairs = set(zip(result["positive_prompt"], result["negative_prompt"], strict=True))
    assert pairs == {
        ("best_ever", "worst_ever"),
        ("best_today", "worst_today"),
        ("good_unmatched", "worst_ever"),  # a prompt without a key pairs with every prompt of the other frame
        ("good_unmatched", "worst_today"),
    }
    assert len(framing(frame, framings)) == 3 * 2


def test_movers_hold_their_own_text_not_the_pairs_column() -> None:
    """A study keeps the movers of every pair: were they slices of a pair's arrow-backed text column, each
    would keep that whole column alive (about 90 MB a model over 54 prompts of 65,536 tokens)."""
    import gc

    import pyarrow as pa

    from rewardlens.analysis.tokens.framing import _paired_ranks, framing_tables

    rng = np.random.default_rng(0)
    n = 50_000
    texts = pd.Series([f" token{i}" for i in range(n)])

    def prompt() -> pd.DataFrame:
        return pd.DataFrame({"token_id": np.arange(n), "score": rng.normal(size=n), "response": texts})

    gc.collect()
    before = pa.total_allocated_bytes()
    pairs = [("m", f"pos{i}", f"neg{i}", _paired_ranks(prompt(), prompt())) for i in range(4)]
    _, movers = framing_tables(pairs, n_movers=10)
    del pairs
    gc.collect()
    assert len(movers) == 80
    assert pa.total_allocated_bytes() - before < 100_000  # 80 short texts, not four columns of 50,000
