"""The value-bias figure: median ranks per family (or category) in framing x category panels.

Paper style (Christian et al., 2026, Figure 1): rows are the prompt framings, a violin per group of the
median ranks per model x prompt, one faint point per model (its mean over prompts, +/- SE), the group
mean +/- SE in black joined by a dotted line, the significance marks of the permutation tests, and
the rank axis reversed so that better (rank 1) is up. Unlike the paper's figure, family marks come
from the test across models (one median rank per model), the unit that generalizes to new RMs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; no display is needed (or available on servers)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from rewardlens.analysis.conclusions import WITHIN_MODEL  # noqa: E402
from rewardlens.analysis.family import NO_FAMILY  # noqa: E402
from rewardlens.analysis.values import FRAMINGS, ValueAnalysis  # noqa: E402

FAMILY_COLORS = {
    "gemma": "#DB4437",
    "llama": "#0064E0",
    "qwen": "#7C3AED",
    "smollm": "#F59E0B",
    NO_FAMILY: "#555555",
}
LOCAL_COLOR = "#111111"
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


def beside_figure(
    conclusions: pd.DataFrame, families: Mapping[str, str], local: Sequence[str], labels: Mapping[str, str]
) -> Figure:
    """Each model's within-model category contrast (95% CI, percentile points), one panel per contrast x
    framing: published models coloured by family with their family's mean as a dashed line, the local
    models in black, on top and in bold. `labels` renames models on the axis (e.g. CSV stems to Hub ids)."""
    within = conclusions[conclusions["claim"] == WITHIN_MODEL]
    contrasts = list(dict.fromkeys(within["contrast"]))
    framings = [framing for framing in FRAMINGS if framing in set(within["framing"])]
    order = _beside_order(within["scope"].unique(), families, local)
    figure, axes = plt.subplots(
        max(len(contrasts), 1),
        max(len(framings), 1),
        figsize=(5.2 * max(len(framings), 1), 0.8 + (0.25 * len(order) + 0.9) * max(len(contrasts), 1)),
        squeeze=False,
        sharey=True,
    )
    for row, contrast in enumerate(contrasts):
        for col, framing in enumerate(framings):
            panel = within[(within["contrast"] == contrast) & (within["framing"] == framing)]
            _draw_beside_panel(axes[row][col], panel.set_index("scope"), order, families, set(local))
            axes[row][col].set_title(f"{contrast}, {framing} framing", fontsize=9)
            first = str(contrast).split(" - ", 1)[0]
            axes[row][col].set_xlabel(f"percentile points (< 0: {first} ranked better)", fontsize=8)
    for row in range(len(axes)):
        axes[row][0].set_yticks(list(range(len(order))), [labels.get(model, model) for model in order], fontsize=7)
        for tick, model in zip(axes[row][0].get_yticklabels(), order, strict=True):
            if model in local:
                tick.set_fontweight("bold")
    # One y axis is shared by every panel: set (not toggle) its direction, local models on top.
    axes[0][0].yaxis.set_inverted(True)
    axes[0][-1].legend(handles=_beside_legend(order, families, set(local)), fontsize=7, loc="best")
    figure.suptitle(
        "Within-model contrast: difference of the categories' mean percentile ranks over words (Welch 95% CI);\n"
        "dashed: family mean over the published models; black: local model(s), in no family",
        fontsize=8,
        # A fixed distance from the top edge, however tall the figure (MFD: five rows of panels);
        # tight_layout then keeps the panels below it.
        y=1.0 - 0.08 / figure.get_figheight(),
        va="top",
    )
    figure.tight_layout()
    return figure


def save_beside_figure(
    conclusions: pd.DataFrame,
    families: Mapping[str, str],
    local: Sequence[str],
    labels: Mapping[str, str],
    out_dir: str | Path,
) -> list[Path]:
    """Write `beside.png` and `beside.pdf` into `out_dir`; returns their paths."""
    figure = beside_figure(conclusions, families, local, labels)
    paths = [Path(out_dir) / "beside.png", Path(out_dir) / "beside.pdf"]
    try:
        for path in paths:
            figure.savefig(path, dpi=150)
    finally:
        plt.close(figure)
    return paths


def _beside_order(models: Sequence[str], families: Mapping[str, str], local: Sequence[str]) -> list[str]:
    """Local models first (as given), then the others by family and name, so a family reads as one block."""
    others = sorted((m for m in models if m not in local), key=lambda m: (families.get(m, NO_FAMILY), m))
    return [*(m for m in local if m in set(models)), *others]


def _beside_legend(order: list[str], families: Mapping[str, str], local: set[str]) -> list[Line2D]:
    colors = _colors(sorted({families.get(m, NO_FAMILY) for m in order}), by_family=True)
    shown = sorted({families.get(m, NO_FAMILY) for m in order if m not in local})
    handles = [Line2D([], [], color=colors[family], marker="o", label=f"{family} family") for family in shown]
    if local:
        handles.append(Line2D([], [], color=LOCAL_COLOR, marker="D", label="local model"))
    return handles


def _draw_beside_panel(
    ax: Axes, panel: pd.DataFrame, order: list[str], families: Mapping[str, str], local: set[str]
) -> None:
    colors = _colors(sorted({families.get(m, NO_FAMILY) for m in order}), by_family=True)
    for y, model in enumerate(order):
        if model not in panel.index:
            continue
        row = panel.loc[model]
        estimate, low, high = (float(row[key]) for key in ("estimate", "ci_low", "ci_high"))
        color = LOCAL_COLOR if model in local else colors[families.get(model, NO_FAMILY)]
        if np.isfinite(low) and np.isfinite(high):
            ax.plot([low, high], [y, y], color=color, linewidth=1.2)
        ax.plot([estimate], [y], "D" if model in local else "o", color=color, ms=7 if model in local else 5)
    for family in sorted({families.get(m, NO_FAMILY) for m in order if m not in local} - {NO_FAMILY}):
        members = [m for m in order if m not in local and families.get(m) == family and m in panel.index]
        if len(members) < 2:
            continue
        mean = float(panel.loc[members, "estimate"].mean())
        ys = [order.index(m) for m in members]
        ax.plot([mean, mean], [min(ys) - 0.4, max(ys) + 0.4], linestyle="--", color=colors[family], linewidth=1)
    ax.axvline(0.0, color="#999999", linewidth=0.8)
    ax.tick_params(axis="x", labelsize=7)


__all__ = ["FAMILY_COLORS", "beside_figure", "save_beside_figure", "save_values_figure", "values_figure"]
