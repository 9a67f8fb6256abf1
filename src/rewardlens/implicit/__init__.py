"""Implicit reward models: what instruction tuning added, from policy and reference log-probabilities.

The DPO implicit reward of a response y to a prompt x is `beta * (log p_policy(y|x) - log p_reference(y|x))`
(`log-ratio`); the mean-weighted log-ratio `mwlr` weighs the same difference by the mean probability
`0.5 * (p_policy + p_reference)`, so that responses neither model would give count little. Here `beta`
multiplies both measures (1 = the formulas as written).

Responses are either the whole vocabulary (`vocab`: log p(first response token) from one forward pass per
prompt and model) or the words of a lexicon (`lexicon`: the summed log-probability of each word's tokens by
teacher forcing, the cached engine reusing the prompt's KV). The policy (an instruction-tuned model) reads
its chat template with the generation prompt; the reference (a base model) reads `plain-nospace` by default:
`User: {prompt}\\nAssistant:` as the prefix, the response after one space — the same text as the `plain`
template, but the space belongs to the response's first token, as in running text (see
`rewardlens.models.templates`). Both templates are recorded in `_run.json`, with the one date that
date-stamped templates render (never today's) and a sha1 of each template's prompt ids, as for sweeps.

Vocabularies are aligned on decoded text, for one tokenizer as for two (`rewardlens.analysis.alignment`).
The two templates start a response differently — the chat prefix ends in a newline, `plain-nospace` in
"Assistant:", so a response "love" is the token "love" for the policy and " love" for the reference — and
pairing ids would mostly measure whether a token starts with a space. By default surrounding whitespace is
stripped, a text is kept when each side holds it in the form its template starts a response with (each
template's lead, "" or " ", is read from its own rendering), and a side's log-probability of a text is the
log-sum-exp over its ids with that text: the probability that the first response token spells it. The rule,
the leads and the counts dropped on each side go into `_run.json`. `align="id"` pairs the same token id
(one tokenizer only), the template boundary included.

The output is an ordinary run (one Parquet shard per prompt, resumable): `score` is the implicit reward,
with `logp_policy`, `logp_reference` and the usual sweep or word columns.
"""

from __future__ import annotations

# The pieces live where their layer is: the scorer kinds in `rewardlens.scorers` (language models, pairing, the
# measures), the resumable run in `rewardlens.jobs.implicit`; this package is the one place to import them from.
from rewardlens.jobs.implicit import ImplicitJob, alignment_line, implicit_model_spec, implicit_on_ray, run_implicit
from rewardlens.scorers.implicit import ScorerPair, check_measure, implicit_reward, score_definition
from rewardlens.scorers.language import load_language_model, require_language_model, response_lead
from rewardlens.scorers.pairing import VocabularyPairing, pair_vocabularies, vocabulary_logprobs, word_logprobs

__all__ = [
    "ImplicitJob",
    "ScorerPair",
    "alignment_line",
    "VocabularyPairing",
    "check_measure",
    "implicit_model_spec",
    "implicit_on_ray",
    "implicit_reward",
    "load_language_model",
    "pair_vocabularies",
    "require_language_model",
    "response_lead",
    "run_implicit",
    "score_definition",
    "vocabulary_logprobs",
    "word_logprobs",
]
