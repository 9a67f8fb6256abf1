"""Lexicon loaders: bundled lexicons, each user format, wildcards, malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardlens.errors import UserError
from rewardlens.lexicons import list_lexicons, load_lexicon


def test_bundled_lexicons() -> None:
    assert set(list_lexicons()) == {"big2-nouns", "big2-expanded", "mfd2"}
    nouns = load_lexicon("big2-nouns")
    assert nouns.counts() == {"Agency": 104, "Communion": 159}
    assert len(nouns.words) == 263
    expanded = load_lexicon("big2-expanded")
    assert set(expanded.categories) == {"Agency", "Communion"}
    assert len(expanded.words) == 900  # 936 rows, 36 word forms listed twice
    mfd = load_lexicon("mfd2")
    assert len(mfd.categories) == 10
    assert {c.split("_")[1] for c in mfd.categories} == {"Virtue", "Vice"}
    assert set(mfd.entries.loc[mfd.entries["word"] == "abused", "category"]) == {"Care_Vice"}


def test_long_csv_with_multiple_categories(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("word,category\nkind,warm\nboss,power;status\n")
    lexicon = load_lexicon(path)
    assert lexicon.name == "mine"
    assert sorted(map(tuple, lexicon.entries.to_numpy().tolist())) == [
        ("boss", "power"),
        ("boss", "status"),
        ("kind", "warm"),
    ]


@pytest.mark.parametrize("blank", ["NA", ""])
def test_wide_csv(tmp_path: Path, blank: str) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(f'"DicTerm","A","B"\n"x1","X",{blank}\n"x2",{blank},"X"\n"x3","X","X"\n')
    entries = load_lexicon(path).entries
    pairs = sorted(map(tuple, entries.to_numpy().tolist()))
    assert pairs == [("x1", "A"), ("x2", "B"), ("x3", "A"), ("x3", "B")]


def test_liwc_dic_with_wildcards(tmp_path: Path) -> None:
    path = tmp_path / "moral.dic"
    path.write_text("%\n1\tCare_Vice\n2\tCare_Virtue\n%\nabus*\t1\nkind\t2\nharm\t1 2\n")
    lexicon = load_lexicon(path)
    assert lexicon.counts() == {"Care_Virtue": 2, "Care_Vice": 1}
    assert lexicon.prefixes.to_numpy().tolist() == [["abus", "Care_Vice"]]
    expanded = load_lexicon(path, words=["abuse", "abusive", "Abuser", "kindness", "bus"])
    vice = set(expanded.entries.loc[expanded.entries["category"] == "Care_Vice", "word"])
    assert vice == {"abuse", "abusive", "Abuser", "harm"}
    assert len(expanded.prefixes) == 0


def test_dicx_like_bundled(tmp_path: Path) -> None:
    path = tmp_path / "small.dicx"
    path.write_text("DicTerm,Care_Virtue,Care_Vice\ncare,X,\nhurt*,,X\n")
    lexicon = load_lexicon(path, words=["hurting", "care"])
    assert sorted(map(tuple, lexicon.entries.to_numpy().tolist())) == [
        ("care", "Care_Virtue"),
        ("hurting", "Care_Vice"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("one.csv", "word,category\n", "header row and at least one word"),
        ("ragged.csv", "word,A,B\nx,X\n", "fields"),
        ("mark.csv", "word,A,B\nx,X,maybe\n", "use X"),
        ("long.csv", "word,category\nx,\n", "not `word,category`"),
        ("nohead.dic", "abus*\t1\n", "header"),
        ("badid.dic", "%\n1\tA\n%\nword\t7\n", "category id '7'"),
        ("noids.dic", "%\n1\tA\n%\nword\n", "without category ids"),
        ("midstar.csv", "word,category\na*b,A\n", "wildcards"),
        ("empty.dic", "%\n1\tA\n%\n", "no words"),
    ],
)
def test_malformed_lexicons(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_lexicon(path)


def test_missing_and_binary_lexicon(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a bundled lexicon"):
        load_lexicon(tmp_path / "nope.csv")
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(UserError, match="UTF-8"):
        load_lexicon(binary)
