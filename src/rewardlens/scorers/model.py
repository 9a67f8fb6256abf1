"""A scorer of reward models and language models: one model, its template and its engine (`load_scorer`).

A scorer turns (prompt, response) pairs into exact id sequences with its template and hands them
to an engine; it never computes statistics.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
import torch

from rewardlens import __version__
from rewardlens.config import ModelOptions, model_options
from rewardlens.engine import LogprobReadout, Readout, RewardReadout, ScoreRequest, run_engine
from rewardlens.engine.readouts import lm_logits
from rewardlens.engine.sequences import RequestBuilder
from rewardlens.errors import UserError
from rewardlens.models.heads import backbone_of
from rewardlens.models.loading import LoadedModel, load_model, text_config
from rewardlens.models.templates import (
    ConversationTemplate,
    make_template,
    parse_date,
)
from rewardlens.progress import Progress

Reduction = Literal["sum", "mean"]


class ScorerInfo(Protocol):
    """What planning a run needs to know of a scorer: a loaded `ModelScorer`, or the `ScorerFacts` that a
    Ray worker sends the driver, which plans the run without loading the weights itself."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def include_end(self) -> bool: ...

    @property
    def tokenizer(self) -> Any: ...

    def describe(self) -> dict[str, Any]: ...


def scores_first_token_logprobs(scorer: ScorerInfo) -> bool:
    """Whether a one-token response's score is the first-token log-probability of that token (a language
    model that does not also score the end-of-turn token), which one forward pass gives for every token."""
    return scorer.kind == "lm" and not scorer.include_end


