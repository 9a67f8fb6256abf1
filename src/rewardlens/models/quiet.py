"""transformers kept quiet while rewardlens loads models: its logs of expected events and its own bars."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_transformers(*, hide_warnings: bool = True, progress_bars: bool = False) -> Iterator[None]:
    """transformers' logging at error level for the duration (e.g. every randomly initialised score-head
    weight is logged otherwise); Python warnings hidden unless `hide_warnings=False`; transformers' progress
    bars switched off unless `progress_bars` (the CLI draws its own)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    if not progress_bars:
        hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            if hide_warnings:
                warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
