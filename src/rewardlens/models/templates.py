"""Exact token sequences for a (prompt, response) conversation.

A single-token response is `prefix_ids + [token_id] + suffix_ids`, built from ids and never by
decoding a token and tokenizing its text again. A text response is the tokenization of the
fully rendered conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class ConversationTemplate:
    """Turns prompts and responses into the ids a model sees.

    `source` is `chat` (the tokenizer's template), `plain` or the path of a Jinja file.
    """

    tokenizer: Any
    source: str = "chat"
    jinja: str | None = None
    _prefix_cache: dict[str, list[int]] = field(default_factory=dict, repr=False)
    suffix_ids: list[int] = field(default_factory=list)
    prefix_bos: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.source in PLAIN_SOURCES:
            self.prefix_bos = _bos_for(self.tokenizer)
            _, suffix_text = PLAIN_TEMPLATE.format(prompt="", response=_SENTINEL).split(_SENTINEL)
        else:
            _, suffix_text = self._split_render("x")
        self.suffix_ids = _tokenize(self.tokenizer, suffix_text) if suffix_text else []

    # -- rendering -----------------------------------------------------------------------------
    def _render_chat(self, prompt: str, response: str | None) -> str:
        messages = [{"role": "user", "content": prompt}]
        if response is not None:
            messages.append({"role": "assistant", "content": response})
        rendered = self.tokenizer.apply_chat_template(
            messages,
            chat_template=self.jinja,
            tokenize=False,
            add_generation_prompt=response is None,
        )
        return str(rendered)

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

    # -- ids -----------------------------------------------------------------------------------
    def prefix_ids(self, prompt: str) -> list[int]:
        """Everything before the assistant's response, as ids (one BOS at most)."""
        cached = self._prefix_cache.get(prompt)
        if cached is not None:
            return list(cached)
        if self.source in PLAIN_SOURCES:
            nospace = self.source == "plain-nospace"
            before = (PLAIN_NOSPACE_PREFIX if nospace else PLAIN_TEMPLATE.split("{response}")[0]).format(prompt=prompt)
            ids = self.prefix_bos + _tokenize(self.tokenizer, before)
        else:
            before, _ = self._split_render(prompt)
            ids = _tokenize(self.tokenizer, before)
        ids = _drop_double_bos(ids, self.tokenizer.bos_token_id)
        self._prefix_cache[prompt] = ids
        return list(ids)

    def single_token_ids(self, prompt: str, token_id: int) -> list[int]:
        """The exact sequence scored for a single-token response."""
        return self.prefix_ids(prompt) + [int(token_id)] + self.suffix_ids

    def conversation_ids(self, prompt: str, response: str) -> list[int]:
        """The tokenization of the fully rendered conversation."""
        ids = self.prefix_bos + _tokenize(self.tokenizer, self.render(prompt, response))
        return _drop_double_bos(ids, self.tokenizer.bos_token_id)

    def describe(self) -> dict[str, Any]:
        """What run.json records about the template."""
        text = PLAIN_TEMPLATE if self.source in PLAIN_SOURCES else (self.jinja or self.tokenizer.chat_template)
        described = {"source": self.source, "template": text, "suffix_ids": self.suffix_ids}
        if self.source == "plain-nospace":
            described["prefix"] = PLAIN_NOSPACE_PREFIX
        return described


def make_template(tokenizer: Any, template: str | None) -> ConversationTemplate:
    """`template`: None or `chat` (the tokenizer's own), `plain`, `plain-nospace`, or a `.jinja` file path."""
    if template in (None, "chat"):
        if not getattr(tokenizer, "chat_template", None):
            raise UserError("this model has no chat template; pass --template plain or --template FILE.jinja")
        return ConversationTemplate(tokenizer, source="chat")
    if template in PLAIN_SOURCES:
        return ConversationTemplate(tokenizer, source=str(template))
    path = Path(template)
    if not path.is_file():
        raise UserError(f"template '{template}' is neither chat, plain nor a readable Jinja file")
    return ConversationTemplate(tokenizer, source=str(path), jinja=path.read_text(encoding="utf-8"))
