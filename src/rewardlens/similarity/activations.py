"""Hidden states of every layer for a list of stimuli: the representations that `layers` compares.

A stimulus is a response to `prompt` under the model's own chat template (the exact ids the reward
model scores, built by `models.templates`), or raw text when no template is used. One forward pass
of the transformer body per padded batch, with `output_hidden_states=True`, gives the embeddings
and the output of every block (in transformers the last entry is after the final norm). Each
sequence is pooled to one vector per layer:

- `last`: the last real token, where a reward model reads its score;
- `mean`: the mean over the response's own tokens (the template's prefix and suffix left out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rewardlens.errors import UserError

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


def _pooled(hidden: torch.Tensor, batch: Sequence[Encoded], pool: str) -> torch.Tensor:
    """(batch, d) from (batch, tokens, d) hidden states of right-padded sequences, in float64."""
    rows = []
    for row, encoded in enumerate(batch):
        if pool == "last":
            rows.append(hidden[row, len(encoded.ids) - 1])
        else:
            rows.append(hidden[row, encoded.start : encoded.stop].double().mean(dim=0))
    return torch.stack([row.double() for row in rows])


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
    """One float32 array (stimuli x hidden size) per layer: embeddings first, then every block."""
    if pool not in POOLS:
        raise UserError(f"unknown pooling {pool!r}; choose from: {', '.join(POOLS)}")
    if not stimuli:
        raise UserError("no stimuli to encode")
    if template is not None and prompt is None:
        raise UserError("--prompt is required with a chat template (or pass --template none for raw text)")
    from rewardlens.models.heads import backbone_of

    body = backbone_of(model)
    device = device or next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = [encode_stimulus(tokenizer, template, prompt, text) for text in stimuli]
    per_layer: list[list[np.ndarray]] | None = None
    for first in range(0, len(encoded), batch_size):
        batch = encoded[first : first + batch_size]
        width = max(len(item.ids) for item in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, item in enumerate(batch):
            input_ids[row, : len(item.ids)] = torch.tensor(item.ids)
            attention[row, : len(item.ids)] = 1
        with torch.inference_mode():
            output = body(
                input_ids=input_ids.to(device), attention_mask=attention.to(device), output_hidden_states=True
            )
        states = output.hidden_states
        if per_layer is None:
            per_layer = [[] for _ in states]
        for layer, hidden in enumerate(states):
            per_layer[layer].append(_pooled(hidden, batch, pool).float().cpu().numpy())
        if progress:
            progress(len(batch))
    assert per_layer is not None
    return [np.concatenate(blocks) for blocks in per_layer]
