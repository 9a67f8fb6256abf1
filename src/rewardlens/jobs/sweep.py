"""Exhaustive vocabulary sweeps: score every candidate token as the whole response to each prompt.

A sweep is a plan of shards — one per (prompt, block of `shard_size` candidate ids), named by what
they hold — executed into a `RunStore`. A shard that exists is complete (atomic writes), so running
the same sweep on the same DIR again skips it: a sweep killed at any moment resumes with no row
missing and none twice. Memory holds one shard of scores at a time (plus, for a language model, one
vocabulary-sized vector of log-probabilities per prompt).

Scores: a reward model's raw head logit for `prefix_ids + [id] + suffix_ids`; a language model's
log p(first response token = id | prompt) from one forward pass per prompt. The end-of-turn token is
not counted for a language model unless its scorer was loaded with `include_end`, in which case each
candidate needs its own continuation and the cached engine scores them in batches.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rewardlens.config import DEFAULT_SHARD_SIZE, ModelOptions, split_model_options
from rewardlens.engine import check_batch_size, check_engine
from rewardlens.errors import UserError
from rewardlens.jobs.base import JobPlan, JobSummary, check_prompts
from rewardlens.jobs.executor import execute_local, loaded_or_spec, run_job
from rewardlens.models.templates import ConversationTemplate, template_from_description
from rewardlens.models.vocabulary import select_tokens
from rewardlens.progress import Progress
from rewardlens.prompts import Prompt
from rewardlens.runs.store import RunStore, refuse_other_run
from rewardlens.scorers import scores_first_token_logprobs

if TYPE_CHECKING:
    from rewardlens.jobs.ray_pool import RayOptions
    from rewardlens.scorers import ModelScorer, ScorerInfo


# What makes a sweep "the same sweep": another DIR content on one of these is refused.
# The first five are known before the model is loaded, so a refusal costs no model load.
# Prompts are compared by id and text only, so that metadata added to a bundled set later (framing, ...)
# does not turn a resumable run into "another run".
EARLY_IDENTITY_KEYS = ("kind_of_run", "model_spec", "prompt_set", "tokens", "include_special")
# `sequences` and `date` come before `template` (which holds them too) so that a refusal names them; the
# rendered prefix ids catch what the template's text and date do not: another tokenizer or renderer giving
# other prompt ids than the shards already written were scored with.
TEMPLATE_IDENTITY_KEYS = ("sequences", "date", "template", "rendered_prefix_ids")
IDENTITY_KEYS = (*EARLY_IDENTITY_KEYS, "revision", "kind", "dtype", *TEMPLATE_IDENTITY_KEYS, "score_definition")


@dataclass(frozen=True)
class Shard:
    """One unit of work and one file: a prompt and a block of candidate ids."""

    prompt_index: int
    prompt: Prompt
    rows: slice  # positions in the candidate table
    first_id: int
    end_id: int  # last id + 1

    @property
    def name(self) -> str:
        return f"prompt-{self.prompt_index:04d}_tokens-{self.first_id:07d}-{self.end_id:07d}"


def _template_of(scorer: ScorerInfo) -> ConversationTemplate:
    """The scorer's template; a Ray worker's `ScorerFacts` carries only its description and tokenizer."""
    template = getattr(scorer, "template", None)
    if isinstance(template, ConversationTemplate):
        return template
    return template_from_description(scorer.tokenizer, dict(scorer.describe().get("template") or {}))


def template_identity(scorer: ScorerInfo, prompts: Sequence[Prompt]) -> dict[str, Any]:
    """What a run's template renders: its sequences, its date, and a sha1 of every prompt's prompt ids."""
    template = _template_of(scorer)
    digest = hashlib.sha1()
    for prompt in prompts:
        digest.update(json.dumps(template.prompt_ids(prompt.text)).encode("ascii") + b"\n")
    return {
        "sequences": template.sequences,
        "date": template.date_string,
        "rendered_prefix_ids": f"sha1:{digest.hexdigest()}",
    }


def score_definition(scorer: ScorerInfo) -> str:
    if _template_of(scorer).sequences == "published":
        what = "reward head logit" if scorer.kind == "reward" else "summed log p of the response ids"
        return (
            f"{what} of the published sequence: the response text (of a token: decode([token_id])) rendered by "
            "the template and tokenized again with the tokenizer's special tokens"
        )
    if scorer.kind == "reward":
        return "reward head logit of prefix_ids + [token_id] + suffix_ids"
    if scorer.include_end:
        return "log p(token_id, end-of-turn | prompt)"
    return "log p(first response token = token_id | prompt)"


def refuse_other_run_early(out_dir: str | os.PathLike[str], identity: dict[str, Any], overwrite: bool) -> None:
    """Refuse a DIR holding another run before spending time on loading the model."""
    refuse_other_run(out_dir, identity, EARLY_IDENTITY_KEYS, overwrite)


def early_identity(model_spec: str, prompts: Sequence[Prompt], tokens: str, include_special: bool) -> dict[str, Any]:
    return {
        "kind_of_run": "sweep",
        "model_spec": model_spec,
        "prompts": [p.to_dict() for p in prompts],
        "prompt_set": [[p.id, p.text] for p in prompts],
        "tokens": tokens,
        "include_special": include_special,
    }


def plan_shards(prompts: Sequence[Prompt], candidate_ids: np.ndarray, shard_size: int) -> list[Shard]:
    shards = []
    for prompt_index, prompt in enumerate(prompts):
        for start in range(0, len(candidate_ids), shard_size):
            stop = min(start + shard_size, len(candidate_ids))
            first, last = int(candidate_ids[start]), int(candidate_ids[stop - 1])
            shards.append(Shard(prompt_index, prompt, slice(start, stop), first, last + 1))
    return shards


def _embedding_rows(scorer: ScorerInfo) -> int | None:
    model = getattr(scorer, "model", None)
    embeddings = model.get_input_embeddings() if model is not None else None
    return getattr(embeddings, "num_embeddings", None)


def _within_model(scorer: ScorerInfo, candidates: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:
    """Leave out tokenizer ids the model has no embedding for (some tokenizers add tokens past it)."""
    rows = _embedding_rows(scorer)
    if rows is None:
        return candidates, []
    outside = candidates["token_id"].to_numpy() >= rows
    if outside.all():
        raise UserError(f"--tokens: every selected id is past the model's {rows} embeddings")
    dropped = [int(i) for i in candidates.loc[outside, "token_id"]]
    return candidates[~outside].reset_index(drop=True), dropped


def shard_frame(model_name: str, shard: Shard, block: pd.DataFrame, scores: np.ndarray) -> pd.DataFrame:
    """The rows of one shard: its block of the candidate table with the scores (any process may build it)."""
    n = len(block)
    return pd.DataFrame(
        {
            "model": np.full(n, model_name, dtype=object),
            "prompt_id": np.full(n, shard.prompt.id, dtype=object),
            "prompt": np.full(n, shard.prompt.text, dtype=object),
            "token_id": block["token_id"].to_numpy(),
            "token": block["token"].to_numpy(),
            "response": block["response"].to_numpy(),
            "score": np.asarray(scores, dtype=np.float64),
            "is_special": block["is_special"].to_numpy(),
            "leading_space": block["leading_space"].to_numpy(),
            "is_word": block["is_word"].to_numpy(),
        }
    )


def score_shard(
    scorer: ModelScorer,
    shard: Shard,
    ids: np.ndarray,
    *,
    engine: str = "cached",
    batch_size: int | None = None,
    progress: Progress = None,
    logprobs: dict[int, np.ndarray] | None = None,
) -> np.ndarray:
    """The scores of one shard's candidate `ids` with a loaded scorer (a single process or a Ray worker).

    `logprobs` caches a language model's whole-vocabulary log-probabilities by prompt index: one forward
    pass per prompt gives every candidate's score, so shards of the same prompt share it.
    """
    # The published pipeline re-tokenizes each decoded token, so one forward pass does not give its scores.
    if scores_first_token_logprobs(scorer) and scorer.template.sequences == "exact":
        cache = logprobs if logprobs is not None else {}
        if shard.prompt_index not in cache:
            cache.clear()  # shards of a prompt come together; keep one vocabulary-sized vector
            cache[shard.prompt_index] = scorer.first_token_logprobs(shard.prompt.text)
        vector = cache[shard.prompt_index]
        if int(ids.max()) >= len(vector):
            raise UserError(f"token id {int(ids.max())} is outside the model's {len(vector)} output logits")
        if progress:
            progress(len(ids))
        return np.asarray(vector[ids])
    return np.asarray(
        scorer.score_token_ids(shard.prompt.text, ids.tolist(), engine=engine, batch_size=batch_size, progress=progress)
    )


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


def settle_scoring_fields(job: Any) -> None:
    """The fields every scoring job shares, checked and settled when it is made (before a model loads): its
    prompts (at least one, ids distinct) as a tuple, `out_dir` as a Path, the engine and the batch size."""
    object.__setattr__(job, "prompts", tuple(check_prompts(job.prompts)))
    object.__setattr__(job, "out_dir", Path(job.out_dir))
    check_engine(job.engine)
    check_batch_size(job.batch_size)


@dataclass(frozen=True)
class SweepJob:
    """Score every candidate token as the whole response to every prompt, into a run in `out_dir`."""

    model_spec: str
    prompts: tuple[Prompt, ...]
    out_dir: Path
    tokens: str = "all"
    include_special: bool = False
    shard_size: int = DEFAULT_SHARD_SIZE
    batch_size: int | None = None
    engine: str = "cached"

    def __post_init__(self) -> None:
        settle_scoring_fields(self)
        if self.shard_size < 1:
            raise UserError("--shard-size must be at least 1")

    def identity(self) -> dict[str, Any]:
        return early_identity(self.model_spec, self.prompts, self.tokens, self.include_special)

    def refuse_other_run(self, overwrite: bool) -> None:
        refuse_other_run_early(self.out_dir, self.identity(), overwrite)

    def plan(self, scorer: ScorerInfo, overwrite: bool = False) -> JobPlan:
        """Select the candidates, open (or resume) the run, and list every shard."""
        description = dict(scorer.describe())
        candidates = select_tokens(scorer.tokenizer, self.tokens, self.include_special)
        candidates, unscorable = _within_model(scorer, candidates)
        manifest = {
            **self.identity(),
            "model": scorer.name,
            "revision": description.get("revision"),
            "resolved_path": description.get("resolved_path"),
            "kind": scorer.kind,
            "dtype": description.get("dtype"),
            "device": description.get("device"),
            "template": description.get("template"),
            **template_identity(scorer, self.prompts),
            "score_definition": score_definition(scorer),
            "versions": description.get("versions"),
            "scorer": description,
            "engine": self.engine,
            "batch_size": self.batch_size,
            "shard_size": self.shard_size,
            "candidates_per_prompt": len(candidates),
            "ids_without_embedding": unscorable,
            "rows_expected": len(candidates) * len(self.prompts),
        }
        store = RunStore(self.out_dir, manifest, identity_keys=IDENTITY_KEYS, overwrite=overwrite)
        # A resumed run keeps the shard layout it started with, whatever --shard-size says now.
        layout_size = int(store.manifest.get("shard_size", self.shard_size))
        shards = plan_shards(self.prompts, candidates["token_id"].to_numpy(), layout_size)
        tasks = [SweepShardTask(s, candidates.iloc[s.rows], self.engine, self.batch_size) for s in shards]
        return JobPlan(scorer, store, list(tasks), int(manifest["rows_expected"]), "vocabulary sweep", "candidates")


def prepare_sweep(
    scorer: ScorerInfo,
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    *,
    model_spec: str | None = None,
    overwrite: bool = False,
    **job_options: Any,
) -> JobPlan:
    """The plan of a sweep with a loaded scorer (`SweepJob` options: tokens, shard_size, engine, ...)."""
    spec = model_spec or str(scorer.describe().get("spec") or scorer.name)
    return SweepJob(spec, tuple(prompts), Path(out_dir), **job_options).plan(scorer, overwrite)


def execute_sweep(plan: JobPlan, progress: Progress = None) -> JobSummary:
    """Score the shards of a plan made in this process, and finish the run."""

    return execute_local(plan, progress)


def run_sweep(
    scorer_or_spec: ModelScorer | str | os.PathLike[str],
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: Progress = None,
    options: ModelOptions | None = None,
    ray: RayOptions | None = None,
    **job_options: Any,
) -> JobSummary:
    """Sweep the vocabulary of a scorer, or of a model spec loaded with `options` and the keywords that are
    its fields (here, or on Ray); the other keywords are `SweepJob` options."""
    scorer, spec = loaded_or_spec(scorer_or_spec)
    options, job_options = split_model_options(options, job_options)
    job = SweepJob(spec, tuple(prompts), Path(out_dir), **job_options)
    return run_job(job, scorer, options=options, ray=ray, overwrite=overwrite, progress=progress)


__all__ = [
    "DEFAULT_SHARD_SIZE",
    "IDENTITY_KEYS",
    "Shard",
    "SweepJob",
    "SweepShardTask",
    "early_identity",
    "execute_sweep",
    "plan_shards",
    "prepare_sweep",
    "run_sweep",
    "score_definition",
    "score_shard",
    "settle_scoring_fields",
    "shard_frame",
    "template_identity",
]
