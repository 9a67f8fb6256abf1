"""Layer-by-layer similarity heatmaps: one figure per model pair, one panel per measure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def layer_matrix(frame: pd.DataFrame, model_a: str, model_b: str, measure: str) -> np.ndarray:
    """layer_a x layer_b values of one measure for one model pair (NaN where absent)."""
    rows = frame[(frame.model_a == model_a) & (frame.model_b == model_b) & (frame.measure == measure)]
    matrix = np.full((int(rows.layer_a.max()) + 1, int(rows.layer_b.max()) + 1), np.nan)
    matrix[rows.layer_a.to_numpy(int), rows.layer_b.to_numpy(int)] = rows.value.to_numpy(float)
    return matrix


def layer_heatmap(frame: pd.DataFrame, model_a: str, model_b: str, larger_is_more_similar: dict[str, bool]) -> Figure:
    """Panels for every measure in `frame` for this pair; distances use a reversed colour map."""
    measures = list(dict.fromkeys(frame[(frame.model_a == model_a) & (frame.model_b == model_b)].measure))
    figure, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 4), squeeze=False)
    for axis, measure in zip(axes[0], measures, strict=True):
        matrix = layer_matrix(frame, model_a, model_b, measure)
        colours = "viridis" if larger_is_more_similar.get(measure, True) else "viridis_r"
        image = axis.imshow(matrix, origin="lower", cmap=colours, aspect="auto", interpolation="nearest")
        axis.set_title(measure)
        axis.set_xlabel(f"{model_b} layer")
        axis.set_ylabel(f"{model_a} layer")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    figure.suptitle(f"{model_a} vs {model_b}")
    figure.tight_layout()
    return figure


def save_layer_heatmaps(
    frame: pd.DataFrame, out_dir: Path, larger_is_more_similar: dict[str, bool], file_label: dict[str, str]
) -> list[Path]:
    """Write `heatmap_<A>_vs_<B>.png` for every model pair in `frame`; return the paths."""
    paths = []
    for (model_a, model_b), _ in frame.groupby(["model_a", "model_b"], sort=False):
        figure = layer_heatmap(frame, str(model_a), str(model_b), larger_is_more_similar)
        path = out_dir / f"heatmap_{file_label[str(model_a)]}_vs_{file_label[str(model_b)]}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    return paths


def sensitivity_figure(summary: pd.DataFrame) -> Figure:
    """Mean +- sd of each measure against the number of stimuli: one panel per (relation, d)."""
    relations = list(dict.fromkeys(summary.relation))
    widths = sorted(set(summary.d))
    figure, axes = plt.subplots(
        len(relations), len(widths), figsize=(4.4 * len(widths), 3.4 * len(relations)), squeeze=False, sharex=True
    )
    for row, relation in enumerate(relations):
        for col, width in enumerate(widths):
            axis = axes[row][col]
            panel = summary[(summary.relation == relation) & (summary.d == width)]
            for measure, lines in panel.groupby("measure", sort=False):
                lines = lines.sort_values("n")
                n, mean, sd = lines.n.to_numpy(float), lines["mean"].to_numpy(float), lines.sd.to_numpy(float)
                axis.plot(n, mean, marker="o", label=str(measure))
                axis.fill_between(n, mean - sd, mean + sd, alpha=0.2)
            axis.axhline(0.0, color="grey", linewidth=0.8, linestyle=":")
            axis.set_xscale("log")
            axis.set_title(f"{relation}, d = {width}")
            axis.set_xlabel("stimuli n")
            axis.set_ylabel("value (mean +- sd)")
    axes[0][0].legend(fontsize="small")
    figure.suptitle("similarity of X and Y as n and d change (independent: the truth is 0)")
    figure.tight_layout()
    return figure


def save_sensitivity_figure(summary: pd.DataFrame, path: Path) -> Path:
    figure = sensitivity_figure(summary)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# -- the training-recipes study ---------------------------------------------------------------------


def recipe_matrix_grid(
    matrices: dict[tuple[str, str], np.ndarray], recipes: list[str], measure: str, larger_is_more_similar: bool = True
) -> Figure:
    """Recipe x recipe grid of layer x layer matrices (means over pairs of networks), one colour scale."""
    count = len(recipes)
    figure, axes = plt.subplots(
        count, count, figsize=(2.3 * count + 1.2, 2.3 * count), squeeze=False, layout="constrained"
    )
    finite = [m for m in matrices.values() if np.isfinite(m).any()]
    low = min(float(np.nanmin(m)) for m in finite) if finite else 0.0
    high = max(float(np.nanmax(m)) for m in finite) if finite else 1.0
    colours = "viridis" if larger_is_more_similar else "viridis_r"
    image = None
    for row, recipe in enumerate(recipes):
        for col, other in enumerate(recipes):
            axis = axes[row][col]
            matrix = matrices[(recipe, other)]
            image = axis.imshow(
                matrix, origin="lower", cmap=colours, vmin=low, vmax=high, aspect="equal", interpolation="nearest"
            )
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.yaxis.set_major_locator(MaxNLocator(integer=True))
            if row == count - 1:
                axis.set_xlabel(f"{other}\nlayer", fontsize="small")
            if col == 0:
                axis.set_ylabel(f"{recipe}\nlayer", fontsize="small")
            axis.tick_params(labelsize="x-small")
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.6)
    figure.suptitle(f"{measure}: layer x layer, mean over networks of different seeds")
    return figure


def penultimate_figure(table: pd.DataFrame) -> Figure:
    """Bars per recipe: its penultimate layer against the same recipe, `standard` and the targets (+- sd)."""
    measures = list(dict.fromkeys(table.measure))
    figure, axes = plt.subplots(1, len(measures), figsize=(5.2 * len(measures), 3.8), squeeze=False, sharey=True)
    against = list(dict.fromkeys(table.against))
    width = 0.8 / max(len(against), 1)
    for axis, measure in zip(axes[0], measures, strict=True):
        panel = table[table.measure == measure]
        recipes = list(dict.fromkeys(panel.recipe))
        for index, kind in enumerate(against):
            rows = panel[panel.against == kind].set_index("recipe").reindex(recipes)
            positions = np.arange(len(recipes)) + (index - (len(against) - 1) / 2) * width
            axis.bar(positions, rows["mean"], width, yerr=rows["sd"], capsize=3, label=f"vs {kind}")
        axis.set_xticks(np.arange(len(recipes)), recipes)
        axis.set_title(f"{measure}, layer {int(panel.layer.iloc[0])} (penultimate)")
        axis.set_ylabel("similarity (mean +- sd over pairs)")
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    return figure


def anchors_figure(table: pd.DataFrame) -> Figure:
    """Per measure: each layer's similarity to the input, to the targets and across seeds, one line a recipe."""
    measures = list(dict.fromkeys(table.measure))
    columns = [
        ("to_input", "to the input (layer 0)"),
        ("to_targets", "to the targets"),
        ("across_seeds", "across seeds"),
    ]
    figure, axes = plt.subplots(
        len(measures), len(columns), figsize=(4.3 * len(columns), 3.2 * len(measures)), squeeze=False, sharey=True
    )
    for row, measure in enumerate(measures):
        panel = table[table.measure == measure]
        for col, (column, title) in enumerate(columns):
            axis = axes[row][col]
            for recipe, lines in panel.groupby("recipe", sort=False):
                axis.plot(lines.layer, lines[column], marker="o", label=str(recipe))
            axis.set_title(f"{measure}: {title}", fontsize="medium")
            axis.set_xlabel("layer (0 = input, last = logits)")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    return figure


