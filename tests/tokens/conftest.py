"""Synthetic sweep frames for the token-analysis tests: any vocabulary, any planted scores."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pytest


def make_sweep(
    model: str,
    texts: Sequence[str],
    scores: Mapping[str, Sequence[float]],
    *,
    token_ids: Sequence[int] | None = None,
    leading_space: Sequence[bool] | None = None,
    is_special: Sequence[bool] | None = None,
    is_word: Sequence[bool] | None = None,
) -> pd.DataFrame:
    """Rows in the run-store sweep schema: one per (prompt, token); `scores[prompt_id]` aligned with `texts`.

    By default `leading_space` is read off the text, and `is_word` is letters only after one optional space.
    """
    n = len(texts)
    ids = list(range(n)) if token_ids is None else list(token_ids)
    spaces = [t.startswith(" ") for t in texts] if leading_space is None else list(leading_space)
    words = [t.removeprefix(" ").isalpha() for t in texts] if is_word is None else list(is_word)
    special = [False] * n if is_special is None else list(is_special)
    pieces = []
    for prompt_id, values in scores.items():
        assert len(values) == n
        pieces.append(
            pd.DataFrame(
                {
                    "model": model,
                    "prompt_id": prompt_id,
                    "prompt": f"What, in one word, is the {prompt_id} thing ever?",
                    "token_id": np.asarray(ids, dtype=np.int64),
                    "token": [t.replace(" ", "Ġ") for t in texts],
                    "response": list(texts),
                    "score": np.asarray(values, dtype=np.float64),
                    "is_special": special,
                    "leading_space": spaces,
                    "is_word": words,
                }
            )
        )
    return pd.concat(pieces, ignore_index=True)


@pytest.fixture
def sweep() -> Callable[..., pd.DataFrame]:
    return make_sweep


def vocabulary(n: int) -> list[str]:
    """n distinct texts, alternating with and without a leading space."""
    return [(" " if i % 2 else "") + f"tok{i}" for i in range(n)]


@pytest.fixture
def texts() -> Callable[[int], list[str]]:
    return vocabulary
