"""Exact token sequences for a (prompt, response) conversation.

A single-token response is `prefix_ids + [token_id] + suffix_ids`, built from ids and never by
decoding a token and tokenizing its text again. A text response is the tokenization of the
fully rendered conversation.

`sequences="published"` reproduces instead the pipeline of the published optimal/pessimal token studies,
so that their numbers can be reproduced: decode the token id, render the conversation as text with the
chat template (its `trim` included) and tokenize that text again with the tokenizer's own special tokens
(a second BOS on Llama-3 and Gemma templates).

Date-stamped templates (Llama 3.1/3.2 read `date_string` or call `strftime_now`) render with a fixed date,
never today's: the prefix a run scores must not depend on the day it runs (a resumed sweep would mix two).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from rewardlens.errors import UserError

PLAIN_TEMPLATE = "User: {prompt}\nAssistant: {response}"
# `plain-nospace`: the same conversation text, but the prefix ends at "Assistant:" and the separating space
# belongs to the response. Byte-level BPE and SentencePiece read " love" as one token, so a prefix ending in
# a bare space token is a tokenization artefact for first-token log-probabilities (a base model rarely saw a
# lone space followed by a word token); with this prefix the text responses' ids start exactly after it.
PLAIN_NOSPACE_PREFIX = "User: {prompt}\nAssistant:"
PLAIN_SOURCES = ("plain", "plain-nospace")
# A response that no chat template alters, used to find where the response sits in the render.
_SENTINEL = "RWLSENTINEL7Q"

Sequences = Literal["exact", "published"]
SEQUENCES: tuple[Sequences, ...] = ("exact", "published")

# The date a date-stamped template renders: Llama 3.1's own template falls back to this when no
# `date_string` is passed, so it is the date its published scores most likely saw.
DEFAULT_DATE = "26 Jul 2024"
# How Llama templates format the date (`strftime_now("%d %b %Y")`); `date_string` is passed in this form.
DATE_STRING_FORMAT = "%d %b %Y"
_DATE_FORMATS = ("%d %b %Y", "%d %B %Y", "%Y-%m-%d")
# `strftime_now("...")` with a literal format, and the `strftime_now is [not] defined` tests around it.
_STRFTIME_CALL = re.compile(r"""\bstrftime_now\s*\(\s*(?:'([^'\\]*)'|"([^"\\]*)")\s*\)""")
_STRFTIME_TEST = re.compile(r"\bstrftime_now\s+is\s+(?:not\s+)?defined\b")
_STRFTIME_NAME = re.compile(r"\bstrftime_now\b")
# transformers turns every callable passed to a template into an inert string, so `strftime_now` cannot be
# replaced by a keyword argument: a macro of the same name, defined first, shadows the global for this one
# render and looks the formatted fixed date up in a plain dict. The newline after it is the one that the
# template environment's `trim_blocks` removes after a block tag, so the template's own text is unchanged.
_STRFTIME_MACRO = "{% macro strftime_now(format) %}{{ rewardlens_strftime[format] }}{% endmacro %}\n"


def parse_date(text: str) -> dt.date:
    """A `--date`: "26 Jul 2024", "26 July 2024" or 2024-07-26; a UserError otherwise."""
    cleaned = " ".join(str(text).split())
    for form in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(cleaned, form).date()
        except ValueError:
            continue
    raise UserError(f"--date {text!r} is not a date: use the form 26 Jul 2024 or 2024-07-26")


def check_sequences(sequences: str) -> Sequences:
    """`exact` or `published`; a UserError otherwise."""
    if sequences not in SEQUENCES:
        raise UserError(f"--sequences {sequences!r}: use exact or published")
    return cast("Sequences", sequences)


