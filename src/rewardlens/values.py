"""Python API of the value-bias verbs: analyse runs and score files, write the tables and the figure.

`analyze_value_files` is what `rewardlens analyze values` runs: read any mix of runs and score CSVs,
rank the lexicon's words, fit the statistics (`rewardlens.analysis.values`), and write into OUT:
`conclusions.csv` (one row per claim, with the unit it is tested at), `summary.csv`, `mixed_model.csv` (unless
skipped, with the reason in the notes), `tests.csv`, `model_medians.csv`, `prompt_medians.csv`, `ranks.parquet`,
`values.png`/`.pdf` and `analysis.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rewardlens import __version__
from rewardlens.analysis.family import assign_families, parse_family_options
from rewardlens.analysis.values import Compare, ValueAnalysis, WordSet, analyze_values
from rewardlens.errors import UserError
from rewardlens.imports import load_scored_inputs, require_framing
from rewardlens.lexicons import load_lexicon
from rewardlens.prompts import load_prompts


@dataclass(frozen=True)
class ValueReport:
    """An analysis and where its outputs were written."""

    analysis: ValueAnalysis
    out: Path
    files: dict[str, Path]
    families: dict[str, str]

    @property
    def notes(self) -> list[str]:
        return self.analysis.notes


def analyze_value_files(
    inputs: Sequence[str | os.PathLike[str]],
    lexicon: str,
    out: str | os.PathLike[str],
    families: Sequence[str] = (),
    compare: Compare = "auto",
    n_permutations: int = 10_000,
    seed: int = 0,
    prompts: str | None = None,
    words: WordSet = "common",
) -> ValueReport:
    """Analyse runs and score CSVs (one model each) and write every output into `out`.

    `words="common"` ranks only the lexicon words that every model scored (one word set, comparable ranks);
    `"all"` ranks each model's own matches.
    """
    if not inputs:
        raise UserError("give at least one run directory or score CSV")
    if compare not in ("auto", "families", "categories"):
        raise UserError(f"--compare {compare!r}: use families or categories")
    if words not in ("common", "all"):
        raise UserError(f"--words {words!r}: use common or all")
    overrides = parse_family_options(families)
    prompt_set = load_prompts(prompts) if prompts else None
    scored = load_scored_inputs(inputs, prompt_set)
    for item in scored:
        used = set(item.frame["prompt_id"])
        require_framing([p for p in item.prompts if p.id in used], item.source)
    assigned = assign_families({item.model: item.aliases for item in scored}, overrides)
    chosen_lexicon = load_lexicon(lexicon)
    frame = pd.concat([item.frame for item in scored], ignore_index=True)
    analysis = analyze_values(frame, chosen_lexicon, assigned, compare, n_permutations, seed, words)
    files = write_value_analysis(analysis, out)
    meta = {
        "lexicon": analysis.lexicon,
        "compare": analysis.compare,
        "words": words,
        "permutations": n_permutations,
        "seed": seed,
        "inputs": {item.model: item.source for item in scored},
        "families": assigned,
        "notes": analysis.notes,
        "rewardlens_version": __version__,
    }
    files["analysis.json"] = _write_json(Path(out) / "analysis.json", meta)
    return ValueReport(analysis, Path(out), files, assigned)


def write_value_analysis(analysis: ValueAnalysis, out: str | os.PathLike[str]) -> dict[str, Path]:
    """The tables and figures of an analysis, written into `out` (created if needed)."""
    from rewardlens.report.values_plot import save_values_figure  # matplotlib only when writing

    directory = Path(out)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output directory {directory}: {err.strerror or err}") from err
    tables: dict[str, pd.DataFrame | None] = {
        "conclusions.csv": analysis.conclusions,
        "summary.csv": analysis.summary,
        "mixed_model.csv": analysis.mixed_model,
        "tests.csv": analysis.tests,
        "model_medians.csv": analysis.model_medians,
        "prompt_medians.csv": analysis.prompt_medians,
    }
    files: dict[str, Path] = {}
    stale = directory / "mixed_model.csv"
    if analysis.mixed_model is None:
        stale.unlink(missing_ok=True)  # an earlier run's table would contradict the note
    for name, table in tables.items():
        if table is not None:
            files[name] = directory / name
            table.to_csv(files[name], index=False)
    files["ranks.parquet"] = directory / "ranks.parquet"
    analysis.ranked.to_parquet(files["ranks.parquet"], index=False)
    png, pdf = save_values_figure(analysis, directory)
    files["values.png"], files["values.pdf"] = png, pdf
    return files


def _write_json(path: Path, content: dict[str, Any]) -> Path:
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


__all__ = ["ValueReport", "analyze_value_files", "write_value_analysis"]
