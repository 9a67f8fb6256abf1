"""`rewardlens train`, `ablate` and `analyze checkpoints`: reward-model training ablations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from rewardlens.cli.apps import analyze_app, app
from rewardlens.cli.options import DeviceOption, TemplateOption
from rewardlens.cli.progress import transient_progress
from rewardlens.config import DEFAULT_LEXICON, WORD_PROMPTS

_console = Console(stderr=True)

EpochsOption = Annotated[float, typer.Option(help="Passes over the pairs.")]
LearningRateOption = Annotated[float, typer.Option("--learning-rate", "--lr", help="Peak learning rate (AdamW).")]
BatchOption = Annotated[int, typer.Option(help="Pairs per device batch.")]
GradAccumOption = Annotated[int, typer.Option(help="Batches accumulated per optimizer step.")]
MaxLengthOption = Annotated[int, typer.Option(help="Pairs with a side longer than this (tokens) are passed over.")]
LoraOption = Annotated[str | None, typer.Option(help="LoRA RANK,ALPHA (e.g. 32,64); full fine-tuning if absent.")]
CheckpointEveryOption = Annotated[
    int | None, typer.Option(help="Save a checkpoint every STEPS optimizer steps (the final one always).")
]
SeedOption = Annotated[int, typer.Option(help="Seed of the pair sample, the head's initialisation and the order.")]
LogEveryOption = Annotated[int, typer.Option(help="Record the loss every STEPS optimizer steps.")]
SkipInvalidOption = Annotated[
    bool, typer.Option("--skip-invalid", help="Skip (and count) invalid JSONL lines instead of stopping.")
]


def _config(**values: object) -> object:
    from rewardlens.training import TrainingConfig, parse_lora

    lora = parse_lora(values.pop("lora"))  # type: ignore[arg-type]
    return TrainingConfig(lora=lora, **values)  # type: ignore[arg-type]


class _StepBar:
    """A rich bar over optimizer steps with the latest logged loss."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: object | None = None

    def __call__(self, step: int, total: int, loss: float | None) -> None:
        if self.task is None:
            self.task = self.progress.add_task("training", total=total)
        text = "training" if loss is None else f"training, loss {loss:.4f}"
        self.progress.update(self.task, completed=step, total=total, description=text)  # type: ignore[arg-type]
        if step >= total:
            self.progress.remove_task(self.task)  # type: ignore[arg-type]
            self.task = None


def _progress() -> Progress:
    return transient_progress(
        _console, TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn()
    )


@app.command()
def train(
    base: Annotated[str, typer.Option("--base", help="Base model: directory, hub id (local cache) or .gguf.")],
    data: Annotated[Path, typer.Option("--data", help="Preference pairs: JSONL or a saved `datasets` directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for run.json and checkpoints/.")],
    n_pairs: Annotated[int | None, typer.Option(help="Train on N pairs drawn with --seed (all if absent).")] = None,
    epochs: EpochsOption = 1.0,
    learning_rate: LearningRateOption = 1e-5,
    batch_size: BatchOption = 4,
    grad_accum: GradAccumOption = 1,
    max_length: MaxLengthOption = 1024,
    lora: LoraOption = None,
    checkpoint_every: CheckpointEveryOption = None,
    seed: SeedOption = 0,
    log_every: LogEveryOption = 10,
    template: TemplateOption = None,
    device: DeviceOption = "auto",
    skip_invalid: SkipInvalidOption = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a training run already in --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print run.json instead of a table.")] = False,
) -> None:
    """Train a Bradley–Terry reward model (TRL's RewardTrainer) from a base on preference pairs."""
    from rewardlens.training import train_reward_model

    config = _config(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, grad_accum=grad_accum,
                     max_length=max_length, lora=lora, checkpoint_every=checkpoint_every, n_pairs=n_pairs, seed=seed,
                     log_every=log_every, template=template, device=device)
    with _progress() as progress:
        result = train_reward_model(base, data, out, config, skip_invalid=skip_invalid,  # type: ignore[arg-type]
                                    overwrite=overwrite, on_step=_StepBar(progress))
    if as_json:
        typer.echo(json.dumps(result.manifest, indent=2, default=str))
        return
    manifest = result.manifest
    table = Table(title=f"Reward model trained from {base}")
    for column in ("pairs", "steps", "first loss", "last loss", "seconds", "checkpoints"):
        table.add_column(column)
    losses = [entry["loss"] for entry in manifest["losses"]]
    table.add_row(str(manifest["pairs_used"]), str(manifest["steps"]), f"{losses[0]:.4f}" if losses else "-",
                  f"{losses[-1]:.4f}" if losses else "-", f"{manifest['seconds']:.1f}", str(len(result.checkpoints)))
    Console().print(table)
    typer.echo(f"final checkpoint: {result.final_checkpoint}")


