"""The value-bias figure: median ranks per family (or category) in framing x category panels.

Paper style (Christian et al., 2026, Figure 1): rows are the prompt framings, a violin per group of the
median ranks per model x prompt, one faint point per model (its mean over prompts, +/- SE), the group
mean +/- SE in black joined by a dotted line, the significance marks of the permutation tests, and
the rank axis reversed so that better (rank 1) is up. Unlike the paper's figure, family marks come
from the test across models (one median rank per model), the unit that generalizes to new RMs.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; no display is needed (or available on servers)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rewardlens.analysis.values import FRAMINGS, ValueAnalysis  # noqa: E402

FAMILY_COLORS = {"gemma": "#DB4437", "llama": "#0064E0", "qwen": "#7C3AED", "smollm": "#F59E0B"}
FALLBACK_COLORS = [matplotlib.colors.to_hex(plt.get_cmap("tab10")(i)) for i in range(10)]
_MAX_MARKED_GROUPS = 2  # stars are drawn between two groups; with more, tests.csv holds every pair


def values_figure(analysis: ValueAnalysis) -> Figure:
    """The figure for `analysis`: families side by side, or categories when one family is analysed."""
    per_prompt = analysis.prompt_medians
    if analysis.compare == "families":
        group, panel_by = "family", "category"
        # Marks only from the valid unit: one median rank per model (model x prompt rows are not exchangeable).
        marks = _marks(analysis.tests, "model", ["framing", "category"])
    else:
        group, panel_by = "category", "model"
        marks = _marks(analysis.tests, "word", ["framing", "model"])
    framings = [f for f in FRAMINGS if f in set(per_prompt["framing"])]
    columns = sorted(per_prompt[panel_by].unique())
    groups = sorted(per_prompt[group].unique())
    colors = _colors(groups, by_family=group == "family")
    figure, axes = plt.subplots(
        len(framings),
        len(columns),
        figsize=(max(6.5, max(3.0, 1.2 + 1.1 * len(groups)) * len(columns)), 2.8 * len(framings) + 0.8),
        squeeze=False,
        sharey="row",
    )
    for row, framing in enumerate(framings):
        for col, column in enumerate(columns):
            panel = per_prompt[(per_prompt["framing"] == framing) & (per_prompt[panel_by] == column)]
            _draw_panel(axes[row][col], panel, group, groups, colors, marks.get((framing, column), ""))
            axes[row][col].set_title(f"{column}\n{framing} framing", fontsize=9)
        axes[row][0].set_ylabel(f"median rank ({analysis.lexicon})\n#1 = best")
        axes[row][0].invert_yaxis()  # the row shares its y axis: better ranks are up in every panel
    figure.suptitle(_caption(analysis), fontsize=8, y=0.995)
    figure.tight_layout()
    return figure


def save_values_figure(analysis: ValueAnalysis, out_dir: str | Path) -> list[Path]:
    """Write `values.png` and `values.pdf` into `out_dir`; returns their paths."""
    figure = values_figure(analysis)
    paths = [Path(out_dir) / "values.png", Path(out_dir) / "values.pdf"]
    try:
        for path in paths:
            figure.savefig(path, dpi=150)
    finally:
        plt.close(figure)
    return paths


def _draw_panel(
    ax: Axes, panel: pd.DataFrame, group: str, groups: list[str], colors: dict[str, str], mark: str
) -> None:
    means = []
    for x, name in enumerate(groups):
        values = panel.loc[panel[group] == name, "median_rank"].to_numpy(dtype=np.float64)
        if len(values) == 0:
            means.append(np.nan)
            continue
        if len(values) > 1 and np.ptp(values) > 0:
            violin = ax.violinplot(values, positions=[x], widths=0.8, showextrema=False)
            for body in violin["bodies"]:  # type: ignore[attr-defined]
                body.set_facecolor("none")
                body.set_edgecolor(colors[name])
        per_model = panel[panel[group] == name].groupby("model")["median_rank"].agg(["mean", "std", "size"])
        offsets = np.linspace(-0.12, 0.12, len(per_model)) if len(per_model) > 1 else np.zeros(1)
        se = (per_model["std"] / np.sqrt(per_model["size"])).fillna(0.0)
        ax.errorbar(
            x + offsets, per_model["mean"], yerr=se, fmt="o", color=colors[name], alpha=0.35, ms=4, capsize=2
        )
        mean = float(values.mean())
        group_se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
        ax.errorbar([x], [mean], yerr=[group_se], fmt="D", color="black", ms=4, capsize=3, zorder=5)
        means.append(mean)
    ax.plot(range(len(groups)), means, linestyle=":", color="black", linewidth=0.8)
    ax.set_xticks(range(len(groups)), groups, rotation=30 if len(groups) > 3 else 0, fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    if mark:
        ax.text(0.5, 0.96, mark, transform=ax.transAxes, ha="center", va="top", fontsize=11)


def _marks(tests: pd.DataFrame, unit: str, keys: list[str]) -> dict[tuple[str, str], str]:
    """Significance marks per panel when the panel compares exactly two groups."""
    if tests.empty or "unit" not in tests:
        return {}
    chosen = tests[tests["unit"] == unit]
    marks = {}
    for key, panel in chosen.groupby(keys, sort=False):
        if len(panel) == 1 and len({*panel["group_a"], *panel["group_b"]}) <= _MAX_MARKED_GROUPS:
            marks[(str(key[0]), str(key[1]))] = str(panel["significance"].iloc[0])
    return marks


def _colors(groups: list[str], by_family: bool) -> dict[str, str]:
    colors = {}
    for index, name in enumerate(groups):
        fallback = FALLBACK_COLORS[index % len(FALLBACK_COLORS)]
        colors[name] = FAMILY_COLORS.get(name, fallback) if by_family else fallback
    return colors


def _caption(analysis: ValueAnalysis) -> str:
    models = analysis.prompt_medians["model"].nunique()
    if analysis.compare == "families":
        test = "families compared across models (one median rank per model)"
    else:
        test = "categories compared on per-word median ranks"
    return (
        f"{models} model(s). Violins: median rank per model x prompt; faint: each model, mean +/- SE;\n"
        f"black: mean +/- SE. Permutation Welch t-test, {test};\n"
        "Bonferroni-adjusted: *** p<.001, ** p<.01, * p<.05, ns"
    )


__all__ = ["FAMILY_COLORS", "save_values_figure", "values_figure"]