def default_batch_size(loaded: LoadedModel) -> int:
    """A batch that fits: from free GPU memory on CUDA, a fixed size that keeps 2 CPU cores busy otherwise."""
    if loaded.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(loaded.device)
        config = text_config(loaded.model)
        hidden = int(getattr(config, "hidden_size", 4096))
        layers = int(getattr(config, "num_hidden_layers", 32))
        vocab = int(getattr(config, "vocab_size", 32000)) if loaded.kind == "lm" else 0
        # Per sequence of ~64 tokens: the KV copy, a few activations, and log-probabilities over the vocabulary.
        per_sequence = 64 * (4 * hidden * layers + 16 * hidden + vocab) * 4
        return int(max(1, min(4096, 0.4 * free // per_sequence)))
    return 256 if loaded.kind == "reward" else 64


class ModelScorer:
    """Scores responses with a reward model (raw head logit) or a language model (log-probability)."""

    def __init__(self, loaded: LoadedModel, template: ConversationTemplate, include_end: bool = False) -> None:
        self.loaded = loaded
        self.template = template
        self.kind = loaded.kind
        self.name = loaded.resolved.display_name
        self.tokenizer = loaded.tokenizer
        self.model = loaded.model
        # For a language model: also count the end-of-turn token after the response.
        self.include_end = include_end
        self._backbone = backbone_of(loaded.model)
        self._readout: Readout
        if self.kind == "reward":
            assert loaded.head is not None and loaded.read_rule is not None
            self._readout = RewardReadout(loaded.model, loaded.head, loaded.read_rule)
        else:
            self._readout = LogprobReadout(loaded.model)

    # -- requests ------------------------------------------------------------------------------
    def _request_builder(self) -> RequestBuilder:
        return RequestBuilder(self.template, self.kind, self.include_end, self.loaded.max_length)

    def _end_ids(self) -> list[int]:
        """The tokens scored after the response: the whole suffix for an RM, at most its first token for an LM."""
        return self._request_builder().end_ids()

    def token_requests(self, prompt: str, token_ids: Sequence[int]) -> list[ScoreRequest]:
        """Single-token responses as the template's `sequences` builds them (see `rewardlens.engine.sequences`)."""
        return self._request_builder().token_requests(prompt, token_ids)

    def text_requests(self, prompt: str, responses: Sequence[str]) -> list[ScoreRequest]:
        """Text responses as the template's `sequences` builds them (see `rewardlens.engine.sequences`)."""
        return self._request_builder().text_requests(prompt, responses)

    # -- scoring -------------------------------------------------------------------------------
    def run(
        self,
        requests: Sequence[ScoreRequest],
        engine: str = "cached",
        batch_size: int | None = None,
        progress: Progress = None,
    ) -> list[Any]:
        """Per-request results: a float for an RM, the per-token log-probabilities for an LM."""
        if not requests:
            raise UserError("nothing to score: the response list is empty")
        head = self.loaded.head
        if head is not None and head.needs_full_forward:
            engine = "reference"  # only the (remote) model's own forward computes the score
        size = batch_size or default_batch_size(self.loaded)
        return run_engine(engine, self._backbone, self._readout, requests, self.loaded.device, size, progress)

    def _reduce(self, results: list[Any], reduction: Reduction) -> np.ndarray:
        if self.kind == "reward":
            return np.asarray(results, dtype=np.float64)
        reduce = np.sum if reduction == "sum" else np.mean
        return np.asarray([reduce(r) for r in results], dtype=np.float64)

    def score_requests(
        self,
        requests: Sequence[ScoreRequest],
        engine: str = "cached",
        batch_size: int | None = None,
        progress: Progress = None,
        reduction: Reduction = "sum",
    ) -> np.ndarray:
        """One score per request (a language model's token log-probabilities summed, or averaged)."""
        return self._reduce(self.run(requests, engine, batch_size, progress), reduction)

    def score_token_ids(
        self,
        prompt: str,
        token_ids: Sequence[int],
        engine: str = "cached",
        batch_size: int | None = None,
        progress: Progress = None,
        reduction: Reduction = "sum",
    ) -> np.ndarray:
        """Scores of single-token responses, each exactly `prefix_ids + [id] + suffix_ids`."""
        return self.score_requests(self.token_requests(prompt, token_ids), engine, batch_size, progress, reduction)

    def score_texts(
        self,
        prompt: str,
        responses: Sequence[str],
        engine: str = "cached",
        batch_size: int | None = None,
        progress: Progress = None,
        reduction: Reduction = "sum",
    ) -> np.ndarray:
        """Scores of text responses, each the tokenization of the full rendered conversation."""
        return self.score_requests(self.text_requests(prompt, responses), engine, batch_size, progress, reduction)

    def token_logprobs(
        self, prompt: str, responses: Sequence[str], engine: str = "cached", batch_size: int | None = None
    ) -> list[np.ndarray]:
        """Per-token log-probabilities of each response (language models only)."""
        self._require_lm("per-token log-probabilities")
        return self.run(self.text_requests(prompt, responses), engine, batch_size)

    @torch.inference_mode()
    def first_token_logprobs(self, prompt: str) -> np.ndarray:
        """log p(first response token = v | prompt) for the whole vocabulary, from one forward pass."""
        self._require_lm("first-token log-probabilities")
        prefix = torch.tensor([self.template.prefix_ids(prompt)], device=self.loaded.device)
        hidden = self._backbone(input_ids=prefix, use_cache=False).last_hidden_state[:, -1]
        logits = lm_logits(self.model, hidden)
        return torch.log_softmax(logits.double(), dim=-1)[0].cpu().numpy()

    def _require_lm(self, what: str) -> None:
        if self.kind != "lm":
            raise UserError(f"{what} need a language model; '{self.name}' is a reward model")

    def describe(self) -> dict[str, Any]:
        """What _run.json records about the model and how it was scored."""
        import transformers


        loaded = self.loaded
        return {
            "model": self.name,
            "spec": loaded.resolved.spec,
            "resolved_path": str(loaded.resolved.directory / (loaded.resolved.gguf_file or "")),
            "revision": loaded.resolved.revision,
            "kind": self.kind,
            "head": loaded.head.name if loaded.head else None,
            "read_rule": loaded.read_rule.describe() if loaded.read_rule else None,
            "head_dtype": ("float32" if loaded.head_float32 else str(loaded.dtype).removeprefix("torch."))
            if loaded.head
            else None,
            "dtype": str(loaded.dtype).removeprefix("torch."),
            "device": str(loaded.device),
            "include_end": self.include_end,
            "template": self.template.describe(),
            "versions": {
                "rewardlens": __version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
        }


def load_scorer(spec: str, options: ModelOptions | None = None, **changes: Any) -> ModelScorer:
    """Load a model and its template into a scorer: `options` (a `ModelOptions`, default the defaults) with
    keyword `changes` (`load_scorer(spec, dtype="bfloat16")`); see `load_model` and `make_template`."""
    chosen = model_options(options, **changes)
    loaded = load_model(spec, **chosen.loading())
    conversation = make_template(
        loaded.tokenizer, chosen.template, date=parse_date(chosen.date), sequences=chosen.sequences
    )
    return ModelScorer(loaded, conversation, include_end=chosen.include_end)
