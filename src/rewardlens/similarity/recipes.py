"""The training-recipes study: small networks trained in different ways, compared layer by layer.

`rewardlens study rv2-training-recipes --out DIR` trains multilayer perceptrons on scikit-learn's bundled
digits (8 x 8 images, 10 classes, no download) with one fixed stratified train/test split, several seeds
per recipe:

- `standard`: every layer trained, the learning rate cosine-annealed to zero over the run.
- `freeze`: FreezeOut (Brock et al. 2017): layer i's learning rate is annealed to zero by the fraction
  t_i = t_0 + (1 - t_0) i / (L - 1) of the run and the layer is frozen from then on, so the first layer
  stops first and the output layer trains to the end (t_0 = `freeze_first`; `standard` is t_i = 1).
- `random`: only the last k linear layers are trained; the others keep their initialisation bitwise.
- `untrained`: the initialisation only.

A network's seed fixes its initialisation and the order of its batches; the recipes share it, so
`standard` seed 0 and `untrained` seed 0 start from the same weights. The summaries therefore compare
networks of different seeds only (the same-seed pairs are in the table, but a shared start would
inflate them).

The layers of a network are its input (layer 0: the standardized pixels), each hidden layer after its
ReLU and the logits. The held-out stimuli are the first `max(stimuli)` test images; one more "model",
`targets`, has a single layer, the one-hot labels of those images. Every pair of models, at every
number of stimuli in `stimuli` (the first n rows), goes through `layer_similarity`, the code path of
`rewardlens similarity layers`, so the values are the registry's measures and nothing else.

Resumable: a network whose `train.json` exists is not trained again (its activations are read), and a
finished block of the similarity table (one number of stimuli, one first model, under one set of models,
measures and inference settings) is not recomputed. Adding seeds or recipes trains only the new networks.
A rerun with a different training configuration in the same folder is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from rewardlens.errors import UserError
from rewardlens.progress import PhaseProgress, no_progress
from rewardlens.runs.store import atomic_write
from rewardlens.similarity.layers import layer_similarity, pair_count
from rewardlens.similarity.registry import get_measure

KIND = "training-recipes"
RECIPES = ("standard", "freeze", "random", "untrained")
DATASETS = ("digits",)
TARGETS = "targets"  # the pseudo-model whose one layer is the one-hot labels
STATE_FILE = "_recipes.json"
SIMILARITY_COLUMNS = [
    "recipe_a",
    "seed_a",
    "layer_a",
    "recipe_b",
    "seed_b",
    "layer_b",
    "measure",
    "value",
    "stimuli",
]
# Keys that change the trained networks: a rerun must match them (the others only change the tables).
TRAINING_KEYS = (
    "dataset",
    "hidden",
    "epochs",
    "lr",
    "momentum",
    "batch_size",
    "test_fraction",
    "random_trained_last_k",
    "freeze_first",
)


@dataclass(frozen=True)
class RecipesConfig:
    """The study; every field is a key of its YAML file (`name`, `kind` and `description` besides)."""

    name: str = "rv2-training-recipes"
    description: str = ""
    dataset: str = "digits"
    hidden: tuple[int, ...] = (64, 64, 64, 64)
    seeds: int = 4
    epochs: int = 20
    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 64
    test_fraction: float = 0.4
    recipes: tuple[str, ...] = RECIPES
    random_trained_last_k: int = 2
    freeze_first: float = 0.5
    measures: tuple[str, ...] = ("rv2", "linear-cka")
    stimuli: tuple[int, ...] = (20, 50, 150, 500)
    permutations: int = 0  # p-values and intervals at the largest number of stimuli only
    bootstrap: int = 0
    level: float = 0.95
    threads: int = 1  # torch threads (see `torch_threads`)

    @property
    def linear_layers(self) -> int:
        return len(self.hidden) + 1

    @property
    def penultimate(self) -> int:
        """The last hidden layer (layer 0 is the input, len(hidden) + 1 the logits)."""
        return len(self.hidden)

    @property
    def networks(self) -> list[tuple[str, int]]:
        return [(recipe, seed) for recipe in self.recipes for seed in range(self.seeds)]

    def freeze_at(self, recipe: str) -> list[float]:
        """The fraction of the run after which each linear layer is frozen (0: never trained)."""
        count = self.linear_layers
        if recipe == "standard":
            return [1.0] * count
        if recipe == "freeze":
            return [self.freeze_first + (1 - self.freeze_first) * i / (count - 1) for i in range(count)]
        if recipe == "random":
            return [0.0 if i < count - self.random_trained_last_k else 1.0 for i in range(count)]
        return [0.0] * count  # untrained

    def training(self) -> dict[str, Any]:
        values = asdict(self)
        return {key: list(values[key]) if isinstance(values[key], tuple) else values[key] for key in TRAINING_KEYS}


_KEYS = ("kind", *(f.name for f in fields(RecipesConfig)))


def _int(value: Any, source: str, key: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{source}: {key} must be an integer >= {low}, got {value!r}")
    return value


def _number(value: Any, source: str, key: str, low: float, high: float, *, closed_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{source}: {key} must be a number, got {value!r}")
    inside = (low <= value if closed_low else low < value) and value <= high
    if not inside:
        bracket = "[" if closed_low else "("
        raise UserError(f"{source}: {key} must be in {bracket}{low}, {high}], got {value!r}")
    return float(value)


def _int_list(value: Any, source: str, key: str) -> tuple[int, ...]:
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, list) or not items:
        raise UserError(f"{source}: {key} must be a non-empty list of positive integers, got {value!r}")
    return tuple(_int(item, source, f"{key}[{i}]", 1) for i, item in enumerate(items))


def _names(value: Any, source: str, key: str, choices: Sequence[str] | None) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) for item in items):
        raise UserError(f"{source}: {key} must be a non-empty list of names, got {value!r}")
    for item in items:
        if choices is not None and item not in choices:
            raise UserError(f"{source}: {key} has {item!r}; use some of {', '.join(choices)}")
    if len(set(items)) != len(items):
        raise UserError(f"{source}: {key} lists a name twice")
    return tuple(items)


def parse_recipes(document: Any, source: str = "study") -> RecipesConfig:
    """Validate a training-recipes study (the parsed YAML); every problem is one line naming its key."""
    if not isinstance(document, Mapping):
        raise UserError(f"{source}: the study must be a mapping of keys")
    for key in document:
        if key not in _KEYS:
            raise UserError(f"{source}: unknown key {key!r} (known: {', '.join(_KEYS)})")
    if document.get("kind") != KIND:
        raise UserError(f"{source}: kind must be {KIND!r}, got {document.get('kind')!r}")
    default = RecipesConfig()
    given = {key: value for key, value in document.items() if key != "kind" and value is not None}
    values: dict[str, Any] = {}
    for key, value in given.items():
        if key in ("name", "description"):
            values[key] = str(value).strip()
        elif key == "dataset":
            values[key] = _names(value, source, key, DATASETS)[0]
        elif key in ("hidden", "stimuli"):
            values[key] = _int_list(value, source, key)
        elif key in ("seeds", "epochs", "batch_size", "threads"):
            values[key] = _int(value, source, key, 0 if key == "epochs" else 1)
        elif key in ("random_trained_last_k", "permutations", "bootstrap"):
            values[key] = _int(value, source, key, 1 if key == "random_trained_last_k" else 0)
        elif key == "lr":
            values[key] = _number(value, source, key, 0.0, 10.0)
        elif key == "momentum":
            values[key] = _number(value, source, key, 0.0, 0.999, closed_low=True)
        elif key in ("test_fraction", "freeze_first"):
            values[key] = _number(value, source, key, 0.0, 0.9 if key == "test_fraction" else 1.0)
        elif key == "level":
            values[key] = _number(value, source, key, 0.0, 0.999)
        elif key == "recipes":
            values[key] = _names(value, source, key, RECIPES)
        elif key == "measures":
            values[key] = _names(value, source, key, None)
    values.setdefault("name", Path(source).stem)  # as for a study of models: the file's name
    config = RecipesConfig(**{**asdict(default), **values})
    for name in config.measures:
        try:
            measure = get_measure(name)
        except UserError as err:
            raise UserError(f"{source}: measures: {err}") from None
        if min(config.stimuli) < measure.min_rows:
            raise UserError(f"{source}: stimuli: {name} needs at least {measure.min_rows} stimuli")
    if "random" in config.recipes and config.random_trained_last_k >= config.linear_layers:
        raise UserError(
            f"{source}: random_trained_last_k must be below the {config.linear_layers} linear layers "
            f"(len(hidden) + 1), got {config.random_trained_last_k}"
        )
    if config.seeds < 2:
        raise UserError(f"{source}: seeds must be at least 2 (the summaries compare different seeds)")
    if len(set(config.stimuli)) != len(config.stimuli):
        raise UserError(f"{source}: stimuli lists a number twice")
    return config


# -- data and networks --------------------------------------------------------------------------


@dataclass(frozen=True)
class Digits:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_dataset(config: RecipesConfig) -> Digits:
    """The fixed split (stratified, seed 0) with pixels standardized by the training set's statistics."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data, bunch.target, test_size=config.test_fraction, stratify=bunch.target, random_state=0
    )
    if max(config.stimuli) > len(x_test):
        raise UserError(f"stimuli: at most {len(x_test)} held-out images at test_fraction {config.test_fraction}")
    mean, sd = x_train.mean(axis=0), x_train.std(axis=0)
    sd[sd == 0] = 1.0  # border pixels that are always 0 stay 0
    as_tensor = lambda a: torch.tensor((a - mean) / sd, dtype=torch.float32)  # noqa: E731
    return Digits(as_tensor(x_train), torch.tensor(y_train), as_tensor(x_test), torch.tensor(y_test, dtype=torch.long))


