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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from rewardlens.engine import check_batch_size, check_engine
from rewardlens.errors import UserError
from rewardlens.models.templates import ConversationTemplate, template_from_description
from rewardlens.models.vocabulary import select_tokens
from rewardlens.progress import Progress
from rewardlens.prompts import Prompt
from rewardlens.runs.store import RunStore, refuse_other_run
from rewardlens.scorers import scores_first_token_logprobs

if TYPE_CHECKING:
    from rewardlens.scorers import ModelScorer, ScorerInfo


DEFAULT_SHARD_SIZE = 4096

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


@dataclass
class SweepPlan:
    """A sweep ready to run: scorer, candidates, store, and the shards still to write."""

    scorer: ScorerInfo  # a `ModelScorer` when this process executes the plan
    prompts: list[Prompt]
    candidates: pd.DataFrame
    store: RunStore
    shards: list[Shard]
    engine: str
    batch_size: int | None
    rows_expected: int
    rows_done: int
    todo: list[Shard] = field(default_factory=list)


@dataclass(frozen=True)
class SweepSummary:
    directory: Path
    rows: int
    rows_expected: int
    rows_written: int
    seconds: float
    complete: bool

    @property
    def rate(self) -> float:
        return self.rows_written / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        state = "complete" if self.complete else "incomplete"
        return (
            f"{self.rows:,} / {self.rows_expected:,} rows ({state}) in {self.directory}; "
            f"{self.rows_written:,} scored in {self.seconds:.1f} s ({self.rate:,.1f} candidates/s)"
        )


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


def check_prompts(prompts: Sequence[Prompt]) -> list[Prompt]:
    if not prompts:
        raise UserError("no prompts: pass --prompt TEXT or --prompts SET_OR_FILE")
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        raise UserError("duplicate prompt ids in the prompt set")
    return list(prompts)


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


def prepare_sweep(
    scorer: ScorerInfo,
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    *,
    model_spec: str | None = None,
    tokens: str = "all",
    include_special: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    batch_size: int | None = None,
    engine: str = "cached",
    overwrite: bool = False,
) -> SweepPlan:
    """Select the candidates, open (or resume) the run in `out_dir`, and list the shards to write."""
    prompts = check_prompts(prompts)
    check_engine(engine)
    if shard_size < 1:
        raise UserError("--shard-size must be at least 1")
    check_batch_size(batch_size)
    description = dict(scorer.describe())
    spec = model_spec or str(description.get("spec") or scorer.name)
    identity = early_identity(spec, prompts, tokens, include_special)
    refuse_other_run_early(out_dir, identity, overwrite)
    candidates = select_tokens(scorer.tokenizer, tokens, include_special)
    candidates, unscorable = _within_model(scorer, candidates)
    manifest = {
        **identity,
        "model": scorer.name,
        "revision": description.get("revision"),
        "resolved_path": description.get("resolved_path"),
        "kind": scorer.kind,
        "dtype": description.get("dtype"),
        "device": description.get("device"),
        "template": description.get("template"),
        **template_identity(scorer, prompts),
        "score_definition": score_definition(scorer),
        "versions": description.get("versions"),
        "scorer": description,
        "engine": engine,
        "batch_size": batch_size,
        "shard_size": shard_size,
        "candidates_per_prompt": len(candidates),
        "ids_without_embedding": unscorable,
        "rows_expected": len(candidates) * len(prompts),
    }
    store = RunStore(out_dir, manifest, identity_keys=IDENTITY_KEYS, overwrite=overwrite)
    # A resumed run keeps the shard layout it started with, whatever --shard-size says now.
    layout_size = int(store.manifest.get("shard_size", shard_size))
    shards = plan_shards(prompts, candidates["token_id"].to_numpy(), layout_size)
    todo = [shard for shard in shards if not store.is_done(shard.name)]
    todo_names = {shard.name for shard in todo}
    rows_done = sum(shard.rows.stop - shard.rows.start for shard in shards if shard.name not in todo_names)
    return SweepPlan(
        scorer=scorer,
        prompts=prompts,
        candidates=candidates,
        store=store,
        shards=shards,
        engine=engine,
        batch_size=batch_size,
        rows_expected=int(manifest["rows_expected"]),
        rows_done=rows_done,
        todo=todo,
    )


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


def execute_sweep(plan: SweepPlan, progress: Progress = None) -> SweepSummary:
    """Score and write every shard still to do; finish the run (end time, rows, complete)."""
    # A plan made from a Ray worker's `ScorerFacts` is executed by the workers (`distributed.jobs`), never here.
    scorer = cast("ModelScorer", plan.scorer)
    started = time.perf_counter()
    written = 0
    logprobs: dict[int, np.ndarray] = {}
    for shard in plan.todo:
        ids = plan.candidates["token_id"].to_numpy()[shard.rows]
        scores = score_shard(
            scorer,
            shard,
            ids,
            engine=plan.engine,
            batch_size=plan.batch_size,
            progress=progress,
            logprobs=logprobs,
        )
        block = plan.candidates.iloc[shard.rows]
        plan.store.write_shard(shard.name, shard_frame(scorer.name, shard, block, scores))
        written += len(ids)
    seconds = time.perf_counter() - started
    manifest = plan.store.finish(scoring_seconds=seconds)
    return SweepSummary(
        directory=plan.store.directory,
        rows=int(manifest["rows"]),
        rows_expected=plan.rows_expected,
        rows_written=written,
        seconds=seconds,
        complete=bool(manifest["complete"]),
    )


def run_sweep(
    scorer_or_spec: ModelScorer | str | os.PathLike[str],
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    *,
    tokens: str = "all",
    include_special: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    batch_size: int | None = None,
    engine: str = "cached",
    overwrite: bool = False,
    progress: Progress = None,
    **model_options: Any,
) -> SweepSummary:
    """Sweep the vocabulary of a scorer (or a model spec, loaded with `model_options` as `load_scorer`)."""
    if isinstance(scorer_or_spec, str | os.PathLike):
        spec = os.fspath(scorer_or_spec)
        prompts = check_prompts(prompts)
        refuse_other_run_early(out_dir, early_identity(spec, prompts, tokens, include_special), overwrite)
        from rewardlens.scorers import load_scorer

        scorer = load_scorer(spec, **model_options)
    else:
        spec, scorer = None, scorer_or_spec
    plan = prepare_sweep(
        scorer,
        prompts,
        out_dir,
        model_spec=spec,
        tokens=tokens,
        include_special=include_special,
        shard_size=shard_size,
        batch_size=batch_size,
        engine=engine,
        overwrite=overwrite,
    )
    return execute_sweep(plan, progress)
