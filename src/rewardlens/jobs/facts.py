"""Units of work that a worker takes from the queue: one shard of a sweep or of a word run.

A task carries everything its shard needs (the prompt, the candidate block or the word table, the
engine settings) and is scored with the worker's loaded model by the same functions a single-process
run uses (`rewardlens.sweep.score_shard`, `rewardlens.words.score_words`), so a shard is the same
rows whichever process scored it. Tasks are plain dataclasses: Ray pickles them to the workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from rewardlens.progress import Progress
from rewardlens.prompts import Prompt
from rewardlens.sweep import Shard, score_shard, shard_frame

if TYPE_CHECKING:
    from rewardlens.scorers import ModelScorer



@dataclass(frozen=True)
class ScorerFacts:
    """What the driver needs to know about a model, taken from a worker that loaded it.

    It stands in for the scorer where the run is planned (`prepare_sweep`, `words_manifest`): the driver
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


class ShardTask(Protocol):
    """One shard to score: its file name in the run, its row count, and how to score it."""

    @property
    def name(self) -> str: ...

    @property
    def rows(self) -> int: ...

    def score(self, scorer: ModelScorer, cache: dict[str, Any], progress: Progress = None) -> pd.DataFrame: ...


@dataclass(frozen=True)
class SweepShardTask:
    """A prompt and a block of candidate tokens (rows of the candidate table)."""

    shard: Shard
    block: pd.DataFrame = field(repr=False)
    engine: str = "cached"
    batch_size: int | None = None

    @property
    def name(self) -> str:
        return self.shard.name

    @property
    def rows(self) -> int:
        return len(self.block)

    def score(self, scorer: ModelScorer, cache: dict[str, Any], progress: Progress = None) -> pd.DataFrame:
        # A language model's whole-vocabulary log-probabilities serve every shard of the same prompt.
        if cache.get("prompt") != self.shard.prompt.text:
            cache["prompt"], cache["logprobs"] = self.shard.prompt.text, {}
        ids = self.block["token_id"].to_numpy()
        scores = score_shard(
            scorer,
            self.shard,
            ids,
            engine=self.engine,
            batch_size=self.batch_size,
            progress=progress,
            logprobs=cache["logprobs"],
        )
        return shard_frame(scorer.name, self.shard, self.block, scores)


@dataclass(frozen=True)
class WordShardTask:
    """Every word of a lexicon under one prompt (a word run's shard is one prompt)."""

    index: int
    prompt: Prompt
    words: pd.DataFrame = field(repr=False)  # columns word, category
    engine: str = "cached"
    batch_size: int | None = None

    @property
    def name(self) -> str:
        from rewardlens.words import shard_name

        return shard_name(self.index)

    @property
    def rows(self) -> int:
        return len(self.words)

    def score(self, scorer: ModelScorer, cache: dict[str, Any], progress: Progress = None) -> pd.DataFrame:
        from rewardlens.words import score_words, word_shard_frame

        texts = self.words["word"].tolist()
        scores = score_words(
            scorer, self.prompt.text, texts, engine=self.engine, batch_size=self.batch_size, progress=progress
        )
        return word_shard_frame(scorer.name, self.prompt, self.words, np.asarray(scores))


__all__ = ["ScorerFacts", "ShardTask", "SweepShardTask", "WordShardTask", "scorer_facts"]
