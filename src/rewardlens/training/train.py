"""Bradley–Terry reward-model training with TRL's `RewardTrainer` (LoRA through peft when asked).

The loss is TRL's: -log sigmoid(r(chosen) - r(rejected)), with r the raw logit of a one-output
sequence-classification head put on the base. Two choices keep training and scoring the same thing:

- the pairs are tokenized with rewardlens's own conversation template (`models.templates`), so a word
  scored later by `words` or `sweep` is the exact id sequence the model was trained on (one BOS);
- the reward is read where the checkpoint's own forward reads it, as rewardlens scores it: Hugging Face's
  pooling, the rightmost token that is not the pad id (the token *before* the end of the turn when the pad
  token is the end-of-turn token, as Llama 3 bases pad with `<|eot_id|>`). TRL's trainer runs that forward,
  so what a user of the checkpoint computes is what it was trained on.

Every checkpoint is a plain model directory (LoRA merged, tokenizer and chat template saved, `num_labels=1`,
pad id set) that `load_scorer` loads as a reward model. `run.json` records the data, the recipe, the
versions and the loss of every logging step.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from rewardlens import __version__
from rewardlens.errors import UserError
from rewardlens.models.gguf import forget_gguf_quantization, loadable
from rewardlens.models.loading import resolve_device
from rewardlens.models.quiet import quiet_transformers
from rewardlens.models.spec import resolve_model
from rewardlens.models.templates import DEFAULT_DATE, PLAIN_SOURCES, ConversationTemplate, make_template, parse_date
from rewardlens.runs.store import now_iso
from rewardlens.training.data import PreferenceData, PreferencePair, load_preference_data, sample_order

StepCallback = Callable[[int, int, float | None], None]  # (step, total steps, latest logged loss)
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class TrainingConfig:
    """The recipe; defaults suit tiny CPU models, the README gives the study's GPU recipe."""

    epochs: float = 1.0
    learning_rate: float = 1e-5
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    lora: tuple[int, int] | None = None  # (rank, alpha)
    lora_dropout: float = 0.05
    checkpoint_every: int | None = None  # steps; None: only the final model
    n_pairs: int | None = None
    seed: int = 0
    log_every: int = 10
    template: str | None = None  # None/chat, plain, or a Jinja file (as `--template` elsewhere)
    date: str = DEFAULT_DATE  # what a date-stamped template renders (as `--date` elsewhere), never today's
    device: str = "auto"

    def __post_init__(self) -> None:
        parse_date(self.date)  # a UserError naming --date
        checks = [
            (self.epochs > 0, f"--epochs {self.epochs}: must be positive"),
            (self.learning_rate > 0, f"--learning-rate {self.learning_rate}: must be positive"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size}: must be at least 1"),
            (self.grad_accum >= 1, f"--grad-accum {self.grad_accum}: must be at least 1"),
            (self.max_length >= 2, f"--max-length {self.max_length}: must be at least 2"),
            (self.checkpoint_every is None or self.checkpoint_every >= 1, "--checkpoint-every: must be at least 1"),
            (self.n_pairs is None or self.n_pairs >= 1, f"--n-pairs {self.n_pairs}: must be at least 1"),
            (self.log_every >= 1, f"--log-every {self.log_every}: must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)


@dataclass
class TrainResult:
    """What one training run wrote."""

    out: Path
    checkpoints: list[Path]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def final_checkpoint(self) -> Path:
        return self.checkpoints[-1]


def parse_lora(text: str | None) -> tuple[int, int] | None:
    """`--lora 32,64` -> (rank 32, alpha 64); None or empty: full fine-tuning."""
    if text is None or not text.strip():
        return None
    parts = text.split(",")
    try:
        rank, alpha = (int(part) for part in parts) if len(parts) == 2 else (0, 0)
    except ValueError:
        rank, alpha = 0, 0
    if rank < 1 or alpha < 1:
        raise UserError(f"--lora {text!r}: expected RANK,ALPHA as two positive integers, e.g. 32,64")
    return rank, alpha


# -- tokenization ------------------------------------------------------------------------------------


def conversation_ids(template: ConversationTemplate, messages: list[dict[str, str]]) -> list[int]:
    """The ids of a whole conversation, as rewardlens scores it.

    A single user turn and assistant turn is `template.conversation_ids` (what `words` and `sweep` score);
    longer conversations are rendered by the same chat template, with its fixed date (a date-stamped template
    would otherwise stamp the day of training), and tokenized with one BOS.
    """
    roles = [message["role"] for message in messages]
    if roles == ["user", "assistant"]:
        return template.conversation_ids(messages[0]["content"], messages[1]["content"])
    if template.source in PLAIN_SOURCES:
        raise UserError(
            f"multi-turn or system-prompt pairs need a chat template; --template {template.source} is single-turn"
        )
    tokenizer = template.tokenizer
    text = template.render_messages(messages)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    while bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
        ids = ids[1:]
    return ids


@dataclass(frozen=True)
class TokenizedPairs:
    chosen_ids: list[list[int]]
    rejected_ids: list[list[int]]
    indices: list[int]  # positions of the pairs used in the validated data
    too_long: int  # pairs passed over because one side exceeds max_length


def tokenize_pairs(
    pairs: list[PreferencePair], template: ConversationTemplate, n_pairs: int | None, max_length: int, seed: int
) -> TokenizedPairs:
    """The first `n_pairs` pairs of the seeded order that fit in `max_length` tokens (all that fit if None).

    Pairs are passed over, not truncated: a truncated sequence would lose its end, where the reward is read.
    """
    if n_pairs is not None and n_pairs > len(pairs):
        raise UserError(f"--n-pairs {n_pairs}: the data holds only {len(pairs)} usable pairs")
    chosen_ids: list[list[int]] = []
    rejected_ids: list[list[int]] = []
    indices: list[int] = []
    too_long = 0
    for index in sample_order(len(pairs), seed).tolist():
        if n_pairs is not None and len(indices) == n_pairs:
            break
        chosen, rejected = pairs[index].conversations()
        chosen_tokens = conversation_ids(template, chosen)
        rejected_tokens = conversation_ids(template, rejected)
        if max(len(chosen_tokens), len(rejected_tokens)) > max_length:
            too_long += 1
            continue
        chosen_ids.append(chosen_tokens)
        rejected_ids.append(rejected_tokens)
        indices.append(index)
    if n_pairs is not None and len(indices) < n_pairs:
        raise UserError(
            f"--n-pairs {n_pairs}: only {len(indices)} of the {len(pairs)} pairs fit in --max-length {max_length}"
        )
    if not indices:
        raise UserError(f"no pair fits in --max-length {max_length} tokens")
    return TokenizedPairs(chosen_ids, rejected_ids, indices, too_long)


# -- model --------------------------------------------------------------------------------------------


def training_device(device: str) -> torch.device:

    return resolve_device(device)


def load_base(spec: str, device: torch.device, lora: bool, seed: int) -> tuple[nn.Module, Any, dict[str, Any]]:
    """The base with a fresh one-output score head, its tokenizer, and how it was resolved."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed


    resolved = resolve_model(spec)
    try:
        files = loadable(resolved)  # a .gguf's converted directory; `resolved` stays what the user named
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"cannot load base '{spec}': {str(err).splitlines()[0][:200]}") from None
    kwargs: dict[str, Any] = {"gguf_file": files.gguf_file} if files.gguf_file else {}
    # LoRA keeps the frozen base in bfloat16 on CUDA; full fine-tuning keeps float32 masters under bf16 autocast.
    dtype = torch.bfloat16 if device.type == "cuda" and lora else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(files.directory), **kwargs)
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"cannot load the tokenizer of '{spec}': {str(err).splitlines()[0][:200]}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.pad_token_id is None:
        raise UserError(f"base '{spec}' has neither a pad nor an end-of-sequence token")
    set_seed(seed)  # the new score head is drawn here
    try:
        with quiet_transformers(hide_warnings=False):  # every base lacks the head it gets here; that is not news
            model = AutoModelForSequenceClassification.from_pretrained(
                str(files.directory), num_labels=1, dtype=dtype, **kwargs
            )
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise UserError(f"cannot load base '{spec}' with a score head: {str(err).splitlines()[0][:200]}") from None
    if files.gguf_file:
        forget_gguf_quantization(model)
    # The new head is trained in full (peft's modules_to_save): float32 masters, so that lr-1e-5 updates are not
    # lost to bfloat16 rounding; autocast computes it in bf16 like the rest. LoRA adapters are float32 already.
    score_module(model).float()
    model.config.pad_token_id = tokenizer.pad_token_id
    text_config = model.config.get_text_config()
    text_config.pad_token_id = tokenizer.pad_token_id
    info = {"spec": spec, "resolved_path": str(resolved.directory / (resolved.gguf_file or "")),
            "name": resolved.display_name, "dtype": str(dtype).removeprefix("torch.")}
    return model, tokenizer, info


def score_module(model: nn.Module) -> nn.Module:
    """The outermost module called `score` (the peft wrapper when there is one)."""
    named = [(name, module) for name, module in model.named_modules() if name.split(".")[-1] == "score"]
    if not named:
        raise UserError("the base has no `score` head as a sequence classifier; its architecture is not supported")
    return min(named, key=lambda item: len(item[0]))[1]


def lora_targets(model: nn.Module) -> list[str]:
    """Every linear layer of the backbone (attention and MLP projections), by its last name; not the head."""
    names = {
        name.split(".")[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.split(".")[-1] != "score"
    }
    return sorted(names)


def merged_copy(model: nn.Module) -> nn.Module:
    """The model as one plain network: LoRA weights merged into a copy, the trained head kept."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return copy.deepcopy(model).merge_and_unload()
    return model


def save_checkpoint(model: nn.Module, tokenizer: Any, directory: Path) -> Path:
    """Write a loadable reward-model directory atomically (a half-written one never looks finished)."""
    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the CLI draws its own bar; no "Writing model shards" per checkpoint
    plain: Any = merged_copy(model)
    plain.config.num_labels = 1
    plain.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(staging, directory)
    return directory


# -- trainer ------------------------------------------------------------------------------------------


def _callback(out: Path, tokenizer: Any, every: int | None, on_step: StepCallback | None,
              saved: list[dict[str, Any]], record: Callable[[], None]) -> Any:
    from transformers import TrainerCallback

    class CheckpointAndProgress(TrainerCallback):
        latest_loss: float | None = None

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
                   **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.latest_loss = float(logs["loss"])

        def on_step_end(self, args: Any, state: Any, control: Any, model: nn.Module | None = None,
                        **kwargs: Any) -> None:
            step = int(state.global_step)
            due = step == state.max_steps or (every is not None and step % every == 0)
            if due and model is not None:
                directory = save_checkpoint(model, tokenizer, out / CHECKPOINTS / checkpoint_name(step))
                saved.append({"step": step, "epoch": float(state.epoch or 0.0),
                              "path": str(directory.relative_to(out))})
                record()
            if on_step is not None:
                on_step(step, int(state.max_steps), self.latest_loss)

    return CheckpointAndProgress()


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def _versions() -> dict[str, str]:
    import datasets
    import peft
    import transformers
    import trl


    return {"rewardlens": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl.__version__, "peft": peft.__version__, "datasets": datasets.__version__,
            "python": platform.python_version()}


def write_json(path: Path, content: dict[str, Any]) -> None:
    """Atomically (staging file, then rename): a reader sees the old file or the new one."""
    staging = path.with_name(path.name + ".partial")
    staging.write_text(json.dumps(content, indent=2, default=str), encoding="utf-8")
    os.replace(staging, path)


def read_training(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The run.json of a training directory."""
    path = Path(out) / "run.json"
    if not path.is_file():
        raise UserError(f"{out}: no training run (run.json missing)")
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("kind_of_run") != "training":
        raise UserError(f"{out}: run.json is not a training run")
    return manifest


def _refuse_existing(out: Path, overwrite: bool) -> None:
    if not overwrite and ((out / "run.json").exists() or (out / CHECKPOINTS).exists()):
        raise UserError(f"{out} already holds a training run; pass --overwrite to replace it")


def _prepare_out(out: Path, overwrite: bool) -> None:
    _refuse_existing(out, overwrite)
    if overwrite:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
        (out / "run.json").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def train_reward_model(
    base: str,
    data: str | os.PathLike[str] | PreferenceData,
    out: str | os.PathLike[str],
    config: TrainingConfig = TrainingConfig(),  # noqa: B008  (frozen, so a shared default is safe)
    *,
    skip_invalid: bool = False,
    overwrite: bool = False,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train a Bradley–Terry reward model from `base` on preference `data`, checkpoints under `out`."""
    from datasets import Dataset

    out_dir = Path(out)
    _refuse_existing(out_dir, overwrite)  # before minutes of loading a large base
    preference = data if isinstance(data, PreferenceData) else load_preference_data(data, skip_invalid)
    device = training_device(config.device)
    model, tokenizer, base_info = load_base(base, device, config.lora is not None, config.seed)
    template = make_template(tokenizer, config.template, date=config.date)
    if config.template not in (None, "chat", "plain"):
        tokenizer.chat_template = template.jinja  # checkpoints then carry the template they were trained with
    tokenized = tokenize_pairs(preference.pairs, template, config.n_pairs, config.max_length, config.seed)
    _prepare_out(out_dir, overwrite)

    peft_config = None
    if config.lora is not None:
        from peft import LoraConfig, TaskType

        rank, alpha = config.lora
        peft_config = LoraConfig(task_type=TaskType.SEQ_CLS, r=rank, lora_alpha=alpha,
                                 lora_dropout=config.lora_dropout, target_modules=lora_targets(model))
    args = _reward_config(config, out_dir, device)
    dataset = Dataset.from_dict({"chosen_ids": tokenized.chosen_ids, "rejected_ids": tokenized.rejected_ids})

    checkpoints: list[dict[str, Any]] = []
    manifest: dict[str, Any] = {
        "kind_of_run": "training",
        "base": base,
        "base_model": base_info,
        "data": preference.describe(),
        "pairs_used": len(tokenized.indices),
        "pairs_too_long": tokenized.too_long,
        "pair_indices_sha256": _indices_hash(tokenized.indices),
        "hyperparameters": {**asdict(config), "lora": list(config.lora) if config.lora else None,
                            "lora_targets": peft_config.target_modules if peft_config else None,
                            "loss": "-log sigmoid(r_chosen - r_rejected) (TRL RewardTrainer)",
                            "lr_scheduler": args.lr_scheduler_type, "optimizer": args.optim,
                            "gradient_checkpointing": args.gradient_checkpointing},
        "template": template.describe() | {"spec": config.template or "chat"},
        "device": str(device),
        "dtype": base_info["dtype"],
        "mixed_precision": "bf16" if args.bf16 else None,
        "versions": _versions(),
        "started_at": now_iso(),
        "complete": False,
        "losses": [],
        "checkpoints": checkpoints,
    }
    write_json(out_dir / "run.json", manifest)

    from trl import RewardTrainer

    started = time.perf_counter()
    trainer: Any = None

    def record() -> None:
        if trainer is not None:
            manifest["losses"] = _losses(trainer.state.log_history)
        write_json(out_dir / "run.json", manifest)

    callback = _callback(out_dir, tokenizer, config.checkpoint_every, on_step, checkpoints, record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # see _reward_config
        # load_base's model is a PreTrainedModel, typed as the nn.Module the rest of this module needs.
        trainer = RewardTrainer(model=cast(Any, model), args=args, train_dataset=dataset, processing_class=tokenizer,
                                peft_config=peft_config, callbacks=[callback])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every log dict; run.json and the bar carry the losses
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # see _reward_config
        summary = trainer.train()
    manifest.update(
        losses=_losses(trainer.state.log_history),
        steps=int(trainer.state.global_step),
        train_loss=float(summary.training_loss),
        seconds=round(time.perf_counter() - started, 3),
        finished_at=now_iso(),
        complete=True,
    )
    write_json(out_dir / "run.json", manifest)
    shutil.rmtree(out_dir / ".trainer", ignore_errors=True)
    return TrainResult(out_dir, [out_dir / c["path"] for c in checkpoints], manifest)


def _reward_config(config: TrainingConfig, out: Path, device: torch.device) -> Any:
    from trl import RewardConfig

    cuda = device.type == "cuda"
    with warnings.catch_warnings():
        # transformers 5 renames gradient_checkpointing while TRL 1.x still sets it: FutureWarnings every run.
        warnings.simplefilter("ignore", FutureWarning)
        return _make_reward_config(RewardConfig, config, out, cuda)


def _make_reward_config(reward_config: Any, config: TrainingConfig, out: Path, cuda: bool) -> Any:
    return reward_config(
        output_dir=str(out / ".trainer"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        logging_steps=config.log_every,
        save_strategy="no",  # checkpoints are merged model directories written by our callback
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        max_length=None,  # pairs longer than --max-length were already passed over, and counted
        bf16=cuda,
        gradient_checkpointing=cuda,  # memory for 3B bases on one GPU; tiny CPU models need none
        use_cpu=not cuda,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def _losses(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("step", "epoch", "loss", "accuracy", "margin", "learning_rate", "grad_norm")
    return [{k: entry[k] for k in keep if k in entry} for entry in history if "loss" in entry]


def _indices_hash(indices: list[int]) -> str:
    import hashlib

    return hashlib.sha256(",".join(map(str, indices)).encode()).hexdigest()


__all__ = [
    "CHECKPOINTS",
    "TrainResult",
    "TrainingConfig",
    "checkpoint_name",
    "conversation_ids",
    "parse_lora",
    "read_training",
    "tokenize_pairs",
    "train_reward_model",
]
