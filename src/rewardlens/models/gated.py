"""Native readers for gated multi-objective reward heads (ArmoRM, QRM), without the checkpoints' remote code.

The published modeling files of ArmoRM-Llama3-8B-v0.1 and QRM-Llama3.1-8B import a docstring constant that
transformers 5 removed, so they cannot run here. Their layout and math are facts about the checkpoints:

- backbone: the base model (`LlamaModel`, `Gemma2Model`) under the `model.` prefix;
- rewards = `regression_layer(h[r])` at the reward position r (the token before the first pad id, i.e. the
  last token when no pad id occurs); QRM's output is objectives x quantiles, averaged over the quantiles;
- gate = softmax(MLP(h[g]) / gating_temperature) * logit_scale, where g is the first index of the last
  occurrence of the gating pattern (the Llama-3 ids of `<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n`);
  ArmoRM's MLP is `gating_n_hidden` x (Linear with bias, ReLU) then Linear; QRM's is x (Linear without bias,
  ReLU, BatchNorm1d) then Linear, so its `gating.layers` indices step by three;
- score = sum(gate * (rewards @ reward_transform_matrix)).

The head is built with the checkpoint's own parameter names and loaded strictly, so a missing tensor is an
error, never a random initialisation. It runs in float32.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from rewardlens.errors import UserError
from rewardlens.models.read_rule import gated_rule

# tokenizer.encode("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n") on Llama-3 tokenizers.
LLAMA3_GATING_PATTERN = (128009, 128006, 78191, 128007, 271)


@dataclass(frozen=True)
class GatedLayout:
    """One published gated architecture."""

    architecture: str
    quantiles: bool
    batchnorm: bool
    reason: str
    pattern: tuple[int, ...] | None = None  # fixed gating ids; None: `pattern_text` tokenized
    pattern_text: str | None = None


GATED_LAYOUTS = {
    layout.architecture: layout
    for layout in [
        GatedLayout(
            "LlamaForRewardModelWithGating",
            quantiles=False,
            batchnorm=False,
            reason="ArmoRM-Llama3-8B-v0.1 (RLHFlow): 19 objectives, gating MLP of Linear+ReLU layers",
            pattern=LLAMA3_GATING_PATTERN,
        ),
        GatedLayout(
            "LlamaForRewardModelWithGating31",
            quantiles=True,
            batchnorm=True,
            reason="QRM-Llama3.1-8B (nicolinho): quantile regression head, gating MLP with BatchNorm",
            pattern=LLAMA3_GATING_PATTERN,
        ),
        GatedLayout(
            "Gemma2ForRewardModelWithGating",
            quantiles=True,
            batchnorm=True,
            reason="QRM-Gemma-2-27B: QRM's head on a Gemma-2 backbone; the gating token is the end of the user "
            "turn before Gemma's model header (layout not checked against the published file here)",
            pattern_text="<end_of_turn>\n<start_of_turn>model\n",
        ),
    ]
}


def gated_layout(config: Any) -> GatedLayout | None:
    """The gated layout a config names in `architectures`, if any.

    QRM-Llama3.1-8B's hub config names ArmoRM's class (`LlamaForRewardModelWithGating`) with `num_quantiles`
    beside it (`...WithGating31` is reward-bench's name for the same checkpoint): the quantile field, not the
    class name, says that the head is QRM's.
    """
    for name in getattr(config, "architectures", None) or []:
        if name in GATED_LAYOUTS:
            layout = GATED_LAYOUTS[name]
            if getattr(config, "num_quantiles", None) is not None and not layout.quantiles:
                return GATED_LAYOUTS["LlamaForRewardModelWithGating31"]
            return layout
    return None


class GatingNetwork(nn.Module):
    """The published gating MLP, with the checkpoint's parameter names (`layers.N`, `logit_scale`)."""

    def __init__(self, hidden: int, objectives: int, width: int, n_hidden: int, batchnorm: bool, temperature: float):
        super().__init__()
        self.temperature = temperature
        self.batchnorm = batchnorm
        self.logit_scale = nn.Parameter(torch.ones(1))
        layers: list[nn.Module] = []
        features = hidden
        for _ in range(n_hidden):
            if batchnorm:  # Linear (no bias), ReLU, BatchNorm1d: three entries per hidden layer
                layers += [nn.Linear(features, width, bias=False), nn.ReLU(), nn.BatchNorm1d(width)]
            else:
                layers.append(nn.Linear(features, width))
            features = width
        layers.append(nn.Linear(features, objectives))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if not self.batchnorm and index < last:
                x = functional.relu(x)
        return functional.softmax(x / self.temperature, dim=1) * self.logit_scale[0]


class GatedHead(nn.Module):
    """Regression layer, gating network and reward transform: the score from two hidden states."""

    def __init__(self, config: Any, layout: GatedLayout) -> None:
        super().__init__()
        hidden = int(config.hidden_size)
        self.objectives = int(_field(config, "num_objectives", 19))
        self.quantiles = int(_field(config, "num_quantiles", 1)) if layout.quantiles else 1
        self.regression_layer = nn.Linear(hidden, self.objectives * self.quantiles, bias=False)
        self.reward_transform_matrix = nn.Parameter(torch.eye(self.objectives))
        self.gating = GatingNetwork(
            hidden,
            self.objectives,
            width=int(_field(config, "gating_hidden_dim", 1024)),
            n_hidden=int(_field(config, "gating_n_hidden", 3)),
            batchnorm=layout.batchnorm,
            temperature=float(_field(config, "gating_temperature", 10)),
        )

    def forward(self, reward_hidden: torch.Tensor, gate_hidden: torch.Tensor) -> torch.Tensor:
        rewards = self.regression_layer(reward_hidden.float())
        rewards = rewards.reshape(-1, self.objectives, self.quantiles).mean(dim=2)
        gate = self.gating(gate_hidden.float())
        return torch.sum(gate * (rewards @ self.reward_transform_matrix), dim=1)


def _field(config: Any, name: str, default: Any) -> Any:
    value = getattr(config, name, None)
    return default if value is None else value


def gating_position(ids: Sequence[int], pattern: tuple[int, ...]) -> int:
    """The first index of the last occurrence of `pattern` in `ids`."""
    width = len(pattern)
    for start in range(len(ids) - width, -1, -1):
        if tuple(ids[start : start + width]) == pattern:
            return start
    raise UserError(
        f"the sequence lacks the gating pattern {list(pattern)} that this gated reward model reads its gate at "
        "(does the template render the assistant header? use the model's own chat template)"
    )


class GatedRewardModel(nn.Module):
    """A gated RM: the natively loaded backbone plus the float32 head; its forward is the published math."""

    base_model_prefix = "model"

    def __init__(
        self, backbone: nn.Module, head: GatedHead, config: Any, layout: GatedLayout, pattern: tuple[int, ...]
    ):
        super().__init__()
        self.model = backbone
        self.head = head
        self.config = config
        self.layout = layout
        self.gating_pattern = pattern
        self.rule = gated_rule(config)

    def get_input_embeddings(self) -> nn.Module:
        embeddings: nn.Module = self.model.get_input_embeddings()  # type: ignore[operator]
        return embeddings

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Scores [B] of unpadded sequences, read where the published forward reads them."""
        hidden = self.model(input_ids=input_ids, use_cache=False).last_hidden_state
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        ids = input_ids.tolist()
        reward_at = torch.tensor([self.rule.position(row) for row in ids], device=input_ids.device)
        gate_at = torch.tensor([gating_position(row, self.gating_pattern) for row in ids], device=input_ids.device)
        scores: torch.Tensor = self.head(hidden[rows, reward_at], hidden[rows, gate_at])
        return scores


def _pattern(layout: GatedLayout, tokenizer: Any) -> tuple[int, ...]:
    if layout.pattern is not None:
        return layout.pattern
    assert layout.pattern_text is not None
    return tuple(tokenizer(layout.pattern_text, add_special_tokens=False)["input_ids"])


def _head_tensors(directory: Path, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The tensors whose names start with `prefixes`, read from (possibly sharded) safetensors, nothing else."""
    from safetensors import safe_open

    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        files = sorted({file for name, file in weight_map.items() if name.startswith(prefixes)})
    elif (directory / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise UserError(f"{directory}: a gated reward model is read from safetensors files, and there are none")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        with safe_open(str(directory / file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                if name.startswith(prefixes):
                    tensors[name] = handle.get_tensor(name)
    return tensors


def load_head(directory: Path, config: Any, layout: GatedLayout) -> GatedHead:
    """The float32 head, every tensor from the checkpoint (a missing one is an error naming it)."""
    head = GatedHead(config, layout)
    tensors = _head_tensors(directory, ("regression_layer.", "reward_transform_matrix", "gating."))
    own = head.state_dict()
    expected = set(own)
    # BatchNorm's step counter plays no part in evaluation; checkpoints may or may not carry it.
    for name in expected - set(tensors):
        if name.endswith("num_batches_tracked"):
            tensors[name] = own[name]
    missing = sorted(expected - set(tensors))
    if missing:
        raise UserError(
            f"{layout.architecture} checkpoint lacks head weights {', '.join(missing)}; rewardlens does not score "
            "with a head the checkpoint does not hold"
        )
    unknown = sorted(set(tensors) - expected)
    if unknown:
        raise UserError(f"{layout.architecture} checkpoint holds head tensors of another layout: {', '.join(unknown)}")
    try:
        head.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise UserError(
            f"{layout.architecture} head weights do not fit the config: {str(err).splitlines()[0]}"
        ) from None
    return head.float().eval()


def build_gated_model(
    backbone: nn.Module, directory: Path, config: Any, layout: GatedLayout, tokenizer: Any
) -> GatedRewardModel:
    """Put the checkpoint's gated head on its natively loaded backbone."""
    head = load_head(directory, config, layout)
    device = next(backbone.parameters()).device
    return GatedRewardModel(backbone, head.to(device), config, layout, _pattern(layout, tokenizer))
