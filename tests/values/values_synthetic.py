"""Synthetic scored words with a planted value bias (a module of its own: `conftest` is ambiguous)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rewardlens.lexicons import Lexicon


def make_lexicon(n_words: int) -> Lexicon:
    """`n_words` agency words `a0..` and as many communion words `c0..`."""
    words = [(f"a{i}", "Agency") for i in range(n_words)] + [(f"c{i}", "Communion") for i in range(n_words)]
    return Lexicon("synthetic", pd.DataFrame(words, columns=["word", "category"]))


def make_scores(
    families: dict[str, str],
    n_words: int = 20,
    n_prompts: int = 4,
    effect: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Scores of every model on every word under n_prompts positive and n_prompts negative prompts.

    With `effect` > 0, llama models score agency words higher and gemma models communion words higher
    under positive prompts, and the reverse under negative prompts (where the best answer is the worst
    thing): the value bias of the study, planted.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for model, family in families.items():
        preferred = {"llama": "a", "gemma": "c"}.get(family)
        for framing in ("positive", "negative"):
            sign = 1.0 if framing == "positive" else -1.0
            for p in range(n_prompts):
                for kind in ("a", "c"):
                    for i in range(n_words):
                        bonus = effect * sign if kind == preferred else 0.0
                        rows.append(
                            {
                                "model": model,
                                "prompt_id": f"{framing}_{p}",
                                "response": f"{kind}{i}",
                                "score": rng.normal() + bonus,
                                "framing": framing,
                            }
                        )
    return pd.DataFrame(rows)