def build_network(config: RecipesConfig, seed: int) -> nn.Sequential:
    """64 -> hidden ... -> 10, ReLU between, He-initialised; the seed alone fixes the initialisation."""
    torch.manual_seed(seed)
    widths = [64, *config.hidden, 10]
    modules: list[nn.Module] = []
    for index in range(len(widths) - 1):
        linear = nn.Linear(widths[index], widths[index + 1])
        # He initialisation keeps the variance through the ReLUs, so the layers a `random` network never
        # trains still carry the input forward (PyTorch's default shrinks it layer after layer).
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        nn.init.zeros_(linear.bias)
        modules.append(linear)
        if index < len(widths) - 2:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


def linear_modules(network: nn.Sequential) -> list[nn.Linear]:
    return [module for module in network if isinstance(module, nn.Linear)]


def layer_activations(network: nn.Sequential, x: torch.Tensor) -> list[np.ndarray]:
    """Input, each hidden layer after its ReLU, and the logits."""
    outputs = [x.numpy().copy()]
    hidden = x
    with torch.no_grad():
        for module in network:
            hidden = module(hidden)
            if not isinstance(module, nn.Linear) or module is network[-1]:
                outputs.append(hidden.numpy().copy())
    return outputs


@dataclass(frozen=True)
class Trained:
    network: nn.Sequential
    initial: dict[str, torch.Tensor]
    record: dict[str, Any]


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """`count` intra-op threads inside, the caller's setting after: the matrices are tiny, and on a busy
    machine a second thread mostly waits (a step took ten times longer with two than with one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_network(config: RecipesConfig, recipe: str, seed: int, data: Digits) -> Trained:
    """One network of `recipe`: SGD with momentum, per-layer cosine-annealed rates, FreezeOut-style freezing."""
    with torch_threads(config.threads):
        return _train(config, recipe, seed, data)


def _train(config: RecipesConfig, recipe: str, seed: int, data: Digits) -> Trained:
    network = build_network(config, seed)
    initial = {key: value.detach().clone() for key, value in network.state_dict().items()}
    layers = linear_modules(network)
    freeze_at = config.freeze_at(recipe)
    epochs = 0 if recipe == "untrained" else config.epochs
    groups = [{"params": list(layer.parameters()), "lr": config.lr} for layer in layers]
    optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    count = len(data.x_train)
    per_epoch = math.ceil(count / config.batch_size)
    total = max(epochs * per_epoch, 1)
    frozen_step: list[int | None] = [None] * len(layers)
    order = torch.Generator().manual_seed(10_000 + seed)  # batch order: by seed, apart from the init's stream
    loss_function = nn.CrossEntropyLoss()
    started = time.perf_counter()
    step = 0
    for index, layer in enumerate(layers):
        if freeze_at[index] == 0.0:  # never trained: no gradients, so SGD never touches it
            frozen_step[index] = 0
            layer.requires_grad_(False)
    for _ in range(epochs):
        for batch in torch.randperm(count, generator=order).split(config.batch_size):
            progress = step / total
            for index, (layer, group) in enumerate(zip(layers, optimizer.param_groups, strict=True)):
                if frozen_step[index] is not None:
                    continue
                if progress >= freeze_at[index]:
                    # Frozen from here: without gradients, momentum can no longer move it either.
                    frozen_step[index] = step
                    layer.requires_grad_(False)
                    group["lr"] = 0.0
                else:
                    group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * progress / freeze_at[index]))
            optimizer.zero_grad(set_to_none=True)
            loss = loss_function(network(data.x_train[batch]), data.y_train[batch])
            loss.backward()
            optimizer.step()
            step += 1
    network.eval()
    with torch.no_grad():
        test_accuracy = float((network(data.x_test).argmax(1) == data.y_test).float().mean())
        train_accuracy = float((network(data.x_train).argmax(1) == data.y_train).float().mean())
    record = {
        "recipe": recipe,
        "seed": seed,
        "test_accuracy": test_accuracy,
        "train_accuracy": train_accuracy,
        "steps": step,
        "freeze_at": freeze_at,
        "frozen_step": [total if frozen is None else frozen for frozen in frozen_step],
        "seconds": round(time.perf_counter() - started, 3),
    }
    return Trained(network, initial, record)


# -- the study ------------------------------------------------------------------------------------


def network_label(recipe: str, seed: int) -> str:
    return f"{recipe}-s{seed}"


def _atomic(path: Path, write: Any) -> None:
    """`atomic_write` (the run store's: a killed run leaves no half file) into a folder made if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)


def _write_json(path: Path, content: Any) -> None:
    _atomic(path, lambda tmp: tmp.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8"))


def _check_state(config: RecipesConfig, out: Path) -> None:
    state = out / STATE_FILE
    if state.is_file():
        stored = json.loads(state.read_text("utf-8")).get("training", {})
        current = config.training()
        for key in TRAINING_KEYS:
            if stored.get(key) != current[key]:
                raise UserError(
                    f"{out}: its networks were trained with {key} = {stored.get(key)!r}, not {current[key]!r}; "
                    "use a new --out folder"
                )
    _write_json(state, {"kind": KIND, "training": config.training(), "config": asdict(config)})


@dataclass(frozen=True)
class RecipesResult:
    out: Path
    accuracy: pd.DataFrame  # recipe, seed, test_accuracy, train_accuracy
    similarity: pd.DataFrame  # SIMILARITY_COLUMNS (+ p_value, ci_low, ci_high when asked)
    penultimate: pd.DataFrame
    anchors: pd.DataFrame
    stimuli: pd.DataFrame
    trained: int  # networks trained by this run (the others were read back)
    blocks_computed: int  # similarity blocks computed by this run

    @property
    def paths(self) -> list[Path]:
        names = ["accuracy.csv", "layer_similarity.csv", "penultimate.csv", "anchors.csv", "stimuli.csv"]
        return [self.out / name for name in names]


def network_dir(out: Path, recipe: str, seed: int) -> Path:
    return out / "networks" / network_label(recipe, seed)


def _save_arrays(path: Path, arrays: Sequence[np.ndarray]) -> None:
    with path.open("wb") as handle:  # a handle: np.savez would add ".npz" to the temporary name
        np.savez(handle, *arrays)  # stored as arr_0 (the input), arr_1, ... in layer order


def read_activations(folder: Path) -> list[np.ndarray]:
    with np.load(folder / "activations.npz") as stored:
        return [stored[f"arr_{index}"] for index in range(len(stored.files))]


def _network(config: RecipesConfig, recipe: str, seed: int, data: Digits, out: Path) -> tuple[dict[str, Any], bool]:
    """Train one network unless its record exists; (its train.json record, whether it was trained now)."""
    folder = network_dir(out, recipe, seed)
    record_path = folder / "train.json"
    if record_path.is_file():
        return json.loads(record_path.read_text("utf-8")), False
    trained = train_network(config, recipe, seed, data)
    # Every held-out image, so that a rerun asking for more stimuli reads them instead of retraining.
    arrays = layer_activations(trained.network, data.x_test)
    _atomic(folder / "init.pt", lambda tmp: torch.save(trained.initial, tmp))
    _atomic(folder / "final.pt", lambda tmp: torch.save(trained.network.state_dict(), tmp))
    _atomic(folder / "activations.npz", lambda tmp: _save_arrays(tmp, arrays))
    _write_json(record_path, trained.record)  # last: its presence means the network is complete
    return trained.record, True


def run_recipes(
    config: RecipesConfig, out: str | os.PathLike[str], phase: PhaseProgress = no_progress
) -> RecipesResult:
    """Train (or read back) every network, compare every layer pair, and write the tables into `out`."""
    data = load_dataset(config)  # refuses too many stimuli before anything is written
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    _check_state(config, root)
    with torch_threads(config.threads):
        networks = config.networks
        done = sum((network_dir(root, r, s) / "train.json").is_file() for r, s in networks)
        advance = phase("train networks", len(networks), done)
        records, trained = [], 0
        for recipe, seed in networks:
            record, fresh = _network(config, recipe, seed, data, root)
            records.append(record)
            if fresh:
                trained += 1
                advance(1)
        accuracy = pd.DataFrame.from_records(records)[["recipe", "seed", "test_accuracy", "train_accuracy"]]
        _atomic(root / "accuracy.csv", lambda tmp: accuracy.to_csv(tmp, index=False))
        similarity, computed = _similarity(config, root, data, phase)
    _atomic(root / "layer_similarity.csv", lambda tmp: similarity.to_csv(tmp, index=False))
    penultimate = penultimate_table(similarity, config)
    anchors = anchor_table(similarity, config)
    stimuli = stimuli_table(similarity, config)
    for name, frame in (("penultimate.csv", penultimate), ("anchors.csv", anchors), ("stimuli.csv", stimuli)):
        _atomic(root / name, lambda tmp, frame=frame: frame.to_csv(tmp, index=False))
    return RecipesResult(root, accuracy, similarity, penultimate, anchors, stimuli, trained, computed)


def study_activations(config: RecipesConfig, out: Path, data: Digits) -> dict[str, list[np.ndarray]]:
    """Every network's saved layers plus the `targets` pseudo-model, on the largest set of stimuli."""
    count = max(config.stimuli)
    activations = {
        network_label(r, s): [array[:count] for array in read_activations(network_dir(out, r, s))]
        for r, s in config.networks
    }
    labels = data.y_test[:count].numpy()
    activations[TARGETS] = [np.eye(10)[labels]]
    return activations


def _similarity(config: RecipesConfig, out: Path, data: Digits, phase: PhaseProgress) -> tuple[pd.DataFrame, int]:
    """One block per (number of stimuli, first model): that model against itself and every later one."""
    activations = study_activations(config, out, data)
    labels = list(activations)
    blocks = [(n, index) for n in sorted(config.stimuli) for index in range(len(labels))]
    # A block holds its model against every later one, so it is only reusable for the same models, measures
    # and inference: those name its folder (another recipe list or seed count computes new blocks).
    largest = max(config.stimuli)
    identity = json.dumps([labels, list(config.measures), config.permutations, config.bootstrap, config.level, largest])
    folder = out / "similarity" / hashlib.sha256(identity.encode()).hexdigest()[:12]
    path = lambda n, label: folder / f"n{n}" / f"{label}.csv"  # noqa: E731
    done = sum(path(n, labels[index]).is_file() for n, index in blocks)
    advance = phase("layer pairs", len(blocks), done)
    frames, computed = [], 0
    for n, index in blocks:
        block = path(n, labels[index])
        if not block.is_file():
            rows = {label: [array[:n] for array in arrays] for label, arrays in activations.items()}
            pairs = [(labels[index], other) for other in labels[index:]]
            frame = layer_similarity(
                rows,
                config.measures,
                permutations=config.permutations if n == largest else 0,
                bootstrap=config.bootstrap if n == largest else 0,
                seed=0,
                level=config.level,
                pairs=pairs,
            )
            frame["stimuli"] = n
            _atomic(block, lambda tmp, frame=frame: frame.to_csv(tmp, index=False))
            computed += 1
            advance(1)
        frames.append(pd.read_csv(block))
    return _split_labels(pd.concat(frames, ignore_index=True)), computed


def block_pairs(config: RecipesConfig) -> int:
    """Layer pairs per measure and number of stimuli (for sizing a study)."""
    counts: dict[str, list[int]] = {network_label(r, s): [0] * (len(config.hidden) + 2) for r, s in config.networks}
    counts[TARGETS] = [0]
    return pair_count(counts)


def _split_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """model labels `<recipe>-s<seed>` -> recipe and seed columns (seed empty for the targets)."""
    for side in ("a", "b"):
        label = frame[f"model_{side}"].astype(str)
        split = label.str.rsplit("-s", n=1, expand=True)
        is_targets = label == TARGETS
        frame[f"recipe_{side}"] = split[0].where(~is_targets, TARGETS)
        frame[f"seed_{side}"] = pd.to_numeric(split[1].where(~is_targets), errors="coerce").astype("Int64")
    extra = [column for column in ("p_value", "ci_low", "ci_high") if column in frame]
    return frame[SIMILARITY_COLUMNS + extra].reset_index(drop=True)


# -- summaries ------------------------------------------------------------------------------------


def _largest(frame: pd.DataFrame, config: RecipesConfig) -> pd.DataFrame:
    return frame[frame.stimuli == max(config.stimuli)]


def _networks_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame.recipe_a != TARGETS) & (frame.recipe_b != TARGETS)]


