"""Every layer of several models against every layer: the table behind `rewardlens similarity layers`.

`layer_similarity` takes per-layer arrays from any source (here the hidden states of transformer models,
`model_activations`, through the activations job), so any network's layers are compared by one code path.
Each layer's activations become one `Representation`, built once; its Gram matrix, covariance, RDM
and kernel matrices are memoized there, so the L_a x L_b layer pairs reuse them instead of
rereading activations. Within one model the table is symmetric and only i <= j is computed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from rewardlens.config import ModelOptions
from rewardlens.errors import UserError
from rewardlens.jobs.activations import ActivationsJob, extract_activations
from rewardlens.lexicons import load_lexicon
from rewardlens.progress import Progress
from rewardlens.similarity.inference import (
    bootstrap_indices,
    bootstrap_values,
    percentile_interval,
    permutation_null,
    permutation_p_value,
)
from rewardlens.similarity.pair import Pair
from rewardlens.similarity.registry import Measure, get_measure
from rewardlens.similarity.representation import Representation
from rewardlens.similarity.validation import as_float64, check_min_rows, check_same_rows

COLUMNS = ["model_a", "layer_a", "model_b", "layer_b", "measure", "value"]


def options_for(measures: Sequence[Measure], options: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Each measure's resolved options: a shared option goes to every measure that declares it."""
    given = dict(options or {})
    unused = sorted(key for key in given if not any(key in measure.options for measure in measures))
    if unused:
        raise UserError(f"option {unused[0]!r} is not an option of {', '.join(m.name for m in measures)}")
    return {m.name: m.resolve({k: v for k, v in given.items() if k in m.options}) for m in measures}


@dataclass
class _Layers:
    """Representations of one model's layers, one per centring flag, built on first use.

    A layer that is the same for every stimulus (the embedding of the last token, which is the
    template's fixed suffix, under `pool=last`) has no similarity to anything: it is recorded in
    `constant` and its rows get NaN instead of stopping the whole table.
    """

    model: str
    arrays: Sequence[Any]
    built: dict[tuple[int, bool], Representation | None]
    constant: set[int]

    def get(self, layer: int, center: bool) -> Representation | None:
        key = (layer, center)
        if key not in self.built:
            name = f"{self.model} layer {layer}"
            other = self.built.get((layer, not center))  # the same layer under the other centring flag
            tensor = other.raw if other is not None else as_float64(self.arrays[layer], name)
            # Rows all equal: constant whether or not columns are centred (uncentred, an RDM of it
            # would be all zeros).
            same_rows = bool(torch.all(tensor == tensor[:1]))
            try:
                self.built[key] = None if same_rows else Representation(tensor, center=center, name=name)
            except UserError:  # the only refusal here: no variance at all
                self.built[key] = None
            if self.built[key] is None:
                self.constant.add(layer)
        return self.built[key]


def layer_similarity(
    activations: Mapping[str, Sequence[Any]],
    measures: Sequence[str],
    *,
    options: Mapping[str, Any] | None = None,
    permutations: int = 0,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
    pairs: Sequence[tuple[str, str]] | None = None,
    progress: Progress = None,
) -> pd.DataFrame:
    """One row per (model pair, layer pair, measure); with p_value / ci_low, ci_high when asked.

    `activations` maps a model label to its layers' arrays (stimuli x hidden size, the same stimuli
    in the same order for every model). Pairs are every model with itself and with each other, or
    only the (model_a, model_b) `pairs` given (in the order of `activations`). A layer that is
    identical for every stimulus gets NaN (listed in `frame.attrs["constant_layers"]`). p-values
    permute the stimuli (rows of model_b's layer); intervals resample the stimuli.
    """
    if not activations:
        raise UserError("no activations to compare")
    chosen = [get_measure(name) for name in measures]
    if not chosen:
        raise UserError("no measure given")
    resolved = options_for(chosen, options)
    models = list(activations)
    rows = int(np.shape(activations[models[0]][0])[0])
    for model in models:
        for layer, array in enumerate(activations[model]):
            check_same_rows(rows, int(np.shape(array)[0]), f"{models[0]} layer 0", f"{model} layer {layer}")
    for measure in chosen:
        check_min_rows(rows, measure.min_rows, measure.name)
    layers = {model: _Layers(model, activations[model], {}, set()) for model in models}
    indices = bootstrap_indices(rows, bootstrap, seed) if bootstrap else None

    records: list[dict[str, Any]] = []
    for model_a, model_b in model_pairs(models, pairs):
        count_a, count_b = len(activations[model_a]), len(activations[model_b])
        for layer_a in range(count_a):
            for layer_b in range(layer_a if model_a == model_b else 0, count_b):
                for measure in chosen:
                    opts = resolved[measure.name]
                    center = measure.centers(opts)
                    a = layers[model_a].get(layer_a, center)
                    b = layers[model_b].get(layer_b, center)
                    value = math.nan if a is None or b is None else measure.value(Pair(a, b), opts)
                    record: dict[str, Any] = {
                        "model_a": model_a,
                        "layer_a": layer_a,
                        "model_b": model_b,
                        "layer_b": layer_b,
                        "measure": measure.name,
                        "value": value,
                    }
                    if a is not None and b is not None:
                        record.update(_inference(measure, opts, a, b, value, permutations, indices, seed, level))
                    records.append(record)
                    if model_a == model_b and layer_a != layer_b:
                        records.append({**record, "layer_a": layer_b, "layer_b": layer_a})
                    if progress:
                        progress(1)
    frame = pd.DataFrame.from_records(records)
    # Layers equal for every stimulus (NaN rows), per model, for the caller to report.
    frame.attrs["constant_layers"] = {model: sorted(layers[model].constant) for model in models}
    return frame.sort_values(["model_a", "model_b", "measure", "layer_a", "layer_b"], kind="stable").reset_index(
        drop=True
    )


