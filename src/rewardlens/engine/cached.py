"""The cached engine: each prompt's KV is computed once and shared by a batch of continuations.

For every prompt group: one forward pass over the prompt ids; then batches of right-padded
continuations, each with a copy of the prompt KV repeated over the batch, an attention mask that
covers prompt + continuation, and position ids that continue after the prompt. This reproduces
the reference scores (Gemma-2 sliding-window layers included) while reading the prompt once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rewardlens.engine.padding import pad_right
from rewardlens.engine.readouts import BatchStates, Readout
from rewardlens.engine.requests import ScoreRequest, group_by_prompt


@torch.inference_mode()
def run_cached(
    backbone: nn.Module,
    readout: Readout,
    requests: Sequence[ScoreRequest],
    device: torch.device,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> list[Any]:
    results: list[Any] = [None] * len(requests)
    for prompt_ids, indices in group_by_prompt(requests).items():
        prompt = torch.tensor([prompt_ids], device=device)
        out = backbone(input_ids=prompt, use_cache=True)
        prompt_cache, prompt_hidden = out.cache, out.last_hidden_state
        n_prompt = len(prompt_ids)
        # Similar lengths in one batch keep padding small.
        indices = sorted(indices, key=lambda i: len(requests[i].continuation_ids))
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = [requests[i].continuation_ids for i in chunk]
            ids, mask = pad_right(batch, device)
            width = ids.shape[1]
            attention: torch.Tensor | None = None
            if not bool(mask.all()):
                # Without padding the model's own causal mask is exact and cheaper to build.
                ones = torch.ones((len(chunk), n_prompt), dtype=mask.dtype, device=device)
                attention = torch.cat([ones, mask], 1)
            positions = (n_prompt + torch.arange(width, device=device))[None].expand(len(chunk), width)
            cache = repeat_prompt_cache(prompt_cache, len(chunk))
            hidden = backbone(
                input_ids=ids,
                attention_mask=attention,
                position_ids=positions,
                cache=cache,
                use_cache=True,
            ).last_hidden_state
            lengths = mask.sum(1)
            states = BatchStates(
                [requests[i] for i in chunk], prompt_hidden.expand(len(chunk), -1, -1), hidden, ids, lengths
            )
            outputs = readout(states)
            for index, output in zip(chunk, outputs, strict=True):
                results[index] = output
            if progress:
                progress(len(chunk))
    return results


def repeat_prompt_cache(prompt_cache: Any, batch: int) -> Any:
    """A copy of the prompt KV for `batch` continuations.

    Cache layers keep `keys`/`values` and concatenate new states onto them in the forward pass, so a
    broadcast view is enough: the concatenation materialises it once, instead of a repeat and then a
    concatenation. Caches of another layout are repeated the documented way.
    """
    cache = copy.deepcopy(prompt_cache)
    layers = getattr(cache, "layers", None) or []
    expandable = layers and all(
        isinstance(getattr(layer, name, None), torch.Tensor) and getattr(layer, name).shape[0] == 1
        for layer in layers
        for name in ("keys", "values")
    )
    if not expandable:
        cache.batch_repeat_interleave(batch)
        return cache
    for layer in layers:
        layer.keys = layer.keys.expand(batch, -1, -1, -1)
        layer.values = layer.values.expand(batch, -1, -1, -1)
    return cache