def _different_seeds(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame.seed_a != frame.seed_b]


def _between(frame: pd.DataFrame, recipe: str, other: str) -> pd.DataFrame:
    """Rows of `recipe` (as a) against `other` (as b), whichever side each was stored on."""
    forward = frame[(frame.recipe_a == recipe) & (frame.recipe_b == other)]
    backward = frame[(frame.recipe_a == other) & (frame.recipe_b == recipe)].rename(
        columns={
            "recipe_a": "recipe_b",
            "recipe_b": "recipe_a",
            "seed_a": "seed_b",
            "seed_b": "seed_a",
            "layer_a": "layer_b",
            "layer_b": "layer_a",
        }
    )
    both = pd.concat([forward, backward], ignore_index=True) if recipe != other else forward
    return both.drop_duplicates(["seed_a", "seed_b", "layer_a", "layer_b", "measure", "stimuli"])


def mean_matrices(frame: pd.DataFrame, config: RecipesConfig, measure: str) -> dict[tuple[str, str], np.ndarray]:
    """(recipe_a, recipe_b) -> layer x layer mean over the pairs of networks of different seeds."""
    rows = _different_seeds(_networks_only(_largest(frame, config)))
    rows = rows[rows.measure == measure]
    size = len(config.hidden) + 2
    matrices = {}
    for recipe in config.recipes:
        for other in config.recipes:
            pairs = _between(rows, recipe, other)
            means = pairs.groupby(["layer_a", "layer_b"]).value.mean()
            matrix = np.full((size, size), np.nan)
            for (layer_a, layer_b), value in means.items():
                matrix[int(layer_a), int(layer_b)] = value
            if recipe == other:  # stored once per pair of seeds: average with its transpose
                matrix = np.nanmean(np.stack([matrix, matrix.T]), axis=0)
            matrices[(recipe, other)] = matrix
    return matrices


