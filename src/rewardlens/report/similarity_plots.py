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
