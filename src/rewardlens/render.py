"""What exactly is scored: each response's ids, the text of every id, and the position a reward model reads.

`render_responses` shows the requests a scorer would build (`rewardlens.engine.sequences`), under `exact` or
`published` sequences; `compare_pipelines` counts, over the whole vocabulary, the single-token responses
whose published sequence (decode, render as text, tokenize again with special tokens) differs from the exact
one, and why. Neither needs the weights: `load_render_subject` reads the tokenizer and, where there is one,
the config, so a directory holding only a tokenizer works too.

Where the read position comes from: a reward model's config (`models.read_rule.rule_for_config`); for a
directory without a config, the rule transformers' sequence classification would apply with the tokenizer's
pad id as `config.pad_token_id` (an RM's config usually copies it; with no pad id the last token is read),
recorded as `"from": "tokenizer"`. A language model has no read position: it scores the log-probability of
every id from `prompt_length` on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlens.config import ModelOptions, model_options
from rewardlens.engine.sequences import RequestBuilder
from rewardlens.errors import UserError
from rewardlens.models import gguf
from rewardlens.models.read_rule import ReadRule, rule_for_config
from rewardlens.models.spec import resolve_model
from rewardlens.models.templates import ConversationTemplate, make_template
from rewardlens.models.vocabulary import select_tokens, vocabulary_size

# Decoded texts of a few tokens of each kind of difference, for the reader of `compare_pipelines`.
EXAMPLES_PER_KIND = 5
# Single-token responses rendered per call of the chat template (bounds memory on 262k-token vocabularies).
_CHUNK = 8192


@dataclass(frozen=True)
class RenderSubject:
    """What rendering needs of a model: its tokenizer and template, its kind and read rule; no weights.

    `kind` is `reward`, `lm`, or None for a directory that holds only a tokenizer (rendered as a reward
    model would see it). `rule_from` says where the read rule came from: `config`, `tokenizer` or None.
    """

    name: str
    tokenizer: Any
    template: ConversationTemplate
    kind: str | None
    read_rule: ReadRule | None
    rule_from: str | None
    include_end: bool = False

    def requests(self) -> RequestBuilder:
        return RequestBuilder(self.template, self.kind or "reward", self.include_end)

    def describe_rule(self) -> dict[str, Any] | None:
        if self.read_rule is None:
            return None
        return {**self.read_rule.describe(), "from": self.rule_from}


def load_render_subject(spec: str, options: ModelOptions | None = None, **changes: Any) -> RenderSubject:
    """Read the tokenizer (and the config, if any) of a model spec, as `load_scorer` would with the same
    `options` (and keyword `changes`), without weights."""
    from transformers import AutoConfig, AutoTokenizer

    from rewardlens.models.loading import infer_kind

    chosen = model_options(options, **changes)
    revision, trust_remote_code, kind = chosen.revision, chosen.trust_remote_code, chosen.kind
    resolved = resolve_model(spec, revision)
    files = gguf.loadable(resolved)
    reading: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if files.gguf_file:
        reading["gguf_file"] = files.gguf_file
    has_config = files.gguf_file is not None or (Path(files.directory) / "config.json").is_file()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(files.directory), **reading)
        config = AutoConfig.from_pretrained(str(files.directory), **reading) if has_config else None
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise UserError(f"cannot load the tokenizer of '{spec}': {str(err).splitlines()[0][:200]}") from None
    conversation = make_template(tokenizer, chosen.template, date=chosen.date, sequences=chosen.sequences)
    model_kind: str | None = None if kind == "auto" else kind
    if config is not None and kind == "auto":
        model_kind = infer_kind(spec, revision=revision, trust_remote_code=trust_remote_code)
    rule, rule_from = _read_rule(model_kind, config, tokenizer)
    return RenderSubject(
        resolved.display_name, tokenizer, conversation, model_kind, rule, rule_from, chosen.include_end
    )


def _read_rule(kind: str | None, config: Any, tokenizer: Any) -> tuple[ReadRule | None, str | None]:
    if kind == "lm":
        return None, None
    if config is not None:
        return rule_for_config(config), "config"
    pad = tokenizer.pad_token_id
    return ReadRule("rightmost-non-pad", int(pad) if pad is not None else None), "tokenizer"


@dataclass(frozen=True)
class RenderedResponse:
    """One response as it is scored: `ids`, the decoded text of each id (`pieces`) and its vocabulary
    string (`tokens`); `ids[:prompt_length]` is the prompt part the cached engine shares; `read_at` is the
    index whose final hidden state a reward model scores (None for a language model)."""

    response: str
    token_id: int | None
    sequences: str
    ids: list[int]
    pieces: list[str]
    tokens: list[str]
    prompt_length: int
    read_at: int | None
    read_token: str | None
    read_rule: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_token_ids(tokenizer: Any, token_ids: Sequence[int]) -> list[int]:
    size = vocabulary_size(tokenizer)
    outside = [int(i) for i in token_ids if not 0 <= int(i) < size]
    if outside:
        raise UserError(f"--token-id {outside[0]}: outside the vocabulary (ids 0..{size - 1})")
    return [int(i) for i in token_ids]


def _pieces(subject: RenderSubject, ids: Sequence[int]) -> list[str]:
    """The text of each id decoded alone, nothing cleaned up."""
    decoded = subject.tokenizer.batch_decode([[int(i)] for i in ids], clean_up_tokenization_spaces=False)
    return [str(text) for text in decoded]


def render_responses(
    subject: RenderSubject, prompt: str, responses: Sequence[str] = (), token_ids: Sequence[int] = ()
) -> list[RenderedResponse]:
    """The requests of text responses, then of single-token responses, as a scorer would build them."""
    if not responses and not token_ids:
        raise UserError("nothing to render: pass --response, --token-id or --vocab")
    ids_of_tokens = _check_token_ids(subject.tokenizer, token_ids)
    builder = subject.requests()
    requests = builder.text_requests(prompt, responses) + builder.token_requests(prompt, ids_of_tokens)
    # A token's response: the text the published pipeline renders, or (exact) the id's own text.
    published = subject.template.sequences == "published"
    token_texts = subject.template.decoded_tokens(ids_of_tokens) if published else _pieces(subject, ids_of_tokens)
    texts = [*responses, *token_texts]
    which: list[int | None] = [*([None] * len(responses)), *ids_of_tokens]
    rendered = []
    for text, token_id, request in zip(texts, which, requests, strict=True):
        ids = request.ids
        pieces = _pieces(subject, ids)
        read_at = subject.read_rule.position(ids) if subject.read_rule is not None else None
        rendered.append(
            RenderedResponse(
                response=text,
                token_id=token_id,
                sequences=subject.template.sequences,
                ids=ids,
                pieces=pieces,
                tokens=[str(t) for t in subject.tokenizer.convert_ids_to_tokens(ids)],
                prompt_length=len(request.prompt_ids),
                read_at=read_at,
                read_token=pieces[read_at] if read_at is not None else None,
                read_rule=subject.describe_rule(),
            )
        )
    return rendered


# -- the two pipelines over the vocabulary -----------------------------------------------------------


@dataclass(frozen=True)
class PipelineComparison:
    """Single-token responses whose published sequence differs from the exact one, by kind of difference.

    - `tokens`: ids compared (the vocabulary without special tokens, a sweep's default candidates);
    - `differ`: published ids != exact ids; every such id is in `double_bos`, `trimmed` or `merged`;
    - `double_bos`: the published ids start with two BOS (the template renders one, the tokenizer adds one);
    - `trimmed`: the template altered the decoded text (its `trim` makes " Freedom" "Freedom");
    - `merged`: the text was not altered, but tokenizing it again gives other ids than [id] (beyond the BOS);
    - `collisions`: ids whose published sequence is also another id's (`collision_groups` such sequences).
    `trimmed` and `merged` are disjoint; `double_bos` overlaps both.
    """

    tokens: int
    differ: int
    double_bos: int
    trimmed: int
    merged: int
    collisions: int
    collision_groups: int
    examples: dict[str, list[list[Any]]]  # [id, decoded text] of a few ids of each kind

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PipelineTable:
    """Per compared id (`token_ids`, in vocabulary order): one boolean mask per kind of difference."""

    token_ids: np.ndarray
    responses: list[str]
    differ: np.ndarray
    double_bos: np.ndarray
    trimmed: np.ndarray
    merged: np.ndarray
    collision: np.ndarray
    collision_groups: int

    def _examples(self, mask: np.ndarray) -> list[list[Any]]:
        """[id, decoded text] of the first ids of a kind with distinct texts (byte pieces all decode to U+FFFD)."""
        chosen: dict[str, int] = {}
        for index in np.flatnonzero(mask):
            chosen.setdefault(self.responses[index], int(self.token_ids[index]))
            if len(chosen) == EXAMPLES_PER_KIND:
                break
        return [[token_id, text] for text, token_id in chosen.items()]

    def summary(self) -> PipelineComparison:
        examples = {
            name: self._examples(mask)
            for name, mask in (
                ("trimmed", self.trimmed),
                ("merged", self.merged),
                ("collisions", self.collision),
            )
        }
        return PipelineComparison(
            tokens=len(self.token_ids),
            differ=int(self.differ.sum()),
            double_bos=int(self.double_bos.sum()),
            trimmed=int(self.trimmed.sum()),
            merged=int(self.merged.sum()),
            collisions=int(self.collision.sum()),
            collision_groups=self.collision_groups,
            examples=examples,
        )


def _without_extra_bos(ids: list[int], bos: int | None) -> list[int]:
    return ids[1:] if bos is not None and ids[:2] == [bos, bos] else ids


def pipeline_table(template: ConversationTemplate, prompt: str) -> PipelineTable:
    """Compare the exact and the published sequence of every non-special single-token response."""
    tokenizer = template.tokenizer
    candidates = select_tokens(tokenizer, "all", include_special=False)
    token_ids = candidates["token_id"].to_numpy()
    bos = tokenizer.bos_token_id
    n = len(token_ids)
    differ, double_bos, trimmed, merged = (np.zeros(n, dtype=bool) for _ in range(4))
    sequences: list[bytes] = []
    responses: list[str] = []
    before, after = template.response_context(prompt)
    for start in range(0, n, _CHUNK):
        chunk = [int(i) for i in token_ids[start : start + _CHUNK]]
        decoded = template.decoded_tokens(chunk)
        rendered = template.render_many(prompt, decoded)
        published = template.tokenize_published(rendered)
        unaltered = [text == before + response + after for text, response in zip(rendered, decoded, strict=True)]
        for offset, (token_id, ids) in enumerate(zip(chunk, published, strict=True)):
            row = start + offset
            sequences.append(np.asarray(ids, dtype=np.int64).tobytes())
            exact = template.single_token_ids(prompt, token_id)
            if ids == exact:
                continue
            differ[row] = True
            double_bos[row] = bos is not None and ids[:2] == [bos, bos] and exact[:2] != [bos, bos]
            trimmed[row] = not unaltered[offset]
            merged[row] = unaltered[offset] and _without_extra_bos(ids, bos) != exact
        responses.extend(decoded)
    counts = Counter(sequences)
    collision = np.asarray([counts[s] > 1 for s in sequences], dtype=bool)
    groups = sum(1 for c in counts.values() if c > 1)
    return PipelineTable(token_ids, responses, differ, double_bos, trimmed, merged, collision, groups)


def compare_pipelines(template: ConversationTemplate, prompt: str) -> PipelineComparison:
    """The counts of `pipeline_table` (what `rewardlens render --vocab` prints)."""
    return pipeline_table(template, prompt).summary()
