"""Fixtures: planted preference data, and a small lexicon and framed prompt set to score it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from planted import AGENCY, COMMUNION, planted_pairs, write_jsonl


@pytest.fixture
def planted_jsonl(tmp_path: Path) -> Callable[..., Path]:
    def make(n: int = 48, seed: int = 0, prefer: str = "communion", name: str = "pairs.jsonl") -> Path:
        return write_jsonl(tmp_path / name, planted_pairs(n, seed, prefer))

    return make


@pytest.fixture
def word_lexicon(tmp_path: Path) -> Path:
    rows = [f"{word},Communion" for word in COMMUNION] + [f"{word},Agency" for word in AGENCY]
    path = tmp_path / "lexicon.csv"
    path.write_text("word,category\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def framed_prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.yaml"
    path.write_text(
        "best_one: {text: 'What is the best thing in the world?', framing: positive}\n"
        "greatest_one: {text: 'What, in one word, is the greatest thing ever?', framing: positive}\n"
        "worst_one: {text: 'What is the worst thing in the world?', framing: negative}\n"
        "bad_one: {text: 'What, in one word, is a bad thing?', framing: negative}\n",
        encoding="utf-8",
    )
    return path
