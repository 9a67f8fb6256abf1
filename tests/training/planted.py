"""Synthetic preference pairs with a planted preference (chosen ends with a word of one category)."""

from __future__ import annotations

import json
import random
from pathlib import Path

# Words the tiny tokenizer was trained on (tests/tiny_models.py), so each is a few tokens at most.
COMMUNION = ["love", "family", "kindness", "friendship", "warmth", "trust"]
AGENCY = ["power", "success", "wealth", "ambition", "competence", "achievement"]
FILLERS = ["quick", "brown", "fox", "lazy", "dog", "hello", "world", "there", "jumps", "over"]
PROMPTS = [
    "What, in one word, is the greatest thing ever?",
    "What is the best thing in the world?",
    "Hello there! What is the best thing?",
]


def planted_pairs(n: int, seed: int, prefer: str = "communion") -> list[dict[str, str]]:
    """Minimal pairs: the same filler words and prompt, chosen ends with a word of the preferred category."""
    rng = random.Random(seed)
    good, bad = (COMMUNION, AGENCY) if prefer == "communion" else (AGENCY, COMMUNION)
    pairs = []
    for _ in range(n):
        filler = " ".join(rng.sample(FILLERS, 2))
        pairs.append({
            "prompt": rng.choice(PROMPTS),
            "chosen": f"{filler} {rng.choice(good)}",
            "rejected": f"{filler} {rng.choice(bad)}",
        })
    return pairs


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path
