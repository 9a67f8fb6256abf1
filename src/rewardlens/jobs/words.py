"""Word runs: score every word of a lexicon as the whole response to every prompt.

Each word is a text response: the full rendered conversation is tokenized (a word is often several
tokens), and the cached engine reuses the prompt's KV across the words of a prompt. One shard per
prompt, written atomically, so a word run killed at any moment resumes at the next unfinished prompt.
Rows: `model, prompt_id, prompt, response` (the word), `score`, `category` (categories joined by `;`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rewardlens.errors import UserError
from rewardlens.lexicons import Lexicon, load_lexicon
from rewardlens.progress import Progress
from rewardlens.prompts import Prompt

if TYPE_CHECKING:
    from rewardlens.scorers import ModelScorer, ScorerInfo


# What makes two word runs "the same run": a DIR holding another one is refused (unless overwrite).
# The template keys (sequences, date, template, rendered prefix ids) are those of a sweep, for the same reasons.
IDENTITY_KEYS = (
    "kind_of_run",
    "model_spec",
    "prompts",
    "lexicon",
    "words_sha1",
    "kind",
    "sequences",
    "date",
    "template",
    "rendered_prefix_ids",
    "dtype",
)


@dataclass(frozen=True)
class WordsSummary:
    directory: Path
    rows: int
    rows_expected: int
    rows_written: int
    seconds: float
    complete: bool

    def line(self) -> str:
        state = "complete" if self.complete else "incomplete"
        rate = self.rows_written / self.seconds if self.seconds > 0 else float("nan")
        return (
            f"{self.rows:,} / {self.rows_expected:,} rows ({state}) in {self.directory}; "
            f"{self.rows_written:,} scored in {self.seconds:.1f} s ({rate:,.1f} words/s)"
        )


def word_table(lexicon: Lexicon) -> pd.DataFrame:
    """One row per distinct word with its categories joined by `;` (in the lexicon's order)."""
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
    from rewardlens.scorers import scores_first_token_logprobs

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


def words_sha1(words: pd.DataFrame) -> str:
    """Identifies the word list of a run (the lexicon's name alone could hide an edited file)."""
    return hashlib.sha1("\n".join(words["word"]).encode("utf-8")).hexdigest()


def refuse_other_words_run(
    out_dir: str | os.PathLike[str],
    spec: str,
    prompts: Sequence[Prompt],
    lexicon: Lexicon,
    overwrite: bool,
) -> None:
    """Refuse a DIR holding another run before spending time on loading the model."""
    from rewardlens.runs.store import refuse_other_run

    early = {
        "kind_of_run": "words",
        "model_spec": spec,
        "prompts": [prompt.to_dict() for prompt in prompts],
        "lexicon": lexicon.name,
        "words_sha1": words_sha1(word_table(lexicon)),
    }
    refuse_other_run(out_dir, early, early.keys(), overwrite)


def words_manifest(
    scorer: ScorerInfo,
    spec: str,
    lexicon: Lexicon,
    words: pd.DataFrame,
    prompts: Sequence[Prompt],
    *,
    engine: str = "cached",
    batch_size: int | None = None,
) -> dict[str, Any]:
    """The _run.json of a word run (a single process and Ray workers write the same one)."""
    from rewardlens.sweep import score_definition, template_identity

    description = dict(scorer.describe())
    return {
        "kind_of_run": "words",
        "model_spec": spec,
        "model": scorer.name,
        "prompts": [prompt.to_dict() for prompt in prompts],
        "lexicon": lexicon.name,
        "words_sha1": words_sha1(words),
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
    """The rows of one prompt's shard: every word with its categories and score."""
    return pd.DataFrame(
        {
            "model": model_name,
            "prompt_id": prompt.id,
            "prompt": prompt.text,
            "response": words["word"].tolist(),
            "score": np.asarray(scores, dtype=np.float64),
            "category": words["category"].to_numpy(),
        }
    )


def run_words(
    scorer_or_spec: ModelScorer | str | os.PathLike[str],
    lexicon: str | Lexicon,
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    *,
    engine: str = "cached",
    batch_size: int | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    model_spec: str | None = None,
    **model_options: Any,
) -> WordsSummary:
    """Score every lexicon word under every prompt into a run in `out_dir` (resumed if it is there).

    `scorer_or_spec` is a loaded scorer (then `model_spec` names it in _run.json) or a model spec loaded
    with `model_options` as `load_scorer` does.
    """
    from rewardlens.runs import RunStore
    from rewardlens.sweep import check_prompts

    prompts = check_prompts(prompts)
    chosen = lexicon if isinstance(lexicon, Lexicon) else load_lexicon(lexicon)
    words = word_table(chosen)
    if isinstance(scorer_or_spec, str | os.PathLike):
        from rewardlens.scorers import load_scorer

        spec = os.fspath(scorer_or_spec)
        refuse_other_words_run(out_dir, spec, prompts, chosen, overwrite)
        scorer = load_scorer(spec, **model_options)
    else:
        scorer = scorer_or_spec
        spec = model_spec or str(scorer.describe().get("spec") or scorer.name)
    manifest = words_manifest(scorer, spec, chosen, words, prompts, engine=engine, batch_size=batch_size)
    store = RunStore(out_dir, manifest, identity_keys=IDENTITY_KEYS, overwrite=overwrite)
    started = time.perf_counter()
    written = 0
    texts = words["word"].tolist()
    for index, prompt in enumerate(prompts):
        name = shard_name(index)
        if store.is_done(name):
            continue
        scores = score_words(scorer, prompt.text, texts, engine=engine, batch_size=batch_size, progress=progress)
        store.write_shard(name, word_shard_frame(scorer.name, prompt, words, scores))
        written += len(texts)
    seconds = time.perf_counter() - started
    finished = store.finish(scoring_seconds=seconds)
    return WordsSummary(
        directory=Path(out_dir),
        rows=int(finished["rows"]),
        rows_expected=count_rows_expected(len(words), prompts),
        rows_written=written,
        seconds=seconds,
        complete=bool(finished["complete"]),
    )


__all__ = [
    "IDENTITY_KEYS",
    "WordsSummary",
    "refuse_other_words_run",
    "run_words",
    "score_words",
    "word_shard_frame",
    "word_table",
    "words_manifest",
    "words_sha1",
]
