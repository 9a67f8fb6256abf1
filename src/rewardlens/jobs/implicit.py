"""An implicit-reward run: a job (one shard per prompt) whose scorer is a policy and a reference side by side.

The pairing of the two vocabularies is made once, when the job is planned with both models loaded; each
shard is one prompt's responses with both log-probabilities and the measure. The run goes through the one
executor (`rewardlens.jobs.executor`) like a sweep or a word run: resumable, written once per shard. On Ray
the whole job runs in one worker (it needs both models in one place), through the same executor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rewardlens.config import (
    DEFAULT_POLICY_TEMPLATE,
    DEFAULT_REFERENCE_TEMPLATE,
    ModelOptions,
    model_options,
)
from rewardlens.errors import UserError
from rewardlens.jobs.base import JobPlan, JobSummary
from rewardlens.jobs.executor import run_job
from rewardlens.jobs.ray_pool import RayOptions, connect_ray, import_ray, reraise_task_error, worker_shape
from rewardlens.jobs.sweep import settle_scoring_fields, template_identity
from rewardlens.jobs.words import shard_name, word_table, words_sha1
from rewardlens.lexicons import Lexicon, load_lexicon
from rewardlens.progress import Progress
from rewardlens.prompts import Prompt
from rewardlens.runs import count_rows
from rewardlens.runs.store import RunStore, has_run, refuse_other_run
from rewardlens.scorers import ModelScorer
from rewardlens.scorers.implicit import ScorerPair, check_measure, implicit_reward, score_definition
from rewardlens.scorers.language import check_template_option, load_language_model, require_language_model, spec_of
from rewardlens.scorers.pairing import (
    VocabularyPairing,
    alignment_rule,
    check_alignment,
    pair_vocabularies,
    vocabulary_logprobs,
    word_logprobs,
)

# What makes two implicit runs "the same run": these are known before a model is loaded.
EARLY_IDENTITY_KEYS = (
    "kind_of_run",
    "model_spec",
    "prompts",
    "responses",
    "lexicon",
    "words_sha1",
    "measure",
    "beta",
    "template_options",
    "date",  # what date-stamped templates render: one date for both models, never today's
    "align",
    "text_rule",
    "alignment_rule",  # the rule's wording: a run aligned by an earlier rule is not resumed with this one
    "include_special",
    "model_options",
)
# Known once both models are loaded: each template's prompt ids (sha1 over the prompts, as for sweeps) catch
# another tokenizer or renderer behind the same template options and date.
IDENTITY_KEYS = (*EARLY_IDENTITY_KEYS, "rendered_prefix_ids")


def implicit_model_spec(policy_spec: str, reference_spec: str) -> str:
    """The `model_spec` of an implicit run: what tells a finished run of this pair from another."""
    return f"implicit:{policy_spec}|{reference_spec}"


def alignment_line(alignment: dict[str, Any]) -> str:
    """How the two vocabularies were aligned and what each side dropped (a run's `alignment`)."""
    if alignment.get("by") != "text":
        return str(alignment.get("rule", ""))
    policy, reference = alignment["policy"], alignment["reference"]
    return (
        f"{alignment['n_shared_texts']:,} shared texts (text rule {alignment['text_rule']}, "
        f"variants summed by {alignment['variants']}); dropped for policy / reference: "
        f"{policy['n_texts_without_response_form']:,} / {reference['n_texts_without_response_form']:,} texts "
        "not held in the form their template starts a response with, "
        f"{policy['n_unshared_texts']:,} / {reference['n_unshared_texts']:,} texts only one side has, "
        f"{policy['n_unusable_ids']:,} / {reference['n_unusable_ids']:,} empty or undecodable ids"
    )


def _run_frame(values: pd.DataFrame, model: str, prompt: Prompt, measure: str, beta: float) -> pd.DataFrame:
    """The run columns first (model, prompt, response, score), then the rest of `values`."""
    n = len(values)
    head = pd.DataFrame(
        {
            "model": np.full(n, model, dtype=object),
            "prompt_id": np.full(n, prompt.id, dtype=object),
            "prompt": np.full(n, prompt.text, dtype=object),
            "response": values["response"].to_numpy(),
            "score": implicit_reward(values["logp_policy"], values["logp_reference"], measure, beta),
        }
    )
    rest = values.drop(columns=["response"]).reset_index(drop=True)
    return pd.concat([head, rest], axis=1)


@dataclass(frozen=True)
class ImplicitShardTask:
    """One prompt's implicit rewards: the paired vocabulary, or every word of a lexicon."""

    index: int
    prompt: Prompt
    measure: str
    beta: float
    pairing: VocabularyPairing | None = field(default=None, repr=False)
    words: pd.DataFrame | None = field(default=None, repr=False)
    engine: str = "cached"
    batch_size: int | None = None

    @property
    def name(self) -> str:
        return shard_name(self.index)

    @property
    def rows(self) -> int:
        return self.pairing.n_rows if self.pairing is not None else len(self.words)  # type: ignore[arg-type]

    def score(self, scorer: ScorerPair, cache: dict[str, Any], progress: Progress = None) -> pd.DataFrame:
        if self.pairing is not None:
            values = vocabulary_logprobs(scorer.policy, scorer.reference, self.pairing, self.prompt.text)
        else:
            assert self.words is not None
            values = word_logprobs(
                scorer.policy,
                scorer.reference,
                self.prompt.text,
                self.words["word"].tolist(),
                self.engine,
                self.batch_size,
            ).assign(category=self.words["category"].to_numpy())
        frame = _run_frame(values, scorer.name, self.prompt, self.measure, self.beta)
        if progress:
            progress(len(frame))
        return frame


def _choose_responses(vocab: bool, lexicon: str | Lexicon | None) -> Lexicon | None:
    if vocab and lexicon is not None:
        raise UserError("pass either --vocab or --lexicon NAME|PATH, not both")
    if not vocab and lexicon is None:
        raise UserError("choose the responses: --vocab (the whole vocabulary) or --lexicon NAME|PATH")
    if lexicon is None:
        return None
    return lexicon if isinstance(lexicon, Lexicon) else load_lexicon(lexicon)


@dataclass(frozen=True)
class ImplicitJob:
    """The implicit reward of a policy against a reference, for the vocabulary or a lexicon's words."""

    policy_spec: str
    reference_spec: str
    prompts: tuple[Prompt, ...]
    out_dir: Path
    lexicon: Lexicon | None = None  # None: the whole (paired) vocabulary
    measure: str = "log-ratio"
    beta: float = 1.0
    policy_template: str = DEFAULT_POLICY_TEMPLATE
    reference_template: str = DEFAULT_REFERENCE_TEMPLATE
    align: str = "text"
    text_rule: str = "stripped"
    include_special: bool = False
    engine: str = "cached"
    batch_size: int | None = None
    options: ModelOptions = field(default_factory=ModelOptions)  # both models; `date` is the run's one date

    def __post_init__(self) -> None:
        settle_scoring_fields(self)
        check_measure(self.measure, self.beta)
        check_alignment(self.align, self.text_rule)

    @property
    def model_spec(self) -> str:
        return implicit_model_spec(self.policy_spec, self.reference_spec)

    def _words(self) -> pd.DataFrame | None:
        return word_table(self.lexicon) if self.lexicon is not None else None

    def identity(self) -> dict[str, Any]:
        words, vocab = self._words(), self.lexicon is None
        return {
            "kind_of_run": "implicit",
            "model_spec": self.model_spec,
            "policy_spec": self.policy_spec,
            "reference_spec": self.reference_spec,
            "prompts": [prompt.to_dict() for prompt in self.prompts],
            "responses": "vocab" if vocab else "lexicon",
            "lexicon": None if self.lexicon is None else self.lexicon.name,
            "words_sha1": None if words is None else words_sha1(words),
            "measure": self.measure,
            "beta": self.beta,
            "template_options": {"policy": self.policy_template, "reference": self.reference_template},
            "date": self.options.date,
            "align": self.align if vocab else None,
            "text_rule": self.text_rule if vocab else None,
            "alignment_rule": alignment_rule(self.align, self.text_rule) if vocab else None,
            "include_special": self.include_special,
            "model_options": {"dtype": self.options.dtype, "revision": self.options.revision},
        }

    def refuse_other_run(self, overwrite: bool) -> None:
        refuse_other_run(self.out_dir, self.identity(), EARLY_IDENTITY_KEYS, overwrite)

    def plan(self, scorer: ScorerPair, overwrite: bool = False) -> JobPlan:
        words = self._words()
        pairing: VocabularyPairing | None = None
        if words is None:
            pairing = pair_vocabularies(
                scorer.policy, scorer.reference, self.align, self.text_rule, self.include_special
            )
        rows_per_prompt = pairing.n_rows if pairing is not None else len(words)  # type: ignore[arg-type]
        identity = self.identity()
        policy_description, reference_description = scorer.policy.describe(), scorer.reference.describe()
        manifest = {
            **identity,
            "rendered_prefix_ids": {
                role: template_identity(side, self.prompts)["rendered_prefix_ids"]
                for role, side in (("policy", scorer.policy), ("reference", scorer.reference))
            },
            "model": scorer.name,
            "kind": "implicit",
            "score_definition": score_definition(self.measure, self.beta, identity["responses"]),
            "templates": {"policy": policy_description["template"], "reference": reference_description["template"]},
            "alignment": pairing.describe() if pairing is not None else {"by": "word", "rule": "the same word text"},
            "policy": policy_description,
            "reference": reference_description,
            "dtype": policy_description.get("dtype"),
            "device": policy_description.get("device"),
            "engine": self.engine,
            "batch_size": self.batch_size,
            "n_words": None if words is None else len(words),
            "rows_expected": rows_per_prompt * len(self.prompts),
        }
        store = RunStore(self.out_dir, manifest, identity_keys=IDENTITY_KEYS, overwrite=overwrite)
        tasks = [
            ImplicitShardTask(i, p, self.measure, self.beta, pairing, words, self.engine, self.batch_size)
            for i, p in enumerate(self.prompts)
        ]
        label = "implicit vocabulary" if words is None else f"implicit {self.lexicon.name} words"  # type: ignore[union-attr]
        return JobPlan(
            scorer, store, list(tasks), int(manifest["rows_expected"]), label, "implicit rewards", ("alignment",)
        )


def _spec_and_template(model: Any, template: str, role: str) -> tuple[str, str]:
    """The spec and template option of a model to load, or of a loaded scorer (its own template)."""
    if isinstance(model, str | os.PathLike):
        check_template_option(template, role)
        return os.fspath(model), template
    require_language_model(model, role)
    return spec_of(model), str(model.template.source)


def run_date(policy: Any, reference: Any, date: str) -> str:
    """The one date both templates render ("26 Jul 2024"): `date` for a model to load, a loaded scorer's own
    template's date otherwise. Two dates would make the log-ratio measure the date too, so they are refused."""
    policy_date, reference_date = (
        date if isinstance(model, str | os.PathLike) else str(model.template.date_string)
        for model in (policy, reference)
    )
    if policy_date != reference_date:
        raise UserError(
            f"the policy's template renders the date {policy_date} and the reference's {reference_date}; "
            "give both one date"
        )
    return policy_date


def run_implicit(
    policy: Any,
    reference: Any,
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    *,
    vocab: bool = False,
    lexicon: str | Lexicon | None = None,
    measure: str = "log-ratio",
    beta: float = 1.0,
    policy_template: str = DEFAULT_POLICY_TEMPLATE,
    reference_template: str = DEFAULT_REFERENCE_TEMPLATE,
    align: str = "text",
    text_rule: str = "stripped",
    include_special: bool = False,
    engine: str = "cached",
    batch_size: int | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    on_loading: Callable[[str], None] | None = None,
    options: ModelOptions | None = None,
    **changes: Any,
) -> JobSummary:
    """Implicit rewards of a policy against a reference into a run in `out_dir` (resumed if it is there).

    `policy` and `reference` are model specs (both loaded with `options` and keyword `changes`, e.g.
    `device="cpu"`; their templates render `options.date` where they are date-stamped) or loaded
    language-model scorers (whose own templates and dates then apply). Exactly one of `vocab` and `lexicon`
    chooses the responses.
    """
    chosen_options = model_options(options, **changes)
    the_date = run_date(policy, reference, chosen_options.date)
    policy_spec, policy_template = _spec_and_template(policy, policy_template, "policy")
    reference_spec, reference_template = _spec_and_template(reference, reference_template, "reference")
    job = ImplicitJob(
        policy_spec,
        reference_spec,
        tuple(prompts),
        Path(out_dir),
        _choose_responses(vocab, lexicon),
        measure,
        beta,
        policy_template,
        reference_template,
        align,
        text_rule,
        include_special,
        engine,
        batch_size,
        chosen_options.with_changes(date=the_date),
    )
    job.refuse_other_run(overwrite)  # before spending time on loading the models

    def loaded(model: Any, role: str, template: str) -> ModelScorer:
        if not isinstance(model, str | os.PathLike):
            return model  # a loaded scorer keeps its own template
        if on_loading:
            on_loading(os.fspath(model))
        return load_language_model(os.fspath(model), role, job.options.with_changes(template=template))

    pair = ScorerPair(loaded(policy, "policy", policy_template), loaded(reference, "reference", reference_template))
    return run_job(job, pair, overwrite=overwrite, progress=progress)


def _implicit_job(args: tuple[Any, ...], kwargs: dict[str, Any], threads: int) -> Any:
    """Runs inside a Ray worker: the whole implicit run, both models loaded there."""
    import torch

    torch.set_num_threads(threads)
    return run_implicit(*args, **kwargs)


def implicit_on_ray(
    policy: str,
    reference: str,
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike[str],
    ray: RayOptions,
    *,
    progress: Callable[[int], None] | None = None,
    poll_seconds: float = 1.0,
    **implicit_options: Any,
) -> Any:
    """`run_implicit` on one Ray worker (it needs the policy and the reference side by side).

    Its shards are written by that worker, so OUT must be on a filesystem the worker shares with this
    process (the same node, or a shared mount). Progress is the rows on disk, polled here.
    """
    from dataclasses import replace


    ray_module = import_ray()
    connect_ray(ray.address)
    shape = worker_shape(replace(ray, workers=1), ray_module.cluster_resources())
    threads = str(shape.threads)
    remote = ray_module.remote(_implicit_job).options(
        num_cpus=shape.num_cpus,
        num_gpus=shape.num_gpus,
        max_retries=0,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}},
    )
    ref = remote.remote((policy, reference, list(prompts), os.fspath(out_dir)), implicit_options, shape.threads)
    seen = 0
    while True:
        ready, _ = ray_module.wait([ref], timeout=poll_seconds)
        if has_run(out_dir) and progress:
            rows = count_rows(out_dir)
            if rows > seen:
                progress(rows - seen)
                seen = rows
        if ready:
            break
    try:
        return ray_module.get(ref)
    except ray_module.exceptions.RayTaskError as err:
        reraise_task_error(err)


__all__ = [
    "EARLY_IDENTITY_KEYS",
    "IDENTITY_KEYS",
    "ImplicitJob",
    "ImplicitShardTask",
    "ScorerPair",
    "alignment_line",
    "implicit_model_spec",
    "implicit_on_ray",
    "run_date",
    "run_implicit",
]
