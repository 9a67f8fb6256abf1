"""Figures of the training ablation: category median ranks against training step and against data size.

Panels: one row per data source x category, one column per framing; one colour per base (its family's
colour where the value figure has one). The rank axis is reversed so that better (rank 1) is up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; no display is needed (or available on servers)

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rewardlens.analysis.values import FRAMINGS  # noqa: E402
from rewardlens.report.values_plot import FALLBACK_COLORS, FAMILY_COLORS  # noqa: E402

SIZE_STYLES = ("-", "--", ":", "-.")


def base_label(base: str) -> str:
    """A base's short name for legends (`google/gemma-2-2b-it` -> `gemma-2-2b-it`)."""
    return Path(str(base).rstrip("/")).name or str(base)


def _base_colors(medians: pd.DataFrame) -> dict[str, str]:
    colors: dict[str, str] = {}
    used: set[str] = set()
    for base, family in medians.drop_duplicates("base")[["base", "family"]].itertuples(index=False):
        color = FAMILY_COLORS.get(str(family))
        if color is None or color in used:
            color = next(c for c in FALLBACK_COLORS if c not in used)
        colors[str(base)] = color
        used.add(color)
    return colors


def _panels(medians: pd.DataFrame) -> tuple[Figure, list[tuple[str, str]], list[str], Sequence[Sequence[Axes]]]:
    rows = list(medians[["data", "category"]].drop_duplicates().sort_values(["data", "category"]).itertuples(
        index=False, name=None))
    framings = [f for f in FRAMINGS if f in set(medians["framing"])]
    # One rank scale for every panel, so that a category's panel can be read against the other's.
    figure, axes = plt.subplots(
        len(rows), len(framings), figsize=(4.2 * len(framings), 2.8 * len(rows)), squeeze=False, sharex=True,
        sharey=True,
    )
    return figure, rows, framings, list(map(list, axes))


def _finish(figure: Figure, axes: Sequence[Sequence[Axes]], xlabel: str, path: Path) -> Path:
    axes[0][0].invert_yaxis()  # shared: once inverts every panel
    for row in axes:
        for axis in row:
            axis.grid(alpha=0.3)
    for axis in axes[-1]:
        axis.set_xlabel(xlabel)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        columns = min(3, len(labels))
        figure.legend(handles, labels, loc="upper center", ncol=columns, frameon=False, fontsize=8,
                      bbox_to_anchor=(0.5, 1.0))
    legend_rows = -(-len(labels) // 3) if handles else 0
    height = figure.get_figheight()
    figure.tight_layout(rect=(0, 0, 1, 1 - min(0.4, (0.25 * legend_rows + 0.1) / height)))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150)
    plt.close(figure)
    return path


def plot_ranks_by_step(medians: pd.DataFrame, path: str | Path) -> Path:
    """Median rank of each category against training step: one line per base (and line style per size)."""
    figure, rows, framings, axes = _panels(medians)
    colors = _base_colors(medians)
    sizes = sorted(medians["size"].unique())
    for i, (data, category) in enumerate(rows):
        for j, framing in enumerate(framings):
            axis = axes[i][j]
            panel = medians[(medians["data"] == data) & (medians["category"] == category)
                            & (medians["framing"] == framing)]
            for base, color in colors.items():
                for k, size in enumerate(sizes):
                    line = panel[(panel["base"] == base) & (panel["size"] == size)].sort_values("step")
                    if line.empty:
                        continue
                    label = base_label(base) if len(sizes) == 1 else f"{base_label(base)}, n={size}"
                    axis.plot(line["step"], line["median_rank"], SIZE_STYLES[k % len(SIZE_STYLES)], color=color,
                              marker="o", markersize=3, label=label)
            axis.set_title(f"{data}: {category}, {framing} framing", fontsize=9)
            if j == 0:
                axis.set_ylabel("median rank (1 = best)")
    return _finish(figure, axes, "training step", Path(path))


def plot_ranks_by_size(medians: pd.DataFrame, path: str | Path) -> Path:
    """Median rank of each category at the end of training against the number of pairs: one line per base."""
    final = medians[medians["final"].astype(bool)]
    figure, rows, framings, axes = _panels(final if not final.empty else medians)
    colors = _base_colors(medians)
    for i, (data, category) in enumerate(rows):
        for j, framing in enumerate(framings):
            axis = axes[i][j]
            panel = final[(final["data"] == data) & (final["category"] == category) & (final["framing"] == framing)]
            for base, color in colors.items():
                line = panel[panel["base"] == base].sort_values("size")
                if not line.empty:
                    axis.plot(line["size"], line["median_rank"], "-", color=color, marker="o", markersize=4,
                              label=base_label(base))
            if panel["size"].nunique() > 1 and panel["size"].max() / max(panel["size"].min(), 1) >= 10:
                axis.set_xscale("log")
            axis.set_title(f"{data}: {category}, {framing} framing", fontsize=9)
            if j == 0:
                axis.set_ylabel("median rank (1 = best)")
    return _finish(figure, axes, "preference pairs (final checkpoint)", Path(path))


__all__ = ["plot_ranks_by_size", "plot_ranks_by_step"]
