"""Grouped-query attention without copying key/value heads, where that is fast and exact.

transformers repeats each KV head for its query heads (a full copy of the cache per layer) unless the
attention call has no mask. The cached engine always has a mask over prompt + continuation, so that
copy dominated its CPU time. PyTorch's CPU SDPA broadcasts grouped heads itself (`enable_gqa`), which
transformers uses when TRANSFORMERS_SDPA_FORCE_GQA=1; on CUDA a mask with GQA can fall back to the
slow math kernel, so the switch is only turned on for CPU. Engines are tested against the reference.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_SWITCH = "TRANSFORMERS_SDPA_FORCE_GQA"


@contextmanager
def grouped_query_sdpa(device: torch.device) -> Iterator[None]:
    if device.type != "cpu":
        yield
        return
    previous = os.environ.get(_SWITCH)
    os.environ[_SWITCH] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_SWITCH, None)
        else:
            os.environ[_SWITCH] = previous