@app.command()
def ablate(
    base: Annotated[list[str], typer.Option("--base", help="Base model (repeat for several).")],
    data: Annotated[list[str], typer.Option("--data", help="NAME=FILE preference source (repeat for several).")],
    sizes: Annotated[str, typer.Option(help="Comma-separated numbers of pairs, e.g. 1000,5000,20000.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Ablation directory (rerun it to resume).")],
    epochs: EpochsOption = 1.0,
    learning_rate: LearningRateOption = 1e-5,
    batch_size: BatchOption = 4,
    grad_accum: GradAccumOption = 1,
    max_length: MaxLengthOption = 1024,
    lora: LoraOption = None,
    checkpoint_every: CheckpointEveryOption = None,
    seed: SeedOption = 0,
    log_every: LogEveryOption = 10,
    template: TemplateOption = None,
    device: DeviceOption = "auto",
    lexicon: Annotated[str, typer.Option(help="Lexicon scored at every checkpoint.")] = DEFAULT_LEXICON,
    prompts: Annotated[str, typer.Option(help="Prompt set or file scored at every checkpoint.")] = WORD_PROMPTS,
    skip_invalid: SkipInvalidOption = False,
) -> None:
    """The grid base x data x size: train each cell and score the lexicon at every checkpoint (resumable)."""
    from rewardlens.training.ablate import parse_data_options, run_ablation
    from rewardlens.training.data import parse_sizes

    config = _config(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, grad_accum=grad_accum,
                     max_length=max_length, lora=lora, checkpoint_every=checkpoint_every, seed=seed,
                     log_every=log_every, template=template, device=device)
    with _progress() as progress:
        results = run_ablation(base, parse_data_options(data), parse_sizes(sizes), out, config,  # type: ignore[arg-type]
                               lexicon=lexicon, prompts=prompts, skip_invalid=skip_invalid,
                               on_event=progress.console.print, on_step=_StepBar(progress))
    table = Table(title=f"Ablation in {out}")
    for column in ("cell", "training", "checkpoints", "word runs scored", "already scored"):
        table.add_column(column)
    for result in results:
        table.add_row(result.cell.name, "trained" if result.trained else "skipped", str(result.checkpoints),
                      str(result.words_scored), str(result.words_skipped))
    Console().print(table)


@analyze_app.command("checkpoints")
def analyze_checkpoints(
    ablation: Annotated[Path, typer.Argument(help="An ablation directory (from `rewardlens ablate`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the CSVs and figures.")],
    lexicon: Annotated[
        str | None, typer.Option(help="Lexicon whose categories are ranked (default: the one the ablation scored).")
    ] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples of the prompts.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
) -> None:
    """Category median ranks per base x data x size x step, base differences with bootstrap CIs, figures."""
    from rewardlens.training.checkpoints import write_checkpoint_analysis

    analysis, files = write_checkpoint_analysis(ablation, out, lexicon, resamples, seed)
    final = analysis.medians[analysis.medians["final"].astype(bool)]
    table = Table(title="Median rank at the final checkpoint (1 = best)")
    for column in ("base", "data", "size", "step", "framing", "category", "median rank"):
        table.add_column(column)
    for row in final.itertuples(index=False):
        table.add_row(str(row.base), str(row.data), str(row.size), str(row.step), str(row.framing),
                      str(row.category), f"{row.median_rank:.1f}")
    Console().print(table)
    for note in analysis.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {', '.join(sorted(files))} to {out}")
