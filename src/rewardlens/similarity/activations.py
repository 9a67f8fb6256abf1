"""Hidden states of every layer for a list of stimuli: the representations that `layers` compares.

A stimulus is a response to `prompt` under the model's own chat template (the exact ids the reward
model scores, built by `models.templates`), or raw text when no template is used. One forward pass
of the transformer body per padded batch, with `output_hidden_states=True`, gives the embeddings
and the output of every block (in transformers the last entry is after the final norm). Each
sequence is pooled to one vector per layer:

- `last`: the last real token, where a reward model reads its score;
- `mean`: the mean over the response's own tokens (the template's prefix and suffix left out).

Batches are right-padded; padding never changes a real token's hidden state (causal attention, the
padded keys masked), which the tests check against single unpadded sequences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rewardlens.engine.cached import repeat_prompt_cache
from rewardlens.engine.padding import pad_right
from rewardlens.errors import UserError
from rewardlens.models.heads import backbone_of

POOLS = ("last", "mean")


@dataclass(frozen=True)
class Encoded:
    """The ids of one stimulus and the half-open span [start, stop) of its response tokens."""

    ids: list[int]
    start: int
    stop: int


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    length = 0
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        length += 1
    return length


def encode_stimulus(tokenizer: Any, template: Any | None, prompt: str | None, stimulus: str) -> Encoded:
    """Ids of the full conversation (or raw text) and where the response's own tokens are."""
    if template is None:
        ids = list(tokenizer(stimulus, add_special_tokens=True)["input_ids"])
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        start = 0
        while start < len(ids) - 1 and ids[start] in special:
            start += 1  # a leading BOS is not part of the text
        return Encoded(ids, start, len(ids))
    assert prompt is not None
    ids = list(template.conversation_ids(prompt, stimulus))
    # The rendered conversation need not tokenize with the prompt's ids as an exact prefix: the
    # response then starts where the two first differ.
    start = _common_prefix(template.prefix_ids(prompt), ids)
    suffix = list(template.suffix_ids)
    stop = len(ids) - len(suffix) if suffix and ids[len(ids) - len(suffix) :] == suffix else len(ids)
    if stop <= start:
        start, stop = min(start, len(ids) - 1), len(ids)
    return Encoded(ids, start, stop)


def _pooled(hidden: torch.Tensor, batch: Sequence[Encoded], pool: str, offset: int) -> torch.Tensor:
    """(batch, d) float64 from (batch, tokens, d) hidden states of right-padded sequences whose first
    `offset` ids were not fed (they came from a shared prefix cache)."""
    rows = []
    for row, encoded in enumerate(batch):
        if pool == "last":
            rows.append(hidden[row, len(encoded.ids) - 1 - offset].double())
        else:
            rows.append(hidden[row, encoded.start - offset : encoded.stop - offset].double().mean(dim=0))
    return torch.stack(rows)


def _shared_prefix(encoded: Sequence[Encoded]) -> int:
    """Length of the ids every stimulus starts with and that end before every response (0: none)."""
    first = encoded[0].ids
    length = min(item.start for item in encoded)
    for item in encoded[1:]:
        length = min(length, _common_prefix(first[:length], item.ids))
    return length


def _hidden_states(
    body: torch.nn.Module, batch: Sequence[Encoded], offset: int, prefix_cache: Any, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """Hidden states of every layer for the ids after `offset`, on top of a copy of the prefix's KV."""

    ids, mask = pad_right([item.ids[offset:] for item in batch], device)
    if prefix_cache is None:
        return tuple(body(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states)
    width = ids.shape[1]
    ones = torch.ones((len(batch), offset), dtype=mask.dtype, device=device)
    positions = (offset + torch.arange(width, device=device))[None].expand(len(batch), width)
    cache = repeat_prompt_cache(prefix_cache, len(batch))
    output = body(
        input_ids=ids,
        attention_mask=torch.cat([ones, mask], 1),
        position_ids=positions,
        cache=cache,
        use_cache=True,
        output_hidden_states=True,
    )
    return tuple(output.hidden_states)


def layer_activations(
    model: torch.nn.Module,
    tokenizer: Any,
    stimuli: Sequence[str],
    *,
    template: Any | None = None,
    prompt: str | None = None,
    pool: str = "last",
    batch_size: int = 16,
    device: torch.device | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """One float32 array (stimuli x hidden size) per layer: embeddings first, then every block.

    The template's prefix (system prompt, question) is the same for every stimulus: its KV is
    computed once and each batch continues from a copy of it, as the cached scoring engine does
    (tested against one plain forward pass per stimulus).
    """
    if pool not in POOLS:
        raise UserError(f"unknown pooling {pool!r}; choose from: {', '.join(POOLS)}")
    if not stimuli:
        raise UserError("no stimuli to encode")
    if template is not None and prompt is None:
        raise UserError("--prompt is required with a chat template (or pass --template none for raw text)")

    body = backbone_of(model)
    device = device or next(model.parameters()).device
    encoded = [encode_stimulus(tokenizer, template, prompt, text) for text in stimuli]
    offset = _shared_prefix(encoded) if template is not None else 0
    prefix_cache = None
    with torch.inference_mode():
        if offset:
            prefix = torch.tensor([encoded[0].ids[:offset]], device=device)
            prefix_cache = body(input_ids=prefix, use_cache=True).cache
        per_layer: list[list[np.ndarray]] = []
        for first in range(0, len(encoded), batch_size):
            batch = encoded[first : first + batch_size]
            states = _hidden_states(body, batch, offset, prefix_cache, device)
            per_layer = per_layer or [[] for _ in states]
            for layer, hidden in enumerate(states):
                per_layer[layer].append(_pooled(hidden, batch, pool, offset).float().cpu().numpy())
            if progress:
                progress(len(batch))
    return [np.concatenate(blocks) for blocks in per_layer]
