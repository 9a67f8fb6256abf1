"""The implicit-reward scorer: a policy and a reference language model side by side, and its measures
(the DPO log-ratio and the mean-weighted log-ratio, both times beta)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardlens.config import MEASURES
from rewardlens.errors import UserError
from rewardlens.scorers.model import ModelScorer


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


@dataclass(frozen=True)
class ScorerPair:
    """The scorer of an implicit job: the policy and the reference language models, loaded side by side."""

    policy: ModelScorer
    reference: ModelScorer

    @property
    def name(self) -> str:
        return f"implicit:{self.policy.name}|{self.reference.name}"

    kind = "implicit"
    include_end = False

    @property
    def tokenizer(self) -> Any:
        return self.policy.tokenizer

    def describe(self) -> dict[str, Any]:
        return {"policy": self.policy.describe(), "reference": self.reference.describe()}


__all__ = ["ScorerPair", "check_measure", "implicit_reward", "score_definition"]
