"""The implicit-reward measures: the DPO log-ratio and the mean-weighted log-ratio, both times beta."""

from __future__ import annotations

import math

import numpy as np

from rewardlens.config import MEASURES
from rewardlens.errors import UserError


def implicit_reward(
    logp_policy: np.ndarray, logp_reference: np.ndarray, measure: str = "log-ratio", beta: float = 1.0
) -> np.ndarray:
    """The implicit reward of each response from its policy and reference log-probabilities."""
    check_measure(measure, beta)
    policy = np.asarray(logp_policy, dtype=np.float64)
    reference = np.asarray(logp_reference, dtype=np.float64)
    ratio = beta * (policy - reference)
    if measure == "log-ratio":
        return ratio
    return 0.5 * (np.exp(policy) + np.exp(reference)) * ratio


def check_measure(measure: str, beta: float) -> None:
    if measure not in MEASURES:
        raise UserError(f"unknown measure '{measure}' (use {', '.join(MEASURES)})")
    if not math.isfinite(beta) or beta <= 0:
        raise UserError(f"--beta must be a positive number, got {beta}")


def score_definition(measure: str, beta: float, responses: str) -> str:
    what = "first response token" if responses == "vocab" else "word (summed over its tokens)"
    ratio = f"{beta:g} * (log p_policy(y|x) - log p_reference(y|x))"
    if measure == "log-ratio":
        return f"{ratio}, y = {what}"
    return f"0.5 * (p_policy(y|x) + p_reference(y|x)) * {ratio}, y = {what}"


__all__ = ["check_measure", "implicit_reward", "score_definition"]
