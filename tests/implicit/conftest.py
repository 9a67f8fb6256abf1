"""Tiny language models for implicit rewards, and log-probabilities computed without rewardlens."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def second_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny Llama LM with the same tokenizer as `tiny_model_dir("llama", "lm")` and other weights."""
    from tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("llama-lm-seed1"), "llama", "lm", seed=1)


class Independent:
    """A model and tokenizer loaded with transformers alone: the test's own truth."""

    def __init__(self, path: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def bos(self) -> list[int]:
        bos = self.tokenizer.bos_token_id
        adds_bos = bos is not None and self.tokenizer("a")["input_ids"][0] == bos
        return [bos] if adds_bos else []

    def chat_prefix(self, prompt: str) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return self.encode(text)

    def plain_prefix(self, prompt: str) -> list[int]:
        """The issue's reference template `User: {prompt}\\nAssistant:`."""
        return self.bos() + self.encode(f"User: {prompt}\nAssistant:")

    @torch.no_grad()
    def next_logprobs(self, ids: Sequence[int]) -> np.ndarray:
        logits = self.model(input_ids=torch.tensor([list(ids)])).logits[0, -1].double()
        return torch.log_softmax(logits, dim=-1).numpy()

    @torch.no_grad()
    def continuation_logprob(self, prefix: Sequence[int], full: Sequence[int]) -> float:
        """log p(full[len(prefix):] | prefix), summed over the continuation tokens."""
        assert list(full[: len(prefix)]) == list(prefix) and len(full) > len(prefix)
        logits = self.model(input_ids=torch.tensor([list(full)])).logits[0].double()
        logprobs = torch.log_softmax(logits, dim=-1)
        return float(sum(logprobs[t - 1, full[t]] for t in range(len(prefix), len(full))))

    def special_ids(self) -> set[int]:
        ids = {int(i) for i in self.tokenizer.all_special_ids}
        ids.update(int(i) for i in self.tokenizer.added_tokens_decoder)
        return ids


@pytest.fixture(scope="session")
def independent() -> Callable[[Path], Independent]:
    cache: dict[Path, Independent] = {}

    def load(path: Path) -> Any:
        if path not in cache:
            cache[path] = Independent(path)
        return cache[path]

    return load
