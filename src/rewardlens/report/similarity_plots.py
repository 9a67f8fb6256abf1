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
