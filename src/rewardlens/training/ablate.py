"""The ablation grid: base x data source x data size, each cell one training run plus a word run per checkpoint.

Layout of OUT:

    OUT/ablation.json                      the grid and the recipe shared by every cell
    OUT/<base>__<data>__n<size>/train/     a `train` directory (its own run.json, checkpoints/step-NNNNNN/)
    OUT/<base>__<data>__n<size>/words/step-NNNNNN/   a word run (Big Two nouns under value54 by default)

Resumable: a cell whose training run.json says complete is not trained again (an incomplete one, killed
mid-training, is trained again from the start), and a complete word run is not scored again (an
incomplete one resumes at its next unfinished prompt).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rewardlens.config import DEFAULT_LEXICON, WORD_PROMPTS
from rewardlens.errors import UserError
from rewardlens.jobs.words import run_words
from rewardlens.lexicons import load_lexicon
from rewardlens.prompts import Prompt, load_prompts
from rewardlens.runs import has_run, read_manifest
from rewardlens.training.data import PreferenceData, load_preference_data
from rewardlens.training.train import (
    CHECKPOINTS,
    StepCallback,
    TrainingConfig,
    read_training,
    train_reward_model,
    write_json,
)

ABLATION_FILE = "ablation.json"
DEFAULT_PROMPTS = WORD_PROMPTS
Event = Callable[[str], None]  # one line about what the grid is doing
# The recipe every cell shares: an ablation directory refuses a rerun with another recipe.
RECIPE_KEYS = ("config", "lexicon", "prompts")


@dataclass(frozen=True)
class Cell:
    base: str
    data: str
    size: int

    @property
    def name(self) -> str:
        return f"{base_slug(self.base)}__{self.data}__n{self.size}"


@dataclass
class CellResult:
    cell: Cell
    trained: bool  # False: skipped, already complete
    checkpoints: int
    words_scored: int
    words_skipped: int


def base_slug(base: str) -> str:
    """A directory-safe short name of a base (`google/gemma-2-2b-it` -> `gemma-2-2b-it`)."""
    name = Path(base.rstrip("/")).name or base
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def parse_data_options(options: Sequence[str]) -> dict[str, str]:
    """`--data NAME=FILE` options as {name: path}; names must be distinct and directory-safe."""
    sources: dict[str, str] = {}
    for option in options:
        name, sep, path = option.partition("=")
        name = name.strip()
        if not sep or not name or not path.strip():
            raise UserError(f"--data {option!r}: expected NAME=FILE, e.g. skywork=pairs.jsonl")
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or "__" in name:
            raise UserError(f"--data {option!r}: the name may hold letters, digits, '.', '_' and '-' only")
        if name in sources:
            raise UserError(f"--data {name}=...: the name is given twice")
        sources[name] = path.strip()
    if not sources:
        raise UserError("give at least one --data NAME=FILE")
    return sources


def plan_cells(bases: Sequence[str], data: Sequence[str], sizes: Sequence[int]) -> list[Cell]:
    if not bases:
        raise UserError("give at least one --base")
    slugs = [base_slug(base) for base in bases]
    duplicated = [slug for slug in slugs if slugs.count(slug) > 1]
    if duplicated:
        raise UserError(f"two bases share the name {duplicated[0]!r}; the grid needs distinct base names")
    return [Cell(base, name, size) for base in bases for name in data for size in sizes]


def _recipe(config: TrainingConfig, lexicon: str, prompts: Sequence[Prompt]) -> dict[str, Any]:
    recorded = asdict(replace(config, n_pairs=None))  # the size is the grid's, not the recipe's
    recorded["lora"] = list(config.lora) if config.lora else None
    return {"config": recorded, "lexicon": lexicon, "prompts": [prompt.to_dict() for prompt in prompts]}


def _write_plan(out: Path, plan: dict[str, Any]) -> None:
    path = out / ABLATION_FILE
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        for key in RECIPE_KEYS:
            if json.dumps(old.get(key), sort_keys=True) != json.dumps(plan[key], sort_keys=True):
                raise UserError(f"{out} holds an ablation with another {key}; use another --out")
        # New bases, sources or sizes extend the grid; the cells already there are kept.
        plan = {
            **plan,
            "bases": list(dict.fromkeys([*old.get("bases", []), *plan["bases"]])),
            "data": {**old.get("data", {}), **plan["data"]},
            "sizes": sorted(set(old.get("sizes", [])) | set(plan["sizes"])),
        }
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, plan)


def read_ablation(out: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(out) / ABLATION_FILE
    if not path.is_file():
        raise UserError(f"{out}: not an ablation directory ({ABLATION_FILE} missing)")
    plan: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return plan


def training_complete(directory: Path) -> bool:
    try:
        return bool(read_training(directory).get("complete"))
    except (UserError, json.JSONDecodeError):
        return False


def words_complete(directory: Path) -> bool:

    if not has_run(directory):
        return False
    try:
        return bool(read_manifest(directory).get("complete"))
    except (UserError, json.JSONDecodeError):
        return False


def score_checkpoint_words(
    checkpoint: Path, lexicon: str, prompts: Sequence[Prompt], out: Path, template: str | None, device: str
) -> None:
    """A word run of one checkpoint (resumed where it stopped), through the words API."""
    options: dict[str, Any] = {"device": device}
    if template not in (None, "chat"):
        options["template"] = template

    run_words(str(checkpoint), lexicon, prompts, out, **options)


def run_ablation(
    bases: Sequence[str],
    data: dict[str, str],
    sizes: Sequence[int],
    out: str | os.PathLike[str],
    config: TrainingConfig = TrainingConfig(),  # noqa: B008  (frozen)
    *,
    lexicon: str = DEFAULT_LEXICON,
    prompts: str = DEFAULT_PROMPTS,
    skip_invalid: bool = False,
    on_event: Event | None = None,
    on_step: StepCallback | None = None,
) -> list[CellResult]:
    """Train and score every cell of the grid that is not done yet; returns what each cell did."""

    out_dir = Path(out)
    if Path(lexicon).is_file():
        lexicon = str(Path(lexicon).resolve())  # `analyze checkpoints` finds it from any directory
    cells = plan_cells(bases, list(data), sizes)
    prompt_set = load_prompts(prompts)
    load_lexicon(lexicon)  # a bad lexicon fails now, not after the first training run
    loaded: dict[str, PreferenceData] = {name: load_preference_data(path, skip_invalid) for name, path in data.items()}
    for cell in cells:
        available = len(loaded[cell.data].pairs)
        if cell.size > available:
            raise UserError(f"--sizes {cell.size}: data {cell.data!r} holds only {available} usable pairs")
    plan = {
        "bases": list(bases),
        "data": {name: {"path": path, "sha256": loaded[name].sha256} for name, path in data.items()},
        "sizes": list(sizes),
        **_recipe(config, lexicon, prompt_set),
    }
    _write_plan(out_dir, plan)
    say = on_event or (lambda message: None)
    results = []
    for cell in cells:
        results.append(_run_cell(cell, out_dir, loaded[cell.data], config, lexicon, prompt_set, say, on_step))
    return results


def _run_cell(
    cell: Cell,
    out: Path,
    data: PreferenceData,
    config: TrainingConfig,
    lexicon: str,
    prompts: Sequence[Prompt],
    say: Event,
    on_step: StepCallback | None,
) -> CellResult:
    train_dir = out / cell.name / "train"
    trained = not training_complete(train_dir)
    if trained:
        say(f"{cell.name}: training on {cell.size} pairs")
        train_reward_model(cell.base, data, train_dir, replace(config, n_pairs=cell.size), overwrite=True,
                           on_step=on_step)
        _release_memory()
    else:
        say(f"{cell.name}: already trained, skipped")
    manifest = read_training(train_dir)
    scored = skipped = 0
    for checkpoint in manifest["checkpoints"]:
        step_name = Path(checkpoint["path"]).name
        words_dir = out / cell.name / "words" / step_name
        if words_complete(words_dir):
            skipped += 1
            continue
        say(f"{cell.name}: scoring the words at {step_name}")
        score_checkpoint_words(train_dir / checkpoint["path"], lexicon, prompts, words_dir, config.template,
                               config.device)
        scored += 1
    return CellResult(cell, trained, len(manifest["checkpoints"]), scored, skipped)


def _release_memory() -> None:
    """Free the trained model's GPU memory before the word runs load each checkpoint."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def ablation_cells(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every trained cell of an ablation directory with its checkpoints and their word runs."""
    plan = read_ablation(out)
    out_dir = Path(out)
    rows = []
    for cell in plan_cells(plan["bases"], list(plan["data"]), plan["sizes"]):
        train_dir = out_dir / cell.name / "train"
        if not training_complete(train_dir):
            continue
        manifest = read_training(train_dir)
        for checkpoint in manifest["checkpoints"]:
            step_name = Path(checkpoint["path"]).name
            rows.append({
                "cell": cell.name, "base": cell.base, "data": cell.data, "size": cell.size,
                "step": int(checkpoint["step"]), "epoch": float(checkpoint.get("epoch", 0.0)),
                "final": int(checkpoint["step"]) == int(manifest.get("steps") or -1),
                "words": out_dir / cell.name / "words" / step_name,
            })
    return rows



def ablation_checkpoints(directory: str | Path) -> list[tuple[str, Path]]:
    """(label, checkpoint directory) of every checkpoint of every trained cell of an `ablate` run, labelled
    `<cell>/step-NNNNNN`, in the ablation's order of cells and steps."""
    root = Path(directory)
    checkpoints = [
        (f"{row['cell']}/{row['words'].name}", root / row["cell"] / "train" / CHECKPOINTS / row["words"].name)
        for row in ablation_cells(root)
    ]
    if not checkpoints:
        raise UserError(f"{directory}: the ablation has no trained cell with checkpoints yet")
    return checkpoints


__all__ = [
    "ABLATION_FILE",
    "Cell",
    "CellResult",
    "ablation_cells",
    "ablation_checkpoints",
    "base_slug",
    "parse_data_options",
    "plan_cells",
    "read_ablation",
    "run_ablation",
]
