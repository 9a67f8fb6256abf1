"""Implicit reward models: what instruction tuning added, from policy and reference log-probabilities.

The DPO implicit reward of a response y to a prompt x is `beta * (log p_policy(y|x) - log p_reference(y|x))`
(`log-ratio`); the mean-weighted log-ratio `mwlr` weighs the same difference by the mean probability
`0.5 * (p_policy + p_reference)`, so that responses neither model would give count little. Here `beta`
multiplies both measures (1 = the formulas as written).

Responses are either the whole vocabulary (`vocab`: log p(first response token) from one forward pass per
prompt and model) or the words of a lexicon (`lexicon`: the summed log-probability of each word's tokens by
teacher forcing, the cached engine reusing the prompt's KV). The policy (an instruction-tuned model) reads
its chat template with the generation prompt; the reference (a base model) reads `plain-nospace` by default:
`User: {prompt}\\nAssistant:` as the prefix, the response after one space — the same text as the `plain`
template, but the space belongs to the response's first token, as in running text (see
`rewardlens.models.templates`). Both templates are recorded in `_run.json`, with the one date that
date-stamped templates render (never today's) and a sha1 of each template's prompt ids, as for sweeps.

Vocabularies are aligned on decoded text, for one tokenizer as for two (`rewardlens.analysis.alignment`).
The two templates start a response differently — the chat prefix ends in a newline, `plain-nospace` in
"Assistant:", so a response "love" is the token "love" for the policy and " love" for the reference — and
pairing ids would mostly measure whether a token starts with a space. By default surrounding whitespace is
stripped, a text is kept when each side holds it in the form its template starts a response with (each
template's lead, "" or " ", is read from its own rendering), and a side's log-probability of a text is the
log-sum-exp over its ids with that text: the probability that the first response token spells it. The rule,
the leads and the counts dropped on each side go into `_run.json`. `align="id"` pairs the same token id
(one tokenizer only), the template boundary included.

The output is an ordinary run (one Parquet shard per prompt, resumable): `score` is the implicit reward,
with `logp_policy`, `logp_reference` and the usual sweep or word columns.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rewardlens.analysis.alignment import TEXT_RULES, TextAlignment, align_vocabularies, describe_rule
from rewardlens.errors import UserError
from rewardlens.lexicons import Lexicon, load_lexicon
from rewardlens.models.templates import DATE_STRING_FORMAT, DEFAULT_DATE, parse_date
from rewardlens.progress import Progress
from rewardlens.prompts import Prompt

if TYPE_CHECKING:
    from rewardlens.scorers import ModelScorer


MEASURES = ("log-ratio", "mwlr")
ALIGN_MODES = ("text", "id")
ID_RULE = "same tokenizer: policy and reference log-probabilities of the same token id (template boundary included)"
DEFAULT_POLICY_TEMPLATE = "chat"
DEFAULT_REFERENCE_TEMPLATE = "plain-nospace"
_NAMED_TEMPLATES = ("chat", "plain", "plain-nospace")

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


# -- the measures ------------------------------------------------------------------------------------------
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


# -- models --------------------------------------------------------------------------------------------------
def _check_template_option(template: str, role: str) -> None:
    if template not in _NAMED_TEMPLATES and not Path(template).is_file():
        raise UserError(
            f"--{role}-template '{template}' is neither chat, plain, plain-nospace nor a readable Jinja file"
        )


def _not_a_language_model(role: str, name: str) -> UserError:
    return UserError(
        f"the {role} model '{name}' is a reward model (a score head), not a causal language model; "
        "implicit rewards need two language models"
    )


def require_language_model(scorer: ModelScorer, role: str) -> None:
    if getattr(scorer, "kind", None) != "lm":
        raise _not_a_language_model(role, scorer.name)


def _loaded_language_model(
    spec: str, role: str, template: str, model_options: dict[str, Any], date: str = DEFAULT_DATE
) -> Any:
    """A log-probability scorer, or None when `spec` is a reward model."""
    from rewardlens.models.loading import load_model
    from rewardlens.models.templates import make_template
    from rewardlens.scorers import ModelScorer

    _check_template_option(template, role)
    fixed_date = parse_date(date)  # a bad date fails before a slow load
    loaded = load_model(spec, **model_options)
    if loaded.kind != "lm":
        return None
    if template == "chat" and not getattr(loaded.tokenizer, "chat_template", None):
        raise UserError(
            f"the {role} model '{spec}' has no chat template; pass --{role}-template plain-nospace, plain or FILE"
        )
    return ModelScorer(loaded, make_template(loaded.tokenizer, template, date=fixed_date))


def load_language_model(spec: str, role: str, template: str, date: str = DEFAULT_DATE, **model_options: Any) -> Any:
    """A log-probability scorer for the policy or the reference; one-line errors name the role's option.
    `date` fixes what a date-stamped template renders (as `make_template`)."""
    scorer = _loaded_language_model(spec, role, template, model_options, date)
    if scorer is None:
        raise _not_a_language_model(role, spec)
    return scorer


def _spec_of(scorer: ModelScorer) -> str:
    return str(scorer.describe().get("spec") or scorer.name)


def _n_logits(scorer: ModelScorer) -> int:
    """The number of next-token logits the model outputs (may differ from the tokenizer's length)."""
    from rewardlens.models.loading import text_config

    model: Any = scorer.model  # a transformers PreTrainedModel; nn.Module's typing hides its methods
    weight = getattr(model.get_output_embeddings(), "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    return int(text_config(model).vocab_size)


def same_vocabulary(policy: Any, reference: Any) -> bool:
    """Whether both tokenizers map every token string to the same id (then ids can be paired)."""
    return bool(policy.tokenizer.get_vocab() == reference.tokenizer.get_vocab())


_RESPONSE_PROBE = "RWLRESPONSE"


def response_lead(scorer: Any, prompt: str = "Hello") -> str:
    """The whitespace a scorer's template puts between its prefix ids and a response: " " for
    `plain-nospace` ("Assistant:" then " love"), "" for a chat template or `plain` (whose prefix ids end in
    the space). Read from the template's own rendering of a probe response against its decoded prefix ids."""
    template = scorer.template
    before = template.render(prompt, _RESPONSE_PROBE).split(_RESPONSE_PROBE)[0]
    decoded_prefix = scorer.tokenizer.decode(template.prefix_ids(prompt), clean_up_tokenization_spaces=False)
    for size in range(len(before) + 1):
        lead = before[len(before) - size :]
        if lead and not lead.isspace():
            break
        if decoded_prefix.endswith(before[: len(before) - size]):
            return lead
    return ""


def alignment_rule(align: str, text_rule: str) -> str:
    """The pairing rule in words, as _run.json records it."""
    return ID_RULE if align == "id" else describe_rule(text_rule)


# -- vocabulary pairing --------------------------------------------------------------------------------------
@dataclass
class VocabularyPairing:
    """Which policy ids meet which reference ids: the same id (`by="id"`) or the variants of one text."""

    by: str  # "id" or "text"
    policy_table: pd.DataFrame  # candidate metadata of the policy vocabulary (select_tokens), indexed by id
    reference_table: pd.DataFrame
    alignment: TextAlignment | None = None
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        if self.alignment is not None:
            return len(self.alignment.texts)
        return len(self.policy_table)

    def describe(self) -> dict[str, Any]:
        if self.alignment is not None:
            return {**self.alignment.describe(("policy", "reference")), **self.counts}
        return {
            "by": "id",
            "rule": ID_RULE,
            "n_ids": len(self.policy_table),
            **self.counts,
        }

    def frame(self, logp_policy: np.ndarray, logp_reference: np.ndarray) -> pd.DataFrame:
        """Per aligned entry: ids, tokens, response text and both log-probabilities (sweep columns)."""
        if self.alignment is None:
            ids = self.policy_table.index.to_numpy()
            table = self.policy_table
            return pd.DataFrame(
                {
                    "token_id": ids,
                    "token": table["token"].to_numpy(),
                    "response": table["response"].to_numpy(),
                    "reference_token_id": ids,
                    "reference_token": table["token"].to_numpy(),
                    "is_special": table["is_special"].to_numpy(),
                    "leading_space": table["leading_space"].to_numpy(),
                    "is_word": table["is_word"].to_numpy(),
                    "logp_policy": np.asarray(logp_policy, dtype=np.float64)[ids],
                    "logp_reference": np.asarray(logp_reference, dtype=np.float64)[ids],
                }
            )
        policy_side, reference_side = self.alignment.sides
        # The ids shown are the forms each template starts a response with ("love" / " love"), the same for
        # every prompt; the log-probabilities are those of every variant of the text together.
        policy_rows = self.policy_table.loc[policy_side.response_ids]
        texts = self.alignment.texts
        return pd.DataFrame(
            {
                "token_id": policy_side.response_ids,
                "token": policy_rows["token"].to_numpy(),
                "response": texts,
                "reference_token_id": reference_side.response_ids,
                "reference_token": self.reference_table.loc[reference_side.response_ids, "token"].to_numpy(),
                "is_special": policy_rows["is_special"].to_numpy(),
                # Describes the aligned text (the response column), as a sweep's flag describes its response.
                "leading_space": np.fromiter((t.startswith(" ") for t in texts), bool, len(texts)),
                "is_word": policy_rows["is_word"].to_numpy(),
                "logp_policy": policy_side.logsumexp(logp_policy),
                "logp_reference": reference_side.logsumexp(logp_reference),
            }
        )


def _candidates(scorer: ModelScorer, include_special: bool) -> tuple[pd.DataFrame, int]:
    """The scorer's candidate tokens with an id its logits cover, indexed by id; and how many lay outside."""
    from rewardlens.models.vocabulary import select_tokens

    table = select_tokens(scorer.tokenizer, "all", include_special)
    inside = table["token_id"].to_numpy() < _n_logits(scorer)
    return table[inside].set_index("token_id", drop=False), int((~inside).sum())


def check_alignment(align: str, text_rule: str) -> None:
    if align not in ALIGN_MODES:
        raise UserError(f"unknown alignment '{align}' (use {', '.join(ALIGN_MODES)})")
    if text_rule not in TEXT_RULES:
        raise UserError(f"unknown text rule '{text_rule}' (use {', '.join(TEXT_RULES)})")


def pair_vocabularies(
    policy: Any, reference: Any, align: str = "text", text_rule: str = "stripped", include_special: bool = False
) -> VocabularyPairing:
    """Align the two vocabularies on text (the default, one tokenizer or two) or, with `align="id"` and one
    tokenizer, by id."""
    check_alignment(align, text_rule)
    if align == "id" and not same_vocabulary(policy, reference):
        raise UserError("--align id needs the same tokenizer; the policy and reference vocabularies differ")
    policy_table, policy_outside = _candidates(policy, include_special)
    if align == "id":
        reference_limit = _n_logits(reference)
        inside = policy_table.index.to_numpy() < reference_limit
        outside = {"n_ids_outside_logits": policy_outside + int((~inside).sum())}
        return VocabularyPairing("id", policy_table[inside], policy_table[inside], counts=outside)
    reference_table, reference_outside = _candidates(reference, include_special)
    alignment = align_vocabularies(
        (policy_table.index.to_numpy(), policy_table["response"].tolist()),
        (reference_table.index.to_numpy(), reference_table["response"].tolist()),
        text_rule=text_rule,  # type: ignore[arg-type]
        leads=(response_lead(policy), response_lead(reference)),
    )
    if not len(alignment.texts):
        raise UserError(
            "the policy and reference vocabularies share no decoded text that both templates can start a "
            f"response with (text rule {text_rule})"
        )
    counts = {"n_ids_outside_logits": {"policy": policy_outside, "reference": reference_outside}}
    return VocabularyPairing("text", policy_table, reference_table, alignment, counts)


# -- one prompt ----------------------------------------------------------------------------------------------
def vocabulary_logprobs(
    policy: Any, reference: Any, pairing: VocabularyPairing, prompt: str
) -> pd.DataFrame:
    """Both models' first-token log-probabilities over the paired vocabulary (one forward pass each)."""
    return pairing.frame(policy.first_token_logprobs(prompt), reference.first_token_logprobs(prompt))


def word_logprobs(
    policy: Any,
    reference: Any,
    prompt: str,
    words: Sequence[str],
    engine: str = "cached",
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Both models' log-probability of each word as the whole response (teacher forcing, summed over tokens)."""
    from rewardlens.words import score_words

    return pd.DataFrame(
        {
            "response": list(words),
            "logp_policy": score_words(policy, prompt, words, engine=engine, batch_size=batch_size),
            "logp_reference": score_words(reference, prompt, words, engine=engine, batch_size=batch_size),
        }
    )


# -- runs ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImplicitSummary:
    directory: Path
    rows: int
    rows_expected: int
    rows_written: int
    seconds: float
    complete: bool
    alignment: dict[str, Any]

    def line(self) -> str:
        state = "complete" if self.complete else "incomplete"
        return (
            f"{self.rows:,} / {self.rows_expected:,} rows ({state}) in {self.directory}; "
            f"{self.rows_written:,} implicit rewards in {self.seconds:.1f} s"
        )

    def alignment_line(self) -> str:
        """How the two vocabularies were aligned and what each side dropped."""
        if self.alignment.get("by") != "text":
            return str(self.alignment.get("rule", ""))
        policy, reference = self.alignment["policy"], self.alignment["reference"]
        return (
            f"{self.alignment['n_shared_texts']:,} shared texts (text rule {self.alignment['text_rule']}, "
            f"variants summed by {self.alignment['variants']}); dropped for policy / reference: "
            f"{policy['n_texts_without_response_form']:,} / {reference['n_texts_without_response_form']:,} texts "
            "not held in the form their template starts a response with, "
            f"{policy['n_unshared_texts']:,} / {reference['n_unshared_texts']:,} texts only one side has, "
            f"{policy['n_unusable_ids']:,} / {reference['n_unusable_ids']:,} empty or undecodable ids"
        )


def _choose_responses(vocab: bool, lexicon: str | Lexicon | None) -> Lexicon | None:
    if vocab and lexicon is not None:
        raise UserError("pass either --vocab or --lexicon NAME|PATH, not both")
    if not vocab and lexicon is None:
        raise UserError("choose the responses: --vocab (the whole vocabulary) or --lexicon NAME|PATH")
    if lexicon is None:
        return None
    return lexicon if isinstance(lexicon, Lexicon) else load_lexicon(lexicon)


def implicit_model_spec(policy_spec: str, reference_spec: str) -> str:
    """The `model_spec` of an implicit run: what tells a finished run of this pair from another."""
    return f"implicit:{policy_spec}|{reference_spec}"


def _early_identity(
    policy_spec: str,
    reference_spec: str,
    prompts: Sequence[Prompt],
    lexicon: Lexicon | None,
    words: pd.DataFrame | None,
    measure: str,
    beta: float,
    templates: tuple[str, str],
    date: str,
    align: str,
    text_rule: str,
    include_special: bool,
    model_options: dict[str, Any],
) -> dict[str, Any]:
    from rewardlens.words import words_sha1

    return {
        "kind_of_run": "implicit",
        "model_spec": implicit_model_spec(policy_spec, reference_spec),
        "policy_spec": policy_spec,
        "reference_spec": reference_spec,
        "prompts": [prompt.to_dict() for prompt in prompts],
        "responses": "vocab" if lexicon is None else "lexicon",
        "lexicon": None if lexicon is None else lexicon.name,
        "words_sha1": None if words is None else words_sha1(words),
        "measure": measure,
        "beta": beta,
        "template_options": {"policy": templates[0], "reference": templates[1]},
        "date": date,
        "align": align if lexicon is None else None,
        "text_rule": text_rule if lexicon is None else None,
        "alignment_rule": alignment_rule(align, text_rule) if lexicon is None else None,
        "include_special": include_special,
        "model_options": {k: v for k, v in sorted(model_options.items()) if k in ("dtype", "revision")},
    }


def _spec_and_template(model: Any, template: str, role: str) -> tuple[str, str]:
    """The spec and template option of a model to load, or of a loaded scorer (its own template)."""
    if isinstance(model, str | os.PathLike):
        _check_template_option(template, role)
        return os.fspath(model), template
    return _spec_of(model), str(model.template.source)


def _date_string(date: str) -> str:
    """A date option as templates render it and runs record it ("01 Dec 2024")."""
    return parse_date(date).strftime(DATE_STRING_FORMAT)


def run_date(policy: Any, reference: Any, date: str) -> str:
    """The one date both templates render ("26 Jul 2024"): `date` for a model to load, a loaded scorer's own
    template's date otherwise. Two dates would make the log-ratio measure the date too, so they are refused."""
    option = _date_string(date)
    policy_date, reference_date = (
        option if isinstance(model, str | os.PathLike) else str(model.template.date_string)
        for model in (policy, reference)
    )
    if policy_date != reference_date:
        raise UserError(
            f"the policy's template renders the date {policy_date} and the reference's {reference_date}; "
            "give both one date"
        )
    return policy_date


def _as_scorer(model: Any, role: str, template: str, model_options: dict[str, Any], date: str) -> Any:
    if isinstance(model, str | os.PathLike):
        return load_language_model(os.fspath(model), role, template, date, **model_options)
    require_language_model(model, role)
    return model


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
    date: str = DEFAULT_DATE,
    align: str = "text",
    text_rule: str = "stripped",
    include_special: bool = False,
    engine: str = "cached",
    batch_size: int | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    on_loading: Callable[[str], None] | None = None,
    **model_options: Any,
) -> ImplicitSummary:
    """Implicit rewards of a policy against a reference into a run in `out_dir` (resumed if it is there).

    `policy` and `reference` are model specs (loaded with `model_options` as `load_model`: dtype, device,
    trust_remote_code, revision; their templates render `date` where they are date-stamped) or loaded
    language-model scorers (whose own templates and dates then apply). Exactly one of `vocab` and `lexicon`
    chooses the responses.
    """
    from rewardlens.engine import check_batch_size, check_engine
    from rewardlens.runs import RunStore
    from rewardlens.sweep import check_prompts, template_identity
    from rewardlens.words import shard_name, word_table

    prompts = check_prompts(prompts)
    check_measure(measure, beta)
    check_engine(engine)
    check_batch_size(batch_size)
    check_alignment(align, text_rule)
    the_date = run_date(policy, reference, date)
    chosen = _choose_responses(vocab, lexicon)
    words = word_table(chosen) if chosen is not None else None
    policy_spec, policy_template = _spec_and_template(policy, policy_template, "policy")
    reference_spec, reference_template = _spec_and_template(reference, reference_template, "reference")
    identity = _early_identity(
        policy_spec,
        reference_spec,
        prompts,
        chosen,
        words,
        measure,
        beta,
        (policy_template, reference_template),
        the_date,
        align,
        text_rule,
        include_special,
        model_options,
    )
    from rewardlens.runs.store import refuse_other_run

    refuse_other_run(out_dir, identity, EARLY_IDENTITY_KEYS, overwrite)  # before spending time on loading the models

    if on_loading:
        on_loading(policy_spec)
    policy_scorer = _as_scorer(policy, "policy", policy_template, model_options, the_date)
    if on_loading:
        on_loading(reference_spec)
    reference_scorer = _as_scorer(reference, "reference", reference_template, model_options, the_date)
    pairing: VocabularyPairing | None = None
    if words is None:
        pairing = pair_vocabularies(policy_scorer, reference_scorer, align, text_rule, include_special)
        rows_per_prompt = pairing.n_rows
    else:
        rows_per_prompt = len(words)
    policy_description, reference_description = policy_scorer.describe(), reference_scorer.describe()
    model_name = f"implicit:{policy_scorer.name}|{reference_scorer.name}"
    manifest = {
        **identity,
        "rendered_prefix_ids": {
            role: template_identity(scorer, prompts)["rendered_prefix_ids"]
            for role, scorer in (("policy", policy_scorer), ("reference", reference_scorer))
        },
        "model": model_name,
        "kind": "implicit",
        "score_definition": score_definition(measure, beta, identity["responses"]),
        "templates": {"policy": policy_description["template"], "reference": reference_description["template"]},
        "alignment": pairing.describe() if pairing is not None else {"by": "word", "rule": "the same word text"},
        "policy": policy_description,
        "reference": reference_description,
        "dtype": policy_description.get("dtype"),
        "device": policy_description.get("device"),
        "engine": engine,
        "batch_size": batch_size,
        "n_words": None if words is None else len(words),
        "rows_expected": rows_per_prompt * len(prompts),
    }
    store = RunStore(out_dir, manifest, identity_keys=IDENTITY_KEYS, overwrite=overwrite)
    started = time.perf_counter()
    written = 0
    for index, prompt in enumerate(prompts):
        name = shard_name(index)
        if store.is_done(name):
            continue
        if pairing is not None:
            values = vocabulary_logprobs(policy_scorer, reference_scorer, pairing, prompt.text)
        else:
            assert words is not None
            values = word_logprobs(
                policy_scorer, reference_scorer, prompt.text, words["word"].tolist(), engine, batch_size
            ).assign(category=words["category"].to_numpy())
        frame = _run_frame(values, model_name, prompt, measure, beta)
        store.write_shard(name, frame)
        written += len(frame)
        if progress:
            progress(len(frame))
    seconds = time.perf_counter() - started
    finished = store.finish(scoring_seconds=seconds)
    return ImplicitSummary(
        directory=Path(out_dir),
        rows=int(finished["rows"]),
        rows_expected=int(manifest["rows_expected"]),
        rows_written=written,
        seconds=seconds,
        complete=bool(finished["complete"]),
        alignment=dict(finished.get("alignment") or manifest["alignment"]),
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


# -- audit -------------------------------------------------------------------------------------------------------
def refuse_finished_run_of_another_date(run: Path, model_spec: str, date: str, sequences: str | None = None) -> None:
    """Audits and studies skip a finished run without loading its model; one scored with another date (or
    other sequences) is refused instead of being taken for this one (an unfinished one is refused when resumed)."""
    from rewardlens.runs import is_complete_run, read_manifest

    if not is_complete_run(run, model_spec):
        return
    manifest = read_manifest(run)
    wanted = {"date": date} if sequences is None else {"sequences": sequences, "date": date}
    for key, value in wanted.items():
        if manifest.get(key) != value:
            raise UserError(
                f"{run} was scored with {key} {manifest.get(key)!r}, not {value!r}; give another --out "
                "(or remove that run)"
            )


@dataclass
class ImplicitAudit:
    """What `implicit_for_audit` wrote: per audited model its runs, per lexicon the value analysis."""

    vocab_dirs: dict[str, Path] = field(default_factory=dict)
    word_dirs: dict[str, dict[str, Path]] = field(default_factory=dict)
    value_dirs: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _per_prompt(count: Callable[[int], None] | None) -> Progress:
    """run_implicit reports once per prompt (with its rows); the audit counts prompts."""
    if count is None:
        return None
    return lambda rows: count(1)


def _family_option(spec: str, policy_name: str, implicit_name: str, families: Sequence[str]) -> str:
    """`implicit_name=FAMILY`: the policy's family (from --family for the audited model, else its name)."""
    from rewardlens.analysis.family import infer_family, parse_family_options

    overrides = parse_family_options(families)
    keys = [key for key in (spec, policy_name, Path(spec).name) if key in overrides]
    return f"{implicit_name}={overrides[keys[0]] if keys else infer_family(policy_name)}"


def implicit_for_audit(
    models: Sequence[str],
    reference: str,
    out: str | os.PathLike[str],
    *,
    lexicons: Sequence[str] = ("big2-nouns",),
    families: Sequence[str] = (),
    n_permutations: int = 10_000,
    seed: int = 0,
    policy_template: str = DEFAULT_POLICY_TEMPLATE,
    date: str = DEFAULT_DATE,
    engine: str = "cached",
    batch_size: int | None = None,
    phase: Callable[[str, int, int], Callable[[int], None]] | None = None,
    **model_options: Any,
) -> ImplicitAudit:
    """The implicit reward of each audited model against `reference`, in the audit's layout of OUT:

        OUT/models/<model>/implicit-sweep/            whole vocabulary under optpess3 (a run)
        OUT/models/<model>/implicit-words-<lexicon>/  lexicon words under value54 (a run)
        OUT/values-implicit-<lexicon>/                analyze values over the implicit word runs

    The policy is the audited model (`policy_template`, default its chat template), the reference reads
    `plain-nospace` and is loaded once; a reward model has no implicit reward and is skipped with a note.
    Both templates render `date` where they are date-stamped. Finished runs are not recomputed (one finished
    with another date is refused); the value family of an implicit run is its policy's.
    """
    from rewardlens.audit import SWEEP_PROMPTS, WORD_PROMPTS
    from rewardlens.layout import lexicon_slug, model_slug
    from rewardlens.prompts import load_prompts
    from rewardlens.runs import is_complete_run, read_manifest, shard_files
    from rewardlens.values import analyze_value_files

    if not models:
        raise UserError("give at least one model to compare with the reference")
    the_date = _date_string(date)
    for lexicon in lexicons:
        load_lexicon(lexicon)  # a bad lexicon fails now, not after the scoring
    options = {k: v for k, v in model_options.items() if k in ("revision", "dtype", "device", "trust_remote_code")}
    root = Path(out)
    result = ImplicitAudit()
    responses: list[tuple[str, list[Prompt], str | None]] = [
        ("implicit-sweep", load_prompts(SWEEP_PROMPTS), None),
        *[(f"implicit-words-{lexicon_slug(lx)}", load_prompts(WORD_PROMPTS), lx) for lx in lexicons],
    ]
    reference_scorer: ModelScorer | None = None
    family_options: list[str] = []
    for spec in models:
        directory = root / "models" / model_slug(spec)
        runs = [directory / name for name, _, _ in responses]
        for run in runs:
            refuse_finished_run_of_another_date(run, implicit_model_spec(spec, reference), the_date)
        if not all(is_complete_run(run, implicit_model_spec(spec, reference)) for run in runs):
            policy_scorer = _loaded_language_model(spec, "policy", policy_template, options, the_date)
            if policy_scorer is None:
                result.notes.append(f"{spec} is a reward model: it has no implicit reward (that needs an LM)")
                continue
            if reference_scorer is None:
                reference_scorer = load_language_model(
                    reference, "reference", DEFAULT_REFERENCE_TEMPLATE, the_date, **options
                )
            for run, (_, prompts, words) in zip(runs, responses, strict=True):
                what = "vocabulary" if words is None else f"{words} words"
                done = len(shard_files(run))
                count = phase(f"{policy_scorer.name}: implicit {what}", len(prompts), done) if phase else None
                run_implicit(
                    policy_scorer,
                    reference_scorer,
                    prompts,
                    run,
                    vocab=words is None,
                    lexicon=words,
                    engine=engine,
                    batch_size=batch_size,
                    progress=_per_prompt(count),
                )
        manifest = read_manifest(runs[0])
        result.vocab_dirs[spec] = runs[0]
        result.word_dirs[spec] = {lx: run for run, (_, _, lx) in zip(runs, responses, strict=True) if lx}
        family_options.append(_family_option(spec, manifest["policy"]["model"], manifest["model"], families))
    for lexicon in lexicons:
        inputs = [word_dirs[lexicon] for word_dirs in result.word_dirs.values()]
        if not inputs:
            continue
        target = root / f"values-implicit-{lexicon_slug(lexicon)}"
        report = analyze_value_files(
            inputs, lexicon, target, families=family_options, n_permutations=n_permutations, seed=seed
        )
        result.notes.extend(f"implicit {lexicon}: {note}" for note in report.notes)
        result.value_dirs[lexicon] = target
    if (root / "report.html").is_file():
        from rewardlens.report.audit_html import replace_report_section, value_dir_html

        sections = [value_dir_html(f"Implicit reward value bias: {lx}", d) for lx, d in result.value_dirs.items()]
        replace_report_section(root / "report.html", "implicit", "".join(sections))
    return result

# -- benchmark -------------------------------------------------------------------------------------------------
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
    **model_options: Any,
) -> dict[str, Any]:
    """Best-of-`repeats` time of a whole-vocabulary implicit reward on one prompt (both forward passes,
    alignment pick and measure) against one plain forward pass of each model; timings alternate."""
    if repeats < 1:
        raise UserError("--repeats must be at least 1")
    policy_scorer = load_language_model(policy, "policy", policy_template, **model_options)
    reference_scorer = load_language_model(reference, "reference", reference_template, **model_options)
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


__all__ = [
    "ALIGN_MODES",
    "MEASURES",
    "ImplicitSummary",
    "VocabularyPairing",
    "benchmark_implicit",
    "implicit_for_audit",
    "implicit_reward",
    "load_language_model",
    "pair_vocabularies",
    "run_implicit",
    "score_definition",
    "vocabulary_logprobs",
    "word_logprobs",
]