def _summary(values: pd.Series) -> dict[str, float | int]:
    finite = values.dropna()
    return {"mean": float(finite.mean()), "sd": float(finite.std(ddof=1)), "pairs": int(len(finite))}


def penultimate_table(frame: pd.DataFrame, config: RecipesConfig) -> pd.DataFrame:
    """The last hidden layer of each recipe against `standard` and against itself (different seeds), and
    against the targets: mean and sd over the pairs of networks."""
    layer = config.penultimate
    largest = _largest(frame, config)
    rows: list[dict[str, Any]] = []
    for measure in config.measures:
        data = largest[largest.measure == measure]
        networks = _different_seeds(_networks_only(data))
        for recipe in config.recipes:
            same_layer = lambda pairs: pairs[(pairs.layer_a == layer) & (pairs.layer_b == layer)].value  # noqa: E731
            comparisons = {"same recipe": same_layer(_between(networks, recipe, recipe))}
            if "standard" in config.recipes and recipe != "standard":
                comparisons["standard"] = same_layer(_between(networks, recipe, "standard"))
            targets = _between(data, recipe, TARGETS)
            comparisons[TARGETS] = targets[targets.layer_a == layer].value
            for against, values in comparisons.items():
                rows.append(
                    {"measure": measure, "recipe": recipe, "layer": layer, "against": against, **_summary(values)}
                )
    return pd.DataFrame.from_records(rows)