def model_pairs(models: Sequence[str], pairs: Sequence[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """Every model with itself and each later one, or the `pairs` asked for, each put in `models` order."""
    if pairs is None:
        return list(combinations_with_replacement(models, 2))
    position = {model: index for index, model in enumerate(models)}
    chosen: list[tuple[str, str]] = []
    for pair in pairs:
        missing = [model for model in pair if model not in position]
        if missing:
            raise UserError(f"pair {pair!r} names {missing[0]!r}, which has no activations")
        ordered = tuple(sorted(pair, key=position.__getitem__))
        if ordered not in chosen:
            chosen.append((ordered[0], ordered[1]))
    return chosen


def pair_count(activations: Mapping[str, Sequence[Any]], pairs: Sequence[tuple[str, str]] | None = None) -> int:
    """The number of layer pairs `layer_similarity` computes per measure (for a progress bar)."""
    total = 0
    for model_a, model_b in model_pairs(list(activations), pairs):
        count_a, count_b = len(activations[model_a]), len(activations[model_b])
        # Within one model only layer_a <= layer_b is computed (the table is symmetric).
        total += count_a * (count_a + 1) // 2 if model_a == model_b else count_a * count_b
    return total


def _inference(
    measure: Measure,
    options: Mapping[str, Any],
    a: Representation,
    b: Representation,
    observed: float,
    permutations: int,
    indices: np.ndarray | None,
    seed: int,
    level: float,
) -> dict[str, float]:
    extra: dict[str, float] = {}
    if permutations:
        null = permutation_null(measure, options, a, b, permutations, seed)
        extra["p_value"] = permutation_p_value(null, observed, measure.larger_is_more_similar)
    if indices is not None:
        extra["ci_low"], extra["ci_high"] = percentile_interval(
            bootstrap_values(measure, options, a, b, indices), level
        )
    return extra


# -- from model specs to a written table ----------------------------------------------------------


def load_stimuli(spec: str) -> list[str]:
    """A text file with one stimulus per line, or a lexicon (bundled name, .csv/.dic/.dicx): its words."""
    path = Path(spec)
    if path.is_file() and path.suffix.lower() not in (".csv", ".dic", ".dicx"):
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        stimuli = list(dict.fromkeys(line for line in lines if line))
    else:

        stimuli = load_lexicon(spec).words
    if not stimuli:
        raise UserError(f"{spec}: no stimuli")
    return stimuli


def model_labels(specs: Sequence[str]) -> list[str]:
    """Short, distinct labels for the CSV: the last path component, numbered when two are alike."""
    labels: list[str] = []
    for spec in specs:
        base = Path(spec.rstrip("/")).name or spec
        label, copy = base, 2
        while label in labels:
            label, copy = f"{base}#{copy}", copy + 1
        labels.append(label)
    return labels


def model_activations(
    spec: str,
    stimuli: Sequence[str],
    out_dir: str | Path,
    *,
    prompt: str | None,
    template: str | None,
    pool: str,
    batch_size: int = 16,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    progress: Progress = None,
) -> list[np.ndarray]:
    """Per-layer activations of `spec` (reward model or language model), extracted into a run in `out_dir`
    (resumable; read without loading the model when it is finished)."""

    job = ActivationsJob(spec, tuple(stimuli), Path(out_dir), prompt, template, pool, batch_size)
    options = ModelOptions(dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    activations = extract_activations(job, options, progress=progress)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return activations


def safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label)
