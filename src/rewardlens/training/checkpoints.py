"""Value biases across training: category ranks per base x data source x size x checkpoint step.

The ranks are the value analysis's (`analysis.values.rank_lexicon_words`: lexicon words ranked within each
checkpoint x prompt, 1 = best), summarised as the median rank of each category by framing. Bases are compared
at the same data source, size and step: the difference of their median ranks, with a percentile bootstrap
over prompts (the stimuli; both bases are resampled with the same prompts, as they answered the same ones).
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rewardlens import __version__
from rewardlens.analysis.family import infer_family
from rewardlens.analysis.values import model_medians, rank_lexicon_words
from rewardlens.config import DEFAULT_LEXICON
from rewardlens.errors import UserError
from rewardlens.imports import scores_from_run
from rewardlens.lexicons import load_lexicon
from rewardlens.report.checkpoint_plots import plot_ranks_by_size, plot_ranks_by_step
from rewardlens.runs.store import has_run
from rewardlens.training.ablate import ablation_cells, read_ablation

CELL_COLUMNS = ["base", "family", "data", "size", "step", "epoch", "final"]
DIFFERENCE_COLUMNS = ["data", "size", "step", "framing", "category", "base_a", "base_b", "family_a", "family_b",
                      "median_rank_a", "median_rank_b", "difference", "ci_low", "ci_high", "n_prompts", "n_resamples"]


@dataclass
class CheckpointAnalysis:
    ranked: pd.DataFrame  # one row per checkpoint x prompt x word x category, with the cell columns
    medians: pd.DataFrame  # CELL_COLUMNS + framing, category, median_rank, n_rows
    differences: pd.DataFrame  # data, size, step, framing, category, base_a, base_b, difference, CI
    notes: list[str]


def _checkpoint_key(row: dict[str, Any]) -> str:
    return f"{row['cell']}/step-{row['step']:06d}"


def rank_checkpoints(out: str | os.PathLike[str], lexicon: str) -> tuple[pd.DataFrame, list[str]]:
    """Ranked lexicon words of every scored checkpoint of an ablation, with its base, data, size and step."""

    chosen = load_lexicon(lexicon)
    notes: list[str] = []
    frames = []
    for row in ablation_cells(out):
        words: Path = row["words"]
        if not has_run(words):
            notes.append(f"{_checkpoint_key(row)}: no word run yet (run `ablate` again to score it)")
            continue
        key = _checkpoint_key(row)
        scored = scores_from_run(words).frame.assign(model=key)
        ranked = rank_lexicon_words(scored, chosen, {key: infer_family(row["base"])})
        cell = {name: row[name] for name in CELL_COLUMNS if name != "family"}
        frames.append(ranked.assign(checkpoint=key, **cell))
    if not frames:
        raise UserError(f"{out}: no checkpoint has a word run yet; run `rewardlens ablate` first")
    return pd.concat(frames, ignore_index=True), notes


def checkpoint_medians(ranked: pd.DataFrame) -> pd.DataFrame:
    """Per checkpoint x framing x category: the median rank (the value analysis's `model_medians`)."""
    medians = model_medians(ranked)
    cells = ranked.drop_duplicates("model").set_index("model")[[c for c in CELL_COLUMNS if c != "family"]]
    medians = medians.join(cells, on="model")
    columns = [*CELL_COLUMNS, "framing", "category", "median_rank", "n_rows"]
    return medians[columns].sort_values(["data", "base", "size", "step", "framing", "category"], ignore_index=True)


def _prompt_by_word(rows: pd.DataFrame, prompts: list[str]) -> np.ndarray:
    """Ranks as a prompts x words matrix (NaN where a word was not scored under a prompt)."""
    table = rows.pivot_table(index="prompt_id", columns="word", values="rank", aggfunc="mean")
    return table.reindex(prompts).to_numpy(dtype=np.float64)


def bootstrap_difference(
    a: np.ndarray, b: np.ndarray, n_resamples: int, rng: np.random.Generator, level: float = 0.95
) -> tuple[float, float, float]:
    """Median rank of `a` minus that of `b` (prompts x words matrices sharing their prompt rows) and a
    percentile CI from resampling the prompts with replacement, the same draw for both."""
    n_prompts = a.shape[0]
    observed = float(np.nanmedian(a) - np.nanmedian(b))
    draws = rng.integers(0, n_prompts, size=(n_resamples, n_prompts))
    medians_a = np.nanmedian(a[draws].reshape(n_resamples, -1), axis=1)
    medians_b = np.nanmedian(b[draws].reshape(n_resamples, -1), axis=1)
    low, high = np.quantile(medians_a - medians_b, [(1 - level) / 2, (1 + level) / 2])
    return observed, float(low), float(high)


def base_differences(ranked: pd.DataFrame, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per data x size x step x framing x category and pair of bases: median-rank difference with a bootstrap CI.

    A negative difference means base A ranks the category higher (better) than base B.
    """
    rows = []
    bases = list(dict.fromkeys(ranked["base"]))
    families = ranked.drop_duplicates("base").set_index("base")["family"]
    groups = ranked.groupby(["data", "size", "step", "framing", "category"], sort=True)
    for index, ((data, size, step, framing, category), group) in enumerate(groups):
        prompts = sorted(group["prompt_id"].unique())
        present = [base for base in bases if base in set(group["base"])]
        for pair_index, (first, second) in enumerate(itertools.combinations(present, 2)):
            a = _prompt_by_word(group[group["base"] == first], prompts)
            b = _prompt_by_word(group[group["base"] == second], prompts)
            rng = np.random.default_rng([seed, index, pair_index])
            difference, low, high = bootstrap_difference(a, b, n_resamples, rng)
            rows.append({
                "data": data, "size": size, "step": step, "framing": framing, "category": category,
                "base_a": first, "base_b": second, "family_a": families[first], "family_b": families[second],
                "median_rank_a": float(np.nanmedian(a)), "median_rank_b": float(np.nanmedian(b)),
                "difference": difference, "ci_low": low, "ci_high": high,
                "n_prompts": len(prompts), "n_resamples": n_resamples,
            })
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)


def analyze_checkpoints(
    out: str | os.PathLike[str], lexicon: str = DEFAULT_LEXICON, n_resamples: int = 1000, seed: int = 0
) -> CheckpointAnalysis:
    if n_resamples < 1:
        raise UserError(f"--resamples {n_resamples}: must be at least 1")
    ranked, notes = rank_checkpoints(out, lexicon)
    medians = checkpoint_medians(ranked)
    differences = base_differences(ranked, n_resamples, seed)
    if differences.empty:
        notes.append("one base only: no base differences to compare")
    return CheckpointAnalysis(ranked, medians, differences, notes)


def write_checkpoint_analysis(
    ablation: str | os.PathLike[str],
    out: str | os.PathLike[str],
    lexicon: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[CheckpointAnalysis, dict[str, Path]]:
    """What `rewardlens analyze checkpoints` writes: the CSVs, the figures and analysis.json."""

    lexicon = lexicon or str(read_ablation(ablation).get("lexicon") or DEFAULT_LEXICON)
    analysis = analyze_checkpoints(ablation, lexicon, n_resamples, seed)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    files = {"checkpoints.csv": target / "checkpoints.csv", "base_differences.csv": target / "base_differences.csv"}
    analysis.medians.to_csv(files["checkpoints.csv"], index=False)
    analysis.differences.to_csv(files["base_differences.csv"], index=False)
    for name, plot in (("ranks_by_step", plot_ranks_by_step), ("ranks_by_size", plot_ranks_by_size)):
        for suffix in ("png", "pdf"):
            files[f"{name}.{suffix}"] = plot(analysis.medians, target / f"{name}.{suffix}")
    meta = {
        "ablation": str(Path(ablation).resolve()),
        "grid": {key: read_ablation(ablation).get(key) for key in ("bases", "data", "sizes")},
        "lexicon": lexicon,
        "resamples": n_resamples,
        "seed": seed,
        "bootstrap": "percentile, 95%, prompts resampled with replacement (same draw for both bases)",
        "notes": analysis.notes,
        "rewardlens_version": __version__,
    }
    files["analysis.json"] = target / "analysis.json"
    files["analysis.json"].write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    return analysis, files


__all__ = [
    "CheckpointAnalysis",
    "analyze_checkpoints",
    "base_differences",
    "bootstrap_difference",
    "checkpoint_medians",
    "rank_checkpoints",
    "write_checkpoint_analysis",
]
