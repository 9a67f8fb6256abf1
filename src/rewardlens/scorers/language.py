"""The two language models of an implicit reward: loading each for its role, and what pairing needs of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardlens.config import DEFAULT_POLICY_TEMPLATE, ModelOptions, model_options
from rewardlens.errors import UserError
from rewardlens.models.loading import load_model, text_config
from rewardlens.models.templates import make_template, parse_date
from rewardlens.scorers.model import ModelScorer

NAMED_TEMPLATES = ("chat", "plain", "plain-nospace")


def check_template_option(template: str, role: str) -> None:
    if template not in NAMED_TEMPLATES and not Path(template).is_file():
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


def loaded_language_model(spec: str, role: str, options: ModelOptions) -> ModelScorer | None:
    """A log-probability scorer loaded with every one of `options` (its `template` is the role's), or None
    when `spec` is a reward model."""
    template = options.template or DEFAULT_POLICY_TEMPLATE
    check_template_option(template, role)
    loaded = load_model(spec, **options.loading())
    if loaded.kind != "lm":
        return None
    if template == "chat" and not getattr(loaded.tokenizer, "chat_template", None):
        raise UserError(
            f"the {role} model '{spec}' has no chat template; pass --{role}-template plain-nospace, plain or FILE"
        )
    conversation = make_template(loaded.tokenizer, template, date=parse_date(options.date), sequences=options.sequences)
    return ModelScorer(loaded, conversation, include_end=options.include_end)


def load_language_model(spec: str, role: str, options: ModelOptions | None = None, **changes: Any) -> ModelScorer:
    """A log-probability scorer for the policy or the reference; one-line errors name the role's option.
    `options.date` fixes what a date-stamped template renders (as `make_template`)."""
    scorer = loaded_language_model(spec, role, model_options(options, **changes))
    if scorer is None:
        raise _not_a_language_model(role, spec)
    return scorer


def spec_of(scorer: ModelScorer) -> str:
    return str(scorer.describe().get("spec") or scorer.name)


def n_logits(scorer: ModelScorer) -> int:
    """The number of next-token logits the model outputs (may differ from the tokenizer's length)."""
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


__all__ = [
    "check_template_option",
    "load_language_model",
    "loaded_language_model",
    "n_logits",
    "require_language_model",
    "response_lead",
    "same_vocabulary",
    "spec_of",
]