def stimuli_figure(table: pd.DataFrame) -> Figure:
    """Mean absolute change of every value from its value at the largest number of stimuli, per measure."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for measure, lines in table.groupby("measure", sort=False):
        lines = lines.sort_values("stimuli")
        axes[0].plot(lines.stimuli, lines.mean_abs_change, marker="o", label=str(measure))
        axes[1].plot(lines.stimuli, lines.mean_value, marker="o", label=str(measure))
    axes[0].set_ylabel("mean |value(n) - value(largest n)|")
    axes[1].set_ylabel("mean value over pairs")
    for axis in axes:
        axis.set_xscale("log")
        axis.set_xlabel("stimuli n")
    axes[0].legend(fontsize="small")
    figure.tight_layout()
    return figure


def save_recipe_figures(
    matrices: dict[str, dict[tuple[str, str], np.ndarray]],
    recipes: list[str],
    larger_is_more_similar: dict[str, bool],
    penultimate: pd.DataFrame,
    anchors: pd.DataFrame,
    stimuli: pd.DataFrame,
    out_dir: Path,
) -> list[Path]:
    """`matrices_<measure>.png` for every measure, `penultimate.png`, `anchors.png`, `stimuli.png`."""
    figures = [
        (f"matrices_{measure}.png", recipe_matrix_grid(grid, recipes, measure, larger_is_more_similar[measure]))
        for measure, grid in matrices.items()
    ]
    figures += [
        ("penultimate.png", penultimate_figure(penultimate)),
        ("anchors.png", anchors_figure(anchors)),
        ("stimuli.png", stimuli_figure(stimuli)),
    ]
    paths = []
    for name, figure in figures:
        path = out_dir / name
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    return paths
