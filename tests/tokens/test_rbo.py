"""Rank-biased overlap (Webber, Moffat & Zobel 2010), extrapolated RBO_ext, against its definition."""

import itertools

import numpy as np
import pytest

from rewardlens.analysis.tokens import rank_biased_overlap


def rbo_ext_by_definition(a: list[str], b: list[str], p: float) -> float:
    """Eq. 32 of the paper written out with set intersections, O(l^2): the reference for the fast version."""
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    s, n = len(short), len(long_)

    def overlap(
        d: int,
    ) -> int:  # X_d; past the short list's end, the long prefix against the whole short list
        return len(set(long_[:d]) & set(short[: min(d, s)]))

    first = sum(overlap(d) / d * p**d for d in range(1, n + 1))
    second = sum(overlap(s) * (d - s) / (s * d) * p**d for d in range(s + 1, n + 1))
    return (1 - p) / p * (first + second) + ((overlap(n) - overlap(s)) / n + overlap(s) / s) * p**n


def test_identical_lists_give_one_and_disjoint_lists_zero():
    items = list("abcdefgh")
    assert rank_biased_overlap(items, items, p=0.9) == pytest.approx(1.0)
    assert rank_biased_overlap(items, list("stuvwxyz"), p=0.9) == pytest.approx(0.0)


def test_hand_worked_swap_of_the_top_two():
    # X_1 = 0, X_d = d for d = 2..5:  (1-p)/p * (p^2 + p^3 + p^4 + p^5) + 1 * p^5
    # = (0.1/0.9) * 2.78559 + 0.59049 = 0.30951 + 0.59049 = 0.9: only depth 1's weight (1 - p) is lost.
    assert rank_biased_overlap(list("abcde"), list("bacde"), p=0.9) == pytest.approx(0.9)


def test_hand_worked_uneven_lists():
    # L = a b c d, S = b a, p = 0.5: X = 0, 2, 2, 2; X_s = X_l = 2.
    # sum X_d/d p^d = 0 + 1/4 + (2/3)/8 + (1/2)/16 = 0.364583; tail sum over d = 3, 4 of X_s (d-s)/(s d) p^d
    # = (1/3)/8 + (1/2)/16 = 0.072917; (1-p)/p = 1; last term (0/4 + 2/2) p^4 = 0.0625; total 0.5.
    assert rank_biased_overlap(list("abcd"), list("ba"), p=0.5) == pytest.approx(0.5)
    assert rank_biased_overlap(list("ba"), list("abcd"), p=0.5) == pytest.approx(0.5)


def test_top_weighted_disagreement_at_the_top_costs_more_than_at_the_bottom():
    items = [str(i) for i in range(30)]
    top_swapped = [items[1], items[0], *items[2:]]
    bottom_swapped = [*items[:-2], items[-1], items[-2]]
    assert rank_biased_overlap(items, top_swapped) < rank_biased_overlap(items, bottom_swapped) < 1.0


@pytest.mark.parametrize("p", [0.5, 0.9, 0.98])
def test_fast_rbo_equals_the_definition_on_random_lists(p):
    rng = np.random.default_rng(int(p * 100))
    pool = [f"w{i}" for i in range(40)]
    for _ in range(30):
        a = list(rng.choice(pool, size=rng.integers(1, 25), replace=False))
        b = list(rng.choice(pool, size=rng.integers(1, 25), replace=False))
        assert rank_biased_overlap(a, b, p) == pytest.approx(rbo_ext_by_definition(a, b, p), abs=1e-12)
        assert rank_biased_overlap(a, b, p) == pytest.approx(rank_biased_overlap(b, a, p), abs=1e-12)
        assert 0.0 <= rank_biased_overlap(a, b, p) <= 1.0 + 1e-12


def test_every_permutation_of_a_short_list_stays_in_range_and_only_the_identity_gives_one():
    items = list("abcd")
    for permutation in itertools.permutations(items):
        value = rank_biased_overlap(items, list(permutation), p=0.9)
        assert 0.0 < value <= 1.0 + 1e-12
        assert (value == pytest.approx(1.0)) == (list(permutation) == items)


def test_bad_arguments():
    with pytest.raises(ValueError):
        rank_biased_overlap(["a", "a"], ["a"], p=0.9)
    with pytest.raises(ValueError):
        rank_biased_overlap(["a"], ["a"], p=1.0)
    assert np.isnan(rank_biased_overlap([], ["a"]))
