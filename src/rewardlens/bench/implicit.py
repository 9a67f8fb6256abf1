"""`rewardlens bench implicit`: a whole-vocabulary implicit reward on one prompt against plain forward passes."""

from __future__ import annotations

import time
from typing import Any

from rewardlens.config import DEFAULT_POLICY_TEMPLATE, DEFAULT_REFERENCE_TEMPLATE, model_options
from rewardlens.errors import UserError
from rewardlens.scorers import ModelScorer
from rewardlens.scorers.implicit import implicit_reward
from rewardlens.scorers.language import load_language_model
from rewardlens.scorers.pairing import pair_vocabularies, vocabulary_logprobs


def _plain_forward_seconds(scorer: ModelScorer, prompt: str) -> float:
    """One ordinary forward pass of the model over the prompt's prefix ids (logits at every position)."""
    import torch

    ids = torch.tensor([scorer.template.prefix_ids(prompt)], device=scorer.loaded.device)
    with torch.inference_mode():
        started = time.perf_counter()
        scorer.model(input_ids=ids, use_cache=False)
        if ids.device.type == "cuda":
            torch.cuda.synchronize(ids.device)
        return time.perf_counter() - started


def benchmark_implicit(
    policy: str,
    reference: str,
    prompt: str,
    *,
    policy_template: str = DEFAULT_POLICY_TEMPLATE,
    reference_template: str = DEFAULT_REFERENCE_TEMPLATE,
    repeats: int = 3,
    **loading: Any,
) -> dict[str, Any]:
    """Best-of-`repeats` time of a whole-vocabulary implicit reward on one prompt (both forward passes,
    alignment pick and measure) against one plain forward pass of each model; timings alternate."""
    if repeats < 1:
        raise UserError("--repeats must be at least 1")
    options = model_options(None, **loading)
    policy_scorer = load_language_model(policy, "policy", options.with_changes(template=policy_template))
    reference_scorer = load_language_model(reference, "reference", options.with_changes(template=reference_template))
    pairing = pair_vocabularies(policy_scorer, reference_scorer)
    implicit_times, policy_times, reference_times = [], [], []
    for _ in range(repeats + 1):  # the first round warms up and is not counted
        started = time.perf_counter()
        values = vocabulary_logprobs(policy_scorer, reference_scorer, pairing, prompt)
        implicit_reward(values["logp_policy"], values["logp_reference"])
        implicit_times.append(time.perf_counter() - started)
        policy_times.append(_plain_forward_seconds(policy_scorer, prompt))
        reference_times.append(_plain_forward_seconds(reference_scorer, prompt))
    implicit_s, policy_s, reference_s = (min(times[1:]) for times in (implicit_times, policy_times, reference_times))
    return {
        "policy": policy_scorer.name,
        "reference": reference_scorer.name,
        "device": str(policy_scorer.loaded.device),
        "aligned_by": pairing.by,
        "responses": pairing.n_rows,
        "implicit_s": round(implicit_s, 5),
        "forward_policy_s": round(policy_s, 5),
        "forward_reference_s": round(reference_s, 5),
        "overhead": round(implicit_s / (policy_s + reference_s), 3),
        "target_overhead": 1.5,
        "repeats": repeats,
    }


__all__ = ["benchmark_implicit"]
