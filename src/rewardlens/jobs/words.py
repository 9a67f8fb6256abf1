"""Word runs: score every word of a lexicon (or every response of a list) as the whole response to every prompt.

Each word is a text response: the full rendered conversation is tokenized (a word is often several
tokens), and the cached engine reuses the prompt's KV across the words of a prompt. One shard per
prompt, written atomically, so a word run killed at any moment resumes at the next unfinished prompt.
Rows: `model, prompt_id, prompt, response` (the word), `score`, `category` (categories joined by `;`).
A run of a response list (`rewardlens.responses`, `words --responses FILE`) is the same job: its rows carry the
list's metadata columns instead of `category`, and its manifest names the list (`responses`) instead of a lexicon.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rewardlens.config import ModelOptions, split_model_options
from rewardlens.errors import UserError
from rewardlens.jobs.base import JobPlan, JobSummary
from rewardlens.jobs.executor import loaded_or_spec, run_job
from rewardlens.jobs.sweep import score_definition, settle_scoring_fields, template_identity
from rewardlens.lexicons import Lexicon, load_lexicon
from rewardlens.progress import Progress
from rewardlens.prompts import Prompt
from rewardlens.responses import Responses
from rewardlens.runs.store import RunStore, refuse_other_run
from rewardlens.scorers.words import score_words

if TYPE_CHECKING:
    from rewardlens.jobs.ray_pool import RayOptions
    from rewardlens.scorers import ModelScorer, ScorerInfo


# What makes two word runs "the same run": a DIR holding another one is refused (unless overwrite).
# The template keys (sequences, date, template, rendered prefix ids) are those of a sweep, for the same reasons.
IDENTITY_KEYS = (
    "kind_of_run",
    "model_spec",
    "prompts",
    "lexicon",
    "responses",
    "words_sha1",
    "kind",
    "sequences",
    "date",
    "template",
    "rendered_prefix_ids",
    "dtype",
)


WordSource = Lexicon | Responses  # what a word run scores: a lexicon's words, or a list of responses


def word_table(lexicon: WordSource) -> pd.DataFrame:
    """One row per distinct word with its categories joined by `;` (in the lexicon's order); a response list's
    table as it is (`word` and its metadata columns)."""
    if isinstance(lexicon, Responses):
        return lexicon.table
    if len(lexicon.prefixes):
        example = lexicon.prefixes["prefix"].iloc[0]
        raise UserError(
            f"lexicon {lexicon.name} has wildcard entries ({example}*): scoring needs whole words; "
            "expand them against a word list first (load_lexicon(spec, words=...))"
        )
    entries = lexicon.entries.assign(word=lexicon.entries["word"].astype(str).str.strip())
    table = entries.groupby("word", sort=False)["category"].agg(lambda c: ";".join(dict.fromkeys(c)))
    return table.reset_index()


def shard_name(index: int) -> str:
    return f"prompt-{index:04d}"


def count_rows_expected(n_words: int, prompts: Sequence[Prompt]) -> int:
    return n_words * len(prompts)


def words_sha1(words: pd.DataFrame) -> str:
    """Identifies the word list of a run (the lexicon's name alone could hide an edited file)."""
    return hashlib.sha1("\n".join(words["word"]).encode("utf-8")).hexdigest()


def source_identity(lexicon: WordSource) -> dict[str, Any]:
    """The manifest keys naming what a run scores: a lexicon (name, words), or a response list (name, and the
    whole table: its metadata go into the rows, so an edited metadata column is another run)."""
    if isinstance(lexicon, Responses):
        return {"lexicon": None, "responses": lexicon.name, "words_sha1": lexicon.sha1}
    return {"lexicon": lexicon.name, "words_sha1": words_sha1(word_table(lexicon))}


def refuse_other_words_run(
    out_dir: str | os.PathLike[str],
    spec: str,
    prompts: Sequence[Prompt],
    lexicon: WordSource,
    overwrite: bool,
) -> None:
    """Refuse a DIR holding another run before spending time on loading the model."""
    early = {
        "kind_of_run": "words",
        "model_spec": spec,
        "prompts": [prompt.to_dict() for prompt in prompts],
        **source_identity(lexicon),
    }
    refuse_other_run(out_dir, early, early.keys(), overwrite)


def words_manifest(
    scorer: ScorerInfo,
    spec: str,
    lexicon: WordSource,
    words: pd.DataFrame,
    prompts: Sequence[Prompt],
    *,
    engine: str = "cached",
    batch_size: int | None = None,
) -> dict[str, Any]:
    """The _run.json of a word run (a single process and Ray workers write the same one)."""
    description = dict(scorer.describe())
    return {
        "kind_of_run": "words",
        "model_spec": spec,
        "model": scorer.name,
        "prompts": [prompt.to_dict() for prompt in prompts],
        **source_identity(lexicon),
        **({"metadata": lexicon.metadata, "source": lexicon.source} if isinstance(lexicon, Responses) else {}),
        "n_words": len(words),
        "kind": scorer.kind,
        "dtype": description.get("dtype"),
        "device": description.get("device"),
        "template": description.get("template"),
        **template_identity(scorer, prompts),
        "score_definition": score_definition(scorer).replace("[token_id]", "word_ids"),
        "scorer": description,
        "engine": engine,
        "batch_size": batch_size,
        "rows_expected": count_rows_expected(len(words), prompts),
    }


def word_shard_frame(model_name: str, prompt: Prompt, words: pd.DataFrame, scores: np.ndarray) -> pd.DataFrame:
    """The rows of one prompt's shard: every word with its score, then its categories (a lexicon) or its
    metadata columns (a response list)."""
    frame = pd.DataFrame(
        {
            "model": model_name,
            "prompt_id": prompt.id,
            "prompt": prompt.text,
            "response": words["word"].tolist(),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )
    for column in words.columns:
        if column != "word":
            frame[column] = words[column].to_numpy()
    return frame


@dataclass(frozen=True)
class WordShardTask:
    """Every word of a lexicon under one prompt (a word run's shard is one prompt)."""

    index: int
    prompt: Prompt
    words: pd.DataFrame = field(repr=False)  # columns word, category (or a response list's metadata)
    engine: str = "cached"
    batch_size: int | None = None

    @property
    def name(self) -> str:
        return shard_name(self.index)

    @property
    def rows(self) -> int:
        return len(self.words)

    def score(self, scorer: ModelScorer, cache: dict[str, Any], progress: Progress = None) -> pd.DataFrame:
        texts = self.words["word"].tolist()
        scores = score_words(
            scorer, self.prompt.text, texts, engine=self.engine, batch_size=self.batch_size, progress=progress
        )
        return word_shard_frame(scorer.name, self.prompt, self.words, np.asarray(scores))


@dataclass(frozen=True)
class WordsJob:
    """Score every word of a lexicon (or response of a list) as the whole response to every prompt, into a run in
    `out_dir`."""

    model_spec: str
    lexicon: WordSource
    prompts: tuple[Prompt, ...]
    out_dir: Path
    batch_size: int | None = None
    engine: str = "cached"

    def __post_init__(self) -> None:
        settle_scoring_fields(self)
        word_table(self.lexicon)  # a lexicon with wildcards is refused before a model is loaded

    @classmethod
    def of(
        cls, model_spec: str, lexicon: str | WordSource, prompts: Sequence[Prompt], out_dir: Any, **options: Any
    ) -> WordsJob:
        """A job from a lexicon name or file (loaded here), a `Lexicon` or a response list (`Responses`)."""
        chosen = lexicon if isinstance(lexicon, Lexicon | Responses) else load_lexicon(lexicon)
        return cls(model_spec, chosen, tuple(prompts), Path(out_dir), **options)

    def refuse_other_run(self, overwrite: bool) -> None:
        refuse_other_words_run(self.out_dir, self.model_spec, self.prompts, self.lexicon, overwrite)

    def plan(self, scorer: ScorerInfo, overwrite: bool = False) -> JobPlan:
        words = word_table(self.lexicon)
        manifest = words_manifest(
            scorer, self.model_spec, self.lexicon, words, self.prompts, engine=self.engine, batch_size=self.batch_size
        )
        store = RunStore(self.out_dir, manifest, identity_keys=IDENTITY_KEYS, overwrite=overwrite)
        tasks = [WordShardTask(i, p, words, self.engine, self.batch_size) for i, p in enumerate(self.prompts)]
        what = f"{self.lexicon.name} {'responses' if isinstance(self.lexicon, Responses) else 'words'}"
        return JobPlan(scorer, store, list(tasks), int(manifest["rows_expected"]), what, "words")


def run_words(
    scorer_or_spec: ModelScorer | str | os.PathLike[str],
    lexicon: str | WordSource,
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: Progress = None,
    model_spec: str | None = None,
    options: ModelOptions | None = None,
    ray: RayOptions | None = None,
    **job_options: Any,
) -> JobSummary:
    """Score every lexicon word (or listed response) under every prompt into a run in `out_dir` (resumed if it is
    there).

    `scorer_or_spec` is a loaded scorer (then `model_spec` names it in _run.json) or a model spec loaded
    with `options` and the keywords that are its fields (here, or on Ray's actors).
    """
    scorer, spec = loaded_or_spec(scorer_or_spec)
    options, job_options = split_model_options(options, job_options)
    job = WordsJob.of(model_spec or spec, lexicon, prompts, out_dir, **job_options)
    return run_job(job, scorer, options=options, ray=ray, overwrite=overwrite, progress=progress)


__all__ = [
    "IDENTITY_KEYS",
    "WordShardTask",
    "WordsJob",
    "refuse_other_words_run",
    "run_words",
    "shard_name",
    "source_identity",
    "word_shard_frame",
    "word_table",
    "words_manifest",
    "words_sha1",
]
