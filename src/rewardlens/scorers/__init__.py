"""The kinds of scorer behind one protocol: a reward model, the log-probability of a language model, and the
implicit reward of a policy/reference pair.

A scorer turns (prompt, response) pairs into exact id sequences with its template and hands them to an engine;
it never computes statistics and never writes a run (that is `rewardlens.jobs`).

`model` (one model: `ModelScorer`, `load_scorer`), `words` (whole-word responses, with a language model's
one-pass shortcut), `language` (a language model loaded for the policy or reference role), `pairing` (the two
vocabularies of an implicit reward aligned), `implicit` (the pair and the implicit-reward measures).
"""

from __future__ import annotations

from rewardlens.scorers.model import (
    ModelScorer,
    ScorerInfo,
    default_batch_size,
    load_scorer,
    scores_first_token_logprobs,
)

__all__ = ["ModelScorer", "ScorerInfo", "default_batch_size", "load_scorer", "scores_first_token_logprobs"]
