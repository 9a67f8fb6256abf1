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


# Words the boundary tokenizer learns twice: at the start of a line ("love") and after a space (" love").
BOUNDARY_WORDS = (
    "love", "family", "freedom", "honesty", "kindness", "power", "success", "wealth", "peace", "justice",
    "courage", "trust", "warmth", "ambition", "friendship", "achievement", "agency", "communion", "competence",
    "greatest", "answer", "world", "thing", "best",
)


def _boundary_tokenizer() -> Any:
    """A byte-level BPE tokenizer (Llama-3 specials and template) holding most words in both forms."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from tiny_models import SPECIALS

    specials, template = SPECIALS["llama"]
    corpus = [line for word in BOUNDARY_WORDS for line in (f"{word}\n", f"a {word}\n")] * 20
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=520, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(corpus, trainer)
    bos = specials[0]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, backend.token_to_id(bos))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos, eos_token="<|eot_id|>", pad_token="<|eot_id|>"
    )
    tokenizer.chat_template = template
    return tokenizer


@pytest.fixture(scope="session")
def boundary_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama LM that has learnt only the template boundary: its next token depends on the last prefix
    token alone, and after the chat prefix (a newline) a token without a leading space is e^4 times likelier
    relative to one with a space than after "Assistant:" (the `plain-nospace` prefix), on top of one random
    preference per token shared by both contexts. Used as policy and reference, the two templates differ in
    nothing else."""
    from transformers import AutoModelForCausalLM

    from tiny_models import tiny_config

    tokenizer = _boundary_tokenizer()
    config: Any = tiny_config("llama", len(tokenizer), tokenizer)
    model = AutoModelForCausalLM.from_config(config)
    prompt = "What is the best thing in the world?"
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    chat_last = int(tokenizer(chat, add_special_tokens=False)["input_ids"][-1])
    plain_last = int(tokenizer(f"User: {prompt}\nAssistant:", add_special_tokens=False)["input_ids"][-1])
    assert chat_last != plain_last
    generator = torch.Generator().manual_seed(0)
    vocabulary = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    space = torch.tensor([token.startswith("\u0120") for token in vocabulary], dtype=torch.float32)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            # The layers add nothing to the residual stream: each position's state is its own embedding.
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                parameter.zero_()
            elif "norm" in name:
                parameter.fill_(1.0)
            else:
                parameter.normal_(0.0, 0.3, generator=generator)
        embed = model.get_input_embeddings().weight
        embed.zero_()
        embed[:, 1] = 1.0  # the shared direction
        embed[chat_last, 0], embed[plain_last, 0] = 1.0, -1.0  # the boundary direction
        head = model.get_output_embeddings().weight
        assert head.data_ptr() != embed.data_ptr()  # untied: the head is set apart from the embeddings
        head.zero_()
        # After RMSNorm the last state is 4 * (+-1, 1, 0, ...): logits 4 * (+-0.25 * (1 - 2 * space) + shared).
        head[:, 0] = 0.25 * (1.0 - 2.0 * space)
        head[:, 1] = torch.randn(len(tokenizer), generator=generator) * 0.5
    path = tmp_path_factory.mktemp("boundary-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
