"""Figures of `analyze human`: the tau heatmap (human + RMs, per prompt) and a beeswarm of rank differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _short(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def save_tau_heatmap(pairs: pd.DataFrame, out: Path) -> Path:
    """Kendall's tau between every two of human + RMs, one panel per prompt (`pairs`: agreement records)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prompts = sorted(pairs["prompt_id"].unique())
    figure, axes = plt.subplots(1, len(prompts), figsize=(8 * len(prompts), 6.5), squeeze=False)
    figure.subplots_adjust(wspace=0.55)  # room for the next panel's long model names
    for axis, prompt_id in zip(axes[0], prompts, strict=True):
        rows = pairs[pairs["prompt_id"] == prompt_id]
        models = list(dict.fromkeys([*rows["model_a"], *rows["model_b"]]))
        models = ["human", *sorted(m for m in models if m != "human")] if "human" in models else sorted(models)
        index = {m: i for i, m in enumerate(models)}
        matrix = np.eye(len(models))
        for row in rows.itertuples(index=False):
            matrix[index[row.model_a], index[row.model_b]] = matrix[index[row.model_b], index[row.model_a]] = (
                row.kendall_tau
            )
        image = axis.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
        labels = [_short(m) for m in models]
        axis.set_xticks(range(len(models)), labels, rotation=60, ha="right", fontsize=7)
        axis.set_yticks(range(len(models)), labels, fontsize=7)
        for i in range(len(models)):
            for j in range(len(models)):
                axis.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=5.5)
        axis.set_title(f"Kendall tau-b: {prompt_id}", fontsize=9)
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.7)
    path = out / "tau_heatmap.png"
    figure.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(figure)
    return path


def _density_jitter(values: np.ndarray, rng: np.random.Generator, width: float = 0.4) -> np.ndarray:
    """Horizontal offsets proportional to the local density of `values` (a beeswarm layout for many points)."""
    if len(values) < 2 or np.ptp(values) == 0:
        return rng.uniform(-width, width, len(values))
    counts, edges = np.histogram(values, bins=60)
    density = counts[np.clip(np.digitize(values, edges) - 1, 0, len(counts) - 1)] / counts.max()
    return rng.uniform(-1, 1, len(values)) * width * density


def save_rank_beeswarm(differences: pd.DataFrame, out: Path, seed: int = 0) -> Path:
    """Model rank - human rank of every response, one swarm per RM, one panel per prompt (negative: over-valued)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prompts = sorted(differences["prompt_id"].unique())
    models = sorted(differences["model"].unique())
    rng = np.random.default_rng(seed)
    figure, axes = plt.subplots(len(prompts), 1, figsize=(11, 3.2 * len(prompts)), squeeze=False, sharex=True)
    for axis, prompt_id in zip(axes[:, 0], prompts, strict=True):
        rows = differences[differences["prompt_id"] == prompt_id]
        for position, model in enumerate(models):
            values = rows.loc[rows["model"] == model, "rank_difference"].to_numpy(float)
            axis.scatter(position + _density_jitter(values, rng), values, s=0.4, alpha=0.35, color=f"C{position % 10}")
            axis.hlines(np.median(values), position - 0.4, position + 0.4, color="black", lw=1)
        axis.axhline(0, color="grey", lw=0.6)
        axis.set_ylabel("model rank - human rank")
        axis.set_title(f"{prompt_id} (below 0: the RM over-values the response)", fontsize=9)
    axes[-1, 0].set_xticks(range(len(models)), [_short(m) for m in models], rotation=30, ha="right", fontsize=8)
    path = out / "rank_differences.png"
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


__all__ = ["save_rank_beeswarm", "save_tau_heatmap"]