def anchor_table(frame: pd.DataFrame, config: RecipesConfig) -> pd.DataFrame:
    """Per recipe and layer: similarity to the input (layer 0 of the same network), to the targets, and to
    the same layer of the recipe's networks of other seeds (means over networks or pairs)."""
    largest = _largest(frame, config)
    rows: list[dict[str, Any]] = []
    for measure in config.measures:
        data = largest[largest.measure == measure]
        own = data[(data.recipe_a == data.recipe_b) & (data.seed_a == data.seed_b) & (data.layer_b == 0)]
        across = _different_seeds(_networks_only(data))
        for recipe in config.recipes:
            targets = _between(data, recipe, TARGETS)
            within = _between(across, recipe, recipe)
            for layer in range(len(config.hidden) + 2):
                rows.append(
                    {
                        "measure": measure,
                        "recipe": recipe,
                        "layer": layer,
                        "to_input": float(own[(own.recipe_a == recipe) & (own.layer_a == layer)].value.mean()),
                        "to_targets": float(targets[targets.layer_a == layer].value.mean()),
                        "across_seeds": float(
                            within[(within.layer_a == layer) & (within.layer_b == layer)].value.mean()
                        ),
                    }
                )
    return pd.DataFrame.from_records(rows)


def stimuli_table(frame: pd.DataFrame, config: RecipesConfig) -> pd.DataFrame:
    """How each measure's table moves with the number of stimuli: against the largest n, over every pair of
    different networks (and the targets), the mean absolute change and the rank correlation of the values."""
    from scipy.stats import spearmanr

    data = frame[~((frame.recipe_a == frame.recipe_b) & (frame.seed_a.astype(str) == frame.seed_b.astype(str)))]
    keys = ["recipe_a", "seed_a", "layer_a", "recipe_b", "seed_b", "layer_b"]
    largest = max(config.stimuli)
    rows: list[dict[str, Any]] = []
    for measure in config.measures:
        values = data[data.measure == measure]
        reference = values[values.stimuli == largest].set_index(keys).value
        for n in sorted(config.stimuli):
            current = values[values.stimuli == n].set_index(keys).value
            joined = pd.concat([current.rename("n"), reference.rename("ref")], axis=1, join="inner").dropna()
            change = (joined.n - joined.ref).abs()
            rank = spearmanr(joined.n, joined.ref).statistic if len(joined) > 2 else math.nan
            rows.append(
                {
                    "measure": measure,
                    "stimuli": n,
                    "mean_value": float(joined.n.mean()),
                    "mean_abs_change": float(change.mean()),
                    "max_abs_change": float(change.max()),
                    "rank_correlation": float(rank),
                    "pairs": int(len(joined)),
                }
            )
    return pd.DataFrame.from_records(rows)


__all__ = [
    "KIND",
    "RECIPES",
    "RecipesConfig",
    "RecipesResult",
    "block_pairs",
    "build_network",
    "layer_activations",
    "load_dataset",
    "mean_matrices",
    "network_dir",
    "parse_recipes",
    "read_activations",
    "run_recipes",
    "train_network",
]
