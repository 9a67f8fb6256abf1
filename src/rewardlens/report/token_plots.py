"""Figures of the token analyses. Object-oriented matplotlib (no pyplot), so no global backend state."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rewardlens.analysis.tokens.histograms import ScoreHistogram

_PANEL = 3.2  # inches per panel side
_MAX_LEGEND = 8  # prompts labelled in a histogram panel


def _grid(n_panels: int, max_columns: int = 4) -> tuple[int, int]:
    columns = min(max_columns, max(1, n_panels))
    return math.ceil(n_panels / columns), columns


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_score_histograms(histograms: Sequence[ScoreHistogram], moments: pd.DataFrame, path: Path) -> Path:
    """One panel per model, one step histogram per prompt, skewness (95% CI) in the legend.

    Draws the bin counts counted as the rows were read (`rewardlens.analysis.tokens.histograms`), never the
    scores themselves.
    """
    by_model: dict[str, list[ScoreHistogram]] = {}
    for histogram in sorted(histograms, key=lambda h: (h.model, h.prompt_id)):
        by_model.setdefault(histogram.model, []).append(histogram)
    rows, columns = _grid(len(by_model))
    figure = Figure(figsize=(_PANEL * columns * 1.3, _PANEL * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    shape = moments.set_index(["model", "prompt_id"])
    for axis, (model, prompts) in zip(axes, by_model.items(), strict=False):
        labelled = len(prompts) <= _MAX_LEGEND  # a legend of 54 prompts would hide the histograms
        for histogram in prompts:
            label = histogram.prompt_id
            if (model, histogram.prompt_id) in shape.index:
                row = shape.loc[(model, histogram.prompt_id)]
                low, high = row["skewness_ci_low"], row["skewness_ci_high"]
                label += f" skew {row['skewness']:.2f} [{low:.2f}, {high:.2f}]"
            axis.stairs(histogram.counts, histogram.edges, label=label if labelled else None)
        axis.set_title(model if labelled else f"{model} ({len(prompts)} prompts)", fontsize=9)
        axis.set_xlabel("score")
        axis.set_ylabel("tokens")
        if labelled:
            axis.legend(fontsize=6)
    for axis in axes[len(by_model) :]:
        axis.set_visible(False)
    return _save(figure, path)


def plot_agreement_heatmap(tau: pd.DataFrame, path: Path) -> Path:
    """Models x models heatmap of Kendall's tau averaged over prompts."""
    n = len(tau)
    figure = Figure(figsize=(1.0 + 0.7 * n, 0.6 + 0.7 * n), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(tau.to_numpy(dtype=np.float64), vmin=-1, vmax=1, cmap="RdBu_r")
    axis.set_xticks(range(n), [str(m) for m in tau.columns], rotation=45, ha="right", fontsize=7)
    axis.set_yticks(range(n), [str(m) for m in tau.index], fontsize=7)
    for i in range(n):
        for j in range(n):
            axis.text(j, i, f"{tau.iat[i, j]:.2f}", ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axis, label="Kendall's tau (mean over prompts)")
    return _save(figure, path)


def plot_agreement_mds(coordinates: pd.DataFrame, path: Path) -> Path:
    """Models placed by classical MDS of 1 - tau: close models rank tokens alike."""
    figure = Figure(figsize=(4.5, 4.0), layout="constrained")
    axis = figure.subplots()
    axis.scatter(coordinates["x"], coordinates["y"])
    for row in coordinates.itertuples():
        axis.annotate(str(row.model), (row.x, row.y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axis.set_xlabel("MDS 1")
    axis.set_ylabel("MDS 2")
    axis.set_title("models by 1 - Kendall's tau", fontsize=9)
    return _save(figure, path)


def plot_frequency_scatter(features: pd.DataFrame, fits: pd.DataFrame, path: Path) -> Path:
    """Score against Zipf frequency per model (first prompt in sorted order) for positive and negative words,
    with each polarity's OLS line at that polarity's mean sentiment."""
    models = sorted(features["model"].unique())
    rows, columns = _grid(len(models))
    figure = Figure(figsize=(_PANEL * columns, _PANEL * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    coefficients = fits.set_index(["model", "prompt_id", "polarity", "term"])["coef"]
    for axis, model in zip(axes, models, strict=False):
        model_rows = features[features["model"] == model]
        prompt_id = sorted(model_rows["prompt_id"].unique())[0]
        shown = model_rows[model_rows["prompt_id"] == prompt_id]
        for polarity, colour in (("positive", "tab:blue"), ("negative", "tab:red")):
            words = shown[shown["polarity"] == polarity]
            axis.scatter(words["zipf"], words["score"], s=6, alpha=0.4, color=colour, label=polarity)
            key = (model, prompt_id, polarity)
            if len(words) and (*key, "zipf") in coefficients.index:
                grid = np.linspace(words["zipf"].min(), words["zipf"].max(), 2)
                sentiment = coefficients[(*key, "sentiment")]
                offset = 0.0 if np.isnan(sentiment) else sentiment * words["sentiment"].mean()
                line = coefficients[(*key, "intercept")] + coefficients[(*key, "zipf")] * grid + offset
                axis.plot(grid, line, color=colour, linewidth=1.5)
        axis.set_title(f"{model}\n{prompt_id}", fontsize=8)
        axis.set_xlabel("Zipf frequency")
        axis.set_ylabel("score")
        axis.legend(fontsize=6)
    for axis in axes[len(models) :]:
        axis.set_visible(False)
    return _save(figure, path)


def plot_identity_percentiles(identity: pd.DataFrame, path: Path) -> Path:
    """Percentile ranks of identity-term tokens by group, a panel per model (all prompts), group medians."""
    models = sorted(identity["model"].unique())
    group_names = sorted(identity["group"].unique())
    rows, columns = _grid(len(models), max_columns=2)
    figure = Figure(figsize=(4.5 * columns, 0.45 * len(group_names) * rows + 1.0), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    jitter = np.random.default_rng(0)  # fixed: the figure is reproducible
    for axis, model in zip(axes, models, strict=False):
        model_rows = identity[identity["model"] == model]
        for position, group in enumerate(group_names):
            values = model_rows.loc[model_rows["group"] == group, "percentile"].to_numpy(dtype=np.float64)
            if len(values) == 0:
                continue
            axis.scatter(values, position + jitter.uniform(-0.2, 0.2, len(values)), s=6, alpha=0.5)
            axis.plot([np.median(values)] * 2, [position - 0.35, position + 0.35], color="black")
        axis.axvline(1.0, color="tab:red", linewidth=0.8, linestyle="--")
        axis.set_yticks(range(len(group_names)), group_names, fontsize=7)
        axis.set_xlim(0, 100)
        axis.set_xlabel("percentile rank in the model's scores")
        axis.set_title(str(model), fontsize=9)
    for axis in axes[len(models) :]:
        axis.set_visible(False)
    return _save(figure, path)


# (title, CSV written by `analyze tokens`, figure, rows shown) of each section, in the order of the issue.
_SECTIONS = [
    ("Optimal and pessimal tokens", "top_bottom.csv", None, 40),
    ("Distribution shape (skewness with bootstrap 95% CI)", "moments.csv", "histograms.png", 200),
    ("Token alignment across tokenizers", "alignment.csv", None, 50),
    ("Agreement across models", "agreement.csv", "agreement.png", 200),
    ("Models by 1 - Kendall's tau (classical MDS)", "agreement_mds.csv", "agreement_mds.png", 50),
    ("Framing", "framing.csv", None, 100),
    ("Frequency bias (OLS score ~ zipf + sentiment)", "frequency.csv", "frequency.png", 300),
    ("Identity-group terms", "identity_groups.csv", "identity.png", 300),
]


def token_sections_html(out_dir: Path) -> str:
    """The token analyses found in `out_dir` (the output of `analyze tokens`) as one self-contained HTML
    fragment — tables plus figures inlined as base64 PNG — for a report page to include."""
    import base64
    import html

    parts = ['<section class="token-analyses"><h2>Token-level analyses</h2>']
    for title, table_name, figure_name, max_rows in _SECTIONS:
        table_path = out_dir / table_name
        if not table_path.is_file():
            continue
        table = pd.read_csv(table_path, keep_default_na=False)
        parts.append(f"<h3>{html.escape(title)}</h3>")
        if figure_name and (out_dir / figure_name).is_file():
            encoded = base64.b64encode((out_dir / figure_name).read_bytes()).decode("ascii")
            parts.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{encoded}">')
        shown = table.head(max_rows)
        parts.append(shown.to_html(index=False, float_format=lambda x: f"{x:.4g}", border=0))
        if len(table) > max_rows:
            parts.append(f"<p>first {max_rows} of {len(table)} rows; all in {html.escape(table_name)}</p>")
    parts.append("</section>")
    return "\n".join(parts)