def _tokenize(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _bos_for(tokenizer: Any) -> list[int]:
    """The BOS id that the tokenizer's own encoding starts with, if any (plain templates need it)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    encoded = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    return [bos] if encoded[:1] == [bos] else []


def _drop_double_bos(ids: list[int], bos: int | None) -> list[int]:
    """Some templates render the BOS and some tokenizers add it again; keep exactly one."""
    while bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
        ids = ids[1:]
    return ids


def _strftime_formats(template_text: str, source: str) -> list[str]:
    """The literal formats a template passes to `strftime_now`; a UserError for one it computes."""
    calls = list(_STRFTIME_CALL.finditer(template_text))
    uses = len(_STRFTIME_NAME.findall(template_text))
    if uses != len(calls) + len(_STRFTIME_TEST.findall(template_text)):
        raise UserError(
            f"the chat template ({source}) calls strftime_now with a computed format, which cannot be fixed "
            "to --date; pass --template FILE.jinja with a literal format"
        )
    return list(dict.fromkeys(match.group(1) if match.group(1) is not None else match.group(2) for match in calls))


@dataclass
class ConversationTemplate:
    """Turns prompts and responses into the ids a model sees.

    `source` is `chat` (the tokenizer's template), `plain` or the path of a Jinja file. `date` is the date
    a date-stamped template renders (DEFAULT_DATE unless given); `sequences` is `exact` (what rewardlens
    scores by default) or `published` (the published optimal/pessimal pipeline, see the module docstring).
    """

    tokenizer: Any
    source: str = "chat"
    jinja: str | None = None
    date: dt.date = field(default_factory=lambda: parse_date(DEFAULT_DATE))
    sequences: Sequences = "exact"
    _prefix_cache: dict[str, list[int]] = field(default_factory=dict, repr=False)
    suffix_ids: list[int] = field(default_factory=list)
    prefix_bos: list[int] = field(default_factory=list, repr=False)
    # What the template text reads of the date, and the kwargs that fix it (set in __post_init__).
    reads_date: bool = field(default=False, repr=False)
    _render_template: str | None = field(default=None, repr=False)
    _date_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        check_sequences(self.sequences)
        if self.source in PLAIN_SOURCES:
            self.prefix_bos = _bos_for(self.tokenizer)
            _, suffix_text = PLAIN_TEMPLATE.format(prompt="", response=_SENTINEL).split(_SENTINEL)
        else:
            self._fix_date()
            _, suffix_text = self._split_render("x")
        self.suffix_ids = _tokenize(self.tokenizer, suffix_text) if suffix_text else []

    @property
    def date_string(self) -> str:
        """The date as Llama templates print it ("26 Jul 2024")."""
        return self.date.strftime(DATE_STRING_FORMAT)

    @property
    def template_text(self) -> str:
        """The Jinja text this template renders (a chat source), or the plain format."""
        if self.source in PLAIN_SOURCES:
            return PLAIN_TEMPLATE
        return str(self.tokenizer.get_chat_template(self.jinja))

    def _fix_date(self) -> None:
        text = self.template_text
        formats = _strftime_formats(text, self.source)
        self.reads_date = bool(formats) or "date_string" in text
        self._date_kwargs = {"date_string": self.date_string}
        self._render_template = self.jinja
        if formats:
            self._date_kwargs["rewardlens_strftime"] = {form: self.date.strftime(form) for form in formats}
            self._render_template = _STRFTIME_MACRO + text

    # -- rendering -----------------------------------------------------------------------------
    def render_messages(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        """Any conversation rendered by the chat template as text, with the fixed date."""
        if self.source in PLAIN_SOURCES:
            raise UserError(f"--template {self.source} renders a single user turn and assistant turn only")
        rendered = self.tokenizer.apply_chat_template(
            messages,
            chat_template=self._render_template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            **self._date_kwargs,
        )
        return str(rendered)

    def _render_chat(self, prompt: str, response: str | None) -> str:
        messages = [{"role": "user", "content": prompt}]
        if response is not None:
            messages.append({"role": "assistant", "content": response})
        return self.render_messages(messages, add_generation_prompt=response is None)

    def _split_render(self, prompt: str) -> tuple[str, str]:
        """Render with a sentinel response and split the text around it."""
        text = self._render_chat(prompt, _SENTINEL)
        if text.count(_SENTINEL) != 1:
            raise UserError(f"the chat template of this model does not render the assistant response ({self.source})")
        before, after = text.split(_SENTINEL)
        return before, after

    def render(self, prompt: str, response: str) -> str:
        """The full conversation as text."""
        if self.source in PLAIN_SOURCES:
            return PLAIN_TEMPLATE.format(prompt=prompt, response=response)
        return self._render_chat(prompt, response)

    def render_many(self, prompt: str, responses: Sequence[str]) -> list[str]:
        """`render(prompt, r)` for every response (one call of the chat template for the batch)."""
        if self.source in PLAIN_SOURCES or not responses:
            return [self.render(prompt, response) for response in responses]
        conversations = [
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}] for response in responses
        ]
        rendered = self.tokenizer.apply_chat_template(
            conversations, chat_template=self._render_template, tokenize=False, **self._date_kwargs
        )
        return [str(text) for text in cast("list[str]", rendered)]

    def response_context(self, prompt: str) -> tuple[str, str]:
        """The rendered text before and after the response: a render that is not `before + response + after`
        altered the response (a template's `trim` makes " Freedom" "Freedom")."""
        if self.source in PLAIN_SOURCES:
            before, after = PLAIN_TEMPLATE.split("{response}")
            return before.format(prompt=prompt), after
        return self._split_render(prompt)

    # -- ids -----------------------------------------------------------------------------------
    def prefix_ids(self, prompt: str) -> list[int]:
        """Everything before the assistant's response, as ids (one BOS at most)."""
        cached = self._prefix_cache.get(prompt)
        if cached is not None:
            return list(cached)
        ids = _drop_double_bos(self._prefix_ids_of(prompt, published=False), self.tokenizer.bos_token_id)
        self._prefix_cache[prompt] = ids
        return list(ids)

    def _prefix_ids_of(self, prompt: str, published: bool) -> list[int]:
        if self.source in PLAIN_SOURCES:
            nospace = self.source == "plain-nospace"
            before = (PLAIN_NOSPACE_PREFIX if nospace else PLAIN_TEMPLATE.split("{response}")[0]).format(prompt=prompt)
            if published:
                return list(self.tokenizer(before, add_special_tokens=True)["input_ids"])
            return self.prefix_bos + _tokenize(self.tokenizer, before)
        before, _ = self._split_render(prompt)
        if published:
            return list(self.tokenizer(before, add_special_tokens=True)["input_ids"])
        return _tokenize(self.tokenizer, before)

    def prompt_ids(self, prompt: str) -> list[int]:
        """The ids of the prompt part under this template's `sequences`: `prefix_ids` (exact), or the
        prefix text tokenized with the tokenizer's special tokens (published). Run identities hash these."""
        if self.sequences == "exact":
            return self.prefix_ids(prompt)
        return self._prefix_ids_of(prompt, published=True)

    def single_token_ids(self, prompt: str, token_id: int) -> list[int]:
        """The exact sequence scored for a single-token response."""
        return self.prefix_ids(prompt) + [int(token_id)] + self.suffix_ids

    def conversation_ids(self, prompt: str, response: str) -> list[int]:
        """The tokenization of the fully rendered conversation."""
        ids = self.prefix_bos + _tokenize(self.tokenizer, self.render(prompt, response))
        return _drop_double_bos(ids, self.tokenizer.bos_token_id)

    # -- the published pipeline ----------------------------------------------------------------
    def decoded_tokens(self, token_ids: Sequence[int]) -> list[str]:
        """Each id decoded alone, as the published pipeline decoded it: `tokenizer.decode([id])` on
        transformers 4, which applied the tokenizer's `clean_up_tokenization_spaces` (True on Llama-3:
        " ," becomes ","); transformers 5 skips that clean-up for BPE tokenizers, so it is applied here."""
        texts = self.tokenizer.batch_decode([[int(i)] for i in token_ids], clean_up_tokenization_spaces=False)
        if getattr(self.tokenizer, "clean_up_tokenization_spaces", False):
            return [str(self.tokenizer.clean_up_tokenization(text)) for text in texts]
        return [str(text) for text in texts]

    def published_ids(self, prompt: str, responses: Sequence[str]) -> list[list[int]]:
        """Each conversation rendered as text and tokenized again with the tokenizer's special tokens."""
        return self.tokenize_published(self.render_many(prompt, responses))

    def tokenize_published(self, rendered: Sequence[str]) -> list[list[int]]:
        """Rendered conversations tokenized as the published pipeline did, with the tokenizer's special tokens."""
        if not rendered:
            return []
        encoded = self.tokenizer(list(rendered), add_special_tokens=True)["input_ids"]
        return [list(ids) for ids in encoded]

    def published_token_ids(self, prompt: str, token_ids: Sequence[int]) -> list[list[int]]:
        """The published sequence of each single-token response: decode, render, tokenize again."""
        return self.published_ids(prompt, self.decoded_tokens(token_ids))

    def describe(self) -> dict[str, Any]:
        """What _run.json records about the template."""
        described: dict[str, Any] = {
            "source": self.source,
            "template": self.template_text,
            "suffix_ids": self.suffix_ids,
            "sequences": self.sequences,
            # The date the template renders with (whether or not it reads one: `reads_date` says).
            "date": self.date_string,
            "reads_date": self.reads_date,
        }
        if self.source == "plain-nospace":
            described["prefix"] = PLAIN_NOSPACE_PREFIX
        return described


def make_template(
    tokenizer: Any,
    template: str | None,
    *,
    date: str | dt.date = DEFAULT_DATE,
    sequences: str = "exact",
) -> ConversationTemplate:
    """`template`: None or `chat` (the tokenizer's own), `plain`, `plain-nospace`, or a `.jinja` file path.

    `date` fixes what a date-stamped template renders; `sequences` is `exact` or `published`.
    """
    fixed = date if isinstance(date, dt.date) else parse_date(date)
    chosen = check_sequences(sequences)
    if template in (None, "chat"):
        if not getattr(tokenizer, "chat_template", None):
            raise UserError("this model has no chat template; pass --template plain or --template FILE.jinja")
        return ConversationTemplate(tokenizer, source="chat", date=fixed, sequences=chosen)
    if template in PLAIN_SOURCES:
        return ConversationTemplate(tokenizer, source=str(template), date=fixed, sequences=chosen)
    path = Path(template)
    if not path.is_file():
        raise UserError(f"template '{template}' is neither chat, plain nor a readable Jinja file")
    jinja = path.read_text(encoding="utf-8")
    return ConversationTemplate(tokenizer, source=str(path), jinja=jinja, date=fixed, sequences=chosen)


def template_from_description(tokenizer: Any, described: dict[str, Any]) -> ConversationTemplate:
    """The template that `describe()` recorded, rebuilt on `tokenizer` (a Ray driver plans a run with the
    tokenizer a worker loaded, and needs the prefix ids the worker scores)."""
    source = str(described.get("source") or "chat")
    jinja = None if source == "chat" or source in PLAIN_SOURCES else str(described["template"])
    return ConversationTemplate(
        tokenizer,
        source=source,
        jinja=jinja,
        date=parse_date(str(described.get("date") or DEFAULT_DATE)),
        sequences=cast("Sequences", described.get("sequences") or "exact"),
    )
