"""A scorer's scores of whole-word responses, with the one-forward-pass shortcut for a language model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rewardlens.progress import Progress
from rewardlens.scorers.model import ModelScorer, scores_first_token_logprobs


def score_words(
    scorer: ModelScorer,
    prompt: str,
    texts: Sequence[str],
    *,
    engine: str = "cached",
    batch_size: int | None = None,
    progress: Progress = None,
) -> np.ndarray:
    """`scorer.score_texts(prompt, texts)`, with a shortcut for a language model's one-token words.

    A language model's score of a word is the summed log-probability of its tokens. Where the rendered
    conversation is exactly the prompt's prefix ids plus one token, that is one entry of the first-token
    log-probabilities, which one forward pass gives for the whole vocabulary; only the longer words go
    through the engine. The token ids are those of the full conversation either way.
    """
    if not scores_first_token_logprobs(scorer):
        return np.asarray(
            scorer.score_texts(prompt, list(texts), engine=engine, batch_size=batch_size, progress=progress)
        )
    prefix = tuple(scorer.template.prefix_ids(prompt))
    requests = scorer.text_requests(prompt, list(texts))
    single = [i for i, r in enumerate(requests) if r.prompt_ids == prefix and len(r.continuation_ids) == 1]
    scores = np.full(len(texts), np.nan)
    if single:
        vector = scorer.first_token_logprobs(prompt)
        scores[single] = vector[[requests[i].continuation_ids[0] for i in single]]
        if progress:
            progress(len(single))
    rest = sorted(set(range(len(texts))) - set(single))
    if rest:
        scores[rest] = scorer.score_requests(
            [requests[i] for i in rest], engine=engine, batch_size=batch_size, progress=progress
        )
    return scores


__all__ = ["score_words"]
