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
from rewardlens.imports import ScoredInput, require_framing, resolve_prompts, scores_from_csv
from rewardlens.lexicons import Lexicon, load_lexicon
from rewardlens.prompts import Prompt, load_prompts, prompts_from_records
from rewardlens.runs.store import read_manifest, shard_files


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
    chosen_lexicon = load_lexicon(lexicon)
    scored, used_prompts = load_lexicon_inputs(inputs, chosen_lexicon, prompt_set)
    for item in scored:
        used = used_prompts[item.source]
        require_framing([p for p in item.prompts if p.id in used], item.source)
    assigned = assign_families({item.model: item.aliases for item in scored}, overrides)
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


def load_lexicon_inputs(
    inputs: Sequence[str | os.PathLike[str]], lexicon: Lexicon, prompts: Sequence[Prompt] | None = None
) -> tuple[list[ScoredInput], dict[str, set[str]]]:
    """`load_scored_inputs` for a value analysis: the same inputs, but a run's frame holds only its rows whose
    response can match a lexicon word (a SQL join: a sweep over a whole vocabulary is never loaded whole).

    Returns the inputs and, per source, every prompt id it scored (the prompts whose framing the analysis
    needs, matched or not). `match_lexicon` on the kept rows gives what it gives on all rows: a response is
    kept when its stripped, case-folded text is a key of the lexicon expanded over every input's responses,
    and responses that are not kept never add an entry to that expansion.
    """
    from rewardlens.runs.query import lexicon_rows, run_responses

    runs: list[Path] = []
    tables: dict[str, ScoredInput] = {}
    responses: list[str] = []
    for path in inputs:
        where = Path(path)
        if where.is_dir():
            read_manifest(where)  # one clear line for a DIR that is not a run
            if not shard_files(where):
                raise UserError(f"{where}: the run holds no rows")
            runs.append(where)
            responses.extend(run_responses(where))
        elif where.is_file():
            item = scores_from_csv(where, prompts=prompts)
            tables[str(where)] = item
            responses.extend(item.frame["response"].astype(str).unique().tolist())
        else:
            raise UserError(f"{where}: no such run directory or CSV file")
    keys = lexicon_keys(lexicon, responses)
    wanted = [response for response in dict.fromkeys(responses) if response.strip().casefold() in keys]
    used: dict[str, set[str]] = {source: set(item.frame["prompt_id"]) for source, item in tables.items()}
    for run in runs:
        rows = lexicon_rows(run, wanted)
        if rows.n_rows == 0:
            raise UserError(f"{run}: the run holds no rows")
        tables[str(run)] = _run_input(run, rows.frame, rows.prompt_ids, rows.first_model, prompts)
        used[str(run)] = set(rows.prompt_ids)
    scored = [tables[str(Path(path))] for path in inputs]
    seen: dict[str, str] = {}
    for item in scored:
        if item.model in seen:
            raise UserError(f"model {item.model!r} is given twice ({seen[item.model]} and {item.source})")
        seen[item.model] = item.source
    return scored, used


def lexicon_keys(lexicon: Lexicon, responses: Sequence[str]) -> set[str]:
    """The keys (stripped, case-folded) that `match_lexicon` matches among these responses."""
    expanded = lexicon.expand(dict.fromkeys(response.strip() for response in responses))
    return {str(word).strip().casefold() for word in expanded.entries["word"]}


def _run_input(
    path: Path, frame: pd.DataFrame, prompt_ids: list[str], first_model: str | None, prompts: Sequence[Prompt] | None
) -> ScoredInput:
    """`imports.scores_from_run` on the kept rows of a run, with its prompt ids and first model from SQL."""
    manifest = read_manifest(path)
    recorded = prompts_from_records(manifest.get("prompts", []))
    given = {prompt.id: prompt for prompt in prompts or []}
    by_id = {prompt.id: given.get(prompt.id, prompt) for prompt in recorded}
    resolved = [by_id[i] for i in prompt_ids if i in by_id]
    missing = [i for i in prompt_ids if i not in by_id]
    if missing:
        resolved += resolve_prompts(missing, prompts, str(path))
    name = str(manifest.get("model") or first_model)
    texts = {prompt.id: prompt.text for prompt in resolved}
    framings = {prompt.id: prompt.framing for prompt in resolved}
    frame = frame.assign(model=name)
    frame["prompt_id"] = frame["prompt_id"].astype(str)
    frame["prompt"] = frame["prompt_id"].map(texts)
    frame["framing"] = frame["prompt_id"].map(framings)
    aliases = (path.name, Path(name).name, name)
    return ScoredInput(name, frame, resolved, tuple(dict.fromkeys(aliases)), str(path))


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


__all__ = ["ValueReport", "analyze_value_files", "lexicon_keys", "load_lexicon_inputs", "write_value_analysis"]
