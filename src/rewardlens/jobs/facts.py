"""What the driver of a Ray run knows about a model it has not loaded itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rewardlens.scorers import ModelScorer


@dataclass(frozen=True)
class ScorerFacts:
    """What the driver needs to know about a model, taken from a worker that loaded it.

    It stands in for the scorer where the run is planned (`SweepJob.plan`, `WordsJob.plan`): the driver
    writes the _run.json a single-process run writes without loading the weights itself.
    """

    name: str
    kind: str
    include_end: bool
    description: dict[str, Any]
    tokenizer: Any = field(repr=False)

    def describe(self) -> dict[str, Any]:
        return dict(self.description)


def scorer_facts(scorer: ModelScorer) -> ScorerFacts:
    return ScorerFacts(
        name=str(scorer.name),
        kind=str(scorer.kind),
        include_end=bool(scorer.include_end),
        description=dict(scorer.describe()),
        tokenizer=scorer.tokenizer,
    )


__all__ = ["ScorerFacts", "scorer_facts"]
