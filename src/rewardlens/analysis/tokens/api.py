"""All token analyses over sweep runs in one call: load, validate, compute, write CSVs and figures.

`analyze_token_runs` is the Python equivalent of `rewardlens analyze tokens`; `analyze_tokens` does the same
on a DataFrame already in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rewardlens.analysis.tokens._frame import require_columns
from rewardlens.analysis.tokens.agreement import (
    AGREEMENT_COLUMNS,
    agreement,
    agreement_of_prompt,
    alignment_report,
    alignment_table,
    mean_tau_matrix,
    shared_tokens,
    tau_mds,
)
from rewardlens.analysis.tokens.framing import framing_analysis, framing_pairs, normalise_framing
from rewardlens.analysis.tokens.frequency import fit_word_features, word_features
from rewardlens.analysis.tokens.histograms import score_histograms
from rewardlens.analysis.tokens.identity import identity_groups, identity_percentiles, load_identity_terms
from rewardlens.analysis.tokens.moments import moments
from rewardlens.analysis.tokens.streamed import GroupResults, group_analyses
from rewardlens.analysis.tokens.top_bottom import top_bottom
from rewardlens.errors import UserError

if TYPE_CHECKING:
    from rewardlens.runs.query import SweepRows

SWEEP_COLUMNS = ["model", "prompt_id", "token_id", "response", "score"]


@dataclass
class TokenRuns:
    """Sweep rows of several runs in one frame, with the framing of each prompt id that has one."""

    frame: pd.DataFrame
    framings: dict[str, str] = field(default_factory=dict)
    # (scope, phrasing) of prompts whose _run.json gives both: framing pairs prompts that differ only in frame.
    framing_match: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class TokenReport:
    """What `analyze_tokens` wrote, the alignment counts, and notes on analyses skipped or limited."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    alignment: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def load_token_runs(run_dirs: Sequence[str | os.PathLike[str]]) -> TokenRuns:
    """Read sweep runs into one frame; refuse non-sweeps, runs without sweep columns and overlapping runs."""
    from rewardlens.runs import load_run, read_manifest  # the run store, not analysis, knows the disk layout

    if not run_dirs:
        raise UserError("no runs given")
    frames: list[pd.DataFrame] = []
    framings: dict[str, str] = {}
    framing_match: dict[str, tuple[str, str]] = {}
    for run_dir in run_dirs:
        manifest = read_manifest(run_dir)
        kind = manifest.get("kind_of_run")
        # Implicit-reward runs over the whole vocabulary carry the same columns as sweeps.
        if kind not in ("sweep", "implicit"):
            raise UserError(f"{run_dir} is not a sweep run (kind_of_run {kind!r}); token analyses need sweeps")
        frame = load_run(run_dir)
        missing = [c for c in SWEEP_COLUMNS if c not in frame.columns]
        if missing:
            raise UserError(f"{run_dir} lacks sweep columns {', '.join(missing)}")
        # The prompt text and raw token string repeat on every row and no analysis reads them.
        frames.append(frame.drop(columns=[c for c in ("prompt", "token") if c in frame.columns]))
        for prompt in manifest.get("prompts") or []:
            if not isinstance(prompt, dict) or prompt.get("id") is None:
                continue
            if prompt.get("framing"):
                framings[str(prompt["id"])] = normalise_framing(str(prompt["framing"]))
            if prompt.get("scope") and prompt.get("phrasing"):
                framing_match[str(prompt["id"])] = (str(prompt["scope"]), str(prompt["phrasing"]))
    combined = pd.concat(frames, ignore_index=True)
    combined["model"] = combined["model"].astype(str)
    combined["prompt_id"] = combined["prompt_id"].astype(str)
    overlap = combined.duplicated(["model", "prompt_id", "token_id"])
    if overlap.any():
        first = combined.loc[overlap].iloc[0]
        raise UserError(
            f"runs overlap: model {first['model']} scored token {first['token_id']} under prompt "
            f"{first['prompt_id']} more than once"
        )
    return TokenRuns(combined, framings, framing_match)


def parse_framings(specs: Sequence[str]) -> dict[str, str]:
    """`ID=pos|neg` strings -> {prompt id: "positive" | "negative"}."""
    parsed: dict[str, str] = {}
    for spec in specs:
        prompt_id, sep, value = spec.partition("=")
        if not sep or not prompt_id.strip():
            raise UserError(f"--framing takes ID=pos|neg, got {spec!r}")
        parsed[prompt_id.strip()] = normalise_framing(value)
    return parsed


def _write(report: TokenReport, name: str, table: pd.DataFrame) -> None:
    path = report.out_dir / name
    table.to_csv(path, index=False)
    report.files.append(path)
    report.tables[name.removesuffix(".csv")] = table


def analyze_tokens(
    frame: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    k: int = 20,
    seed: int = 0,
    framings: Mapping[str, str] | None = None,
    n_resamples: int = 1000,
    figures: bool = True,
    step: Callable[[str], None] | None = None,
    framing_match: Mapping[str, Hashable] | None = None,
) -> TokenReport:
    """Run every token analysis on `frame` and write its CSV (and figure) into `out_dir`.

    Agreement is skipped with a note when there are fewer than 2 models, framing when no prompt pair is framed
    positive and negative, frequency and identity when nothing matches; the other analyses are still written.
    `step(name)` is called before each analysis (progress display).
    """
    from rewardlens.report import token_plots  # figures are the report layer's job

    if k < 1:
        raise UserError(f"--k must be at least 1, got {k}")
    if n_resamples < 0:
        raise UserError(f"--resamples must not be negative, got {n_resamples}")
    require_columns(frame, SWEEP_COLUMNS, "token analyses")
    framings = {prompt_id: normalise_framing(value) for prompt_id, value in (framings or {}).items()}
    unknown = sorted(set(framings) - set(frame["prompt_id"].astype(str)))
    if unknown:
        raise UserError(f"--framing names prompt id(s) no run has: {', '.join(unknown)}")
    report = TokenReport(Path(out_dir))
    try:
        report.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output directory {out_dir}: {err.strerror or err}") from err
    announce = step or (lambda name: None)

    announce("top and bottom tokens")
    _write(report, "top_bottom.csv", top_bottom(frame, k=k))

    announce("moments")
    shape = moments(frame, n_resamples=n_resamples, seed=seed)
    _write(report, "moments.csv", shape)
    if figures:
        report.files.append(
            token_plots.plot_score_histograms(score_histograms(frame), shape, report.out_dir / "histograms.png")
        )

    announce("agreement")
    _agreement(frame, report, figures)

    announce("framing")
    if {"positive", "negative"} <= set(framings.values()):
        summary, movers = framing_analysis(frame, framings, match=framing_match)
        _write(report, "framing.csv", summary)
        _write(report, "framing_movers.csv", movers)
    else:
        report.notes.append("framing skipped: no prompt is framed both positive and negative (use --framing)")

    announce("frequency")
    _frequency(frame, report, figures)

    announce("identity terms")
    identity_terms = load_identity_terms()
    terms = identity_percentiles(frame, identity_terms)
    _write(report, "identity.csv", terms)
    _write(report, "identity_groups.csv", identity_groups(frame, identity_terms))
    if terms.empty:
        report.notes.append("identity: no token decodes to an identity term")
    elif figures:
        report.files.append(token_plots.plot_identity_percentiles(terms, report.out_dir / "identity.png"))
    return report


def _agreement(frame: pd.DataFrame, report: TokenReport, figures: bool) -> None:

    models = frame["model"].astype(str).unique()
    if len(models) < 2:
        report.notes.append(f"agreement skipped: it needs at least 2 models, the runs hold {len(models)}")
        return
    report.alignment = alignment_report(frame)
    _write(report, "alignment.csv", report.alignment)
    _agreement_outputs(agreement(frame), report, figures)


def _agreement_outputs(pairs: pd.DataFrame, report: TokenReport, figures: bool) -> None:
    from rewardlens.report import token_plots

    _write(report, "agreement.csv", pairs)
    if pairs.empty:
        report.notes.append("agreement: no prompt id was scored by two models")
        return
    tau = mean_tau_matrix(pairs)
    if tau.isna().to_numpy().any():
        report.notes.append("agreement MDS skipped: some model pairs share no prompt")
    else:
        coordinates = tau_mds(tau)
        _write(report, "agreement_mds.csv", coordinates)
        if figures:
            report.files.append(token_plots.plot_agreement_mds(coordinates, report.out_dir / "agreement_mds.png"))
    if figures:
        report.files.append(token_plots.plot_agreement_heatmap(tau, report.out_dir / "agreement.png"))


def _frequency(frame: pd.DataFrame, report: TokenReport, figures: bool) -> None:

    if "is_word" not in frame.columns:
        report.notes.append("frequency skipped: the runs have no is_word column")
        return
    _write_frequency(report, word_features(frame), figures)


def _write_frequency(report: TokenReport, features: pd.DataFrame, figures: bool) -> None:
    from rewardlens.report import token_plots

    _write(report, "frequency.csv", fit_word_features(features))
    if report.tables["frequency"].empty:
        report.notes.append("frequency: too few word tokens with a frequency and a sentiment to fit")
    elif figures:
        report.files.append(
            token_plots.plot_frequency_scatter(features, report.tables["frequency"], report.out_dir / "frequency.png")
        )


def _run_metadata(run_dirs: Sequence[str | os.PathLike[str]]) -> TokenRuns:
    """The checks and framings `load_token_runs` takes from each run, from manifests and Parquet footers only."""
    from rewardlens.runs import read_manifest
    from rewardlens.runs.query import run_columns

    if not run_dirs:
        raise UserError("no runs given")
    runs = TokenRuns(pd.DataFrame())
    for run_dir in run_dirs:
        manifest = read_manifest(run_dir)
        kind = manifest.get("kind_of_run")
        if kind not in ("sweep", "implicit"):
            raise UserError(f"{run_dir} is not a sweep run (kind_of_run {kind!r}); token analyses need sweeps")
        columns = run_columns(run_dir)
        missing = [c for c in SWEEP_COLUMNS if c not in columns]
        if missing:
            raise UserError(f"{run_dir} lacks sweep columns {', '.join(missing)}")
        for prompt in manifest.get("prompts") or []:
            if not isinstance(prompt, dict) or prompt.get("id") is None:
                continue
            if prompt.get("framing"):
                runs.framings[str(prompt["id"])] = normalise_framing(str(prompt["framing"]))
            if prompt.get("scope") and prompt.get("phrasing"):
                runs.framing_match[str(prompt["id"])] = (str(prompt["scope"]), str(prompt["phrasing"]))
    return runs


def analyze_token_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    k: int = 20,
    seed: int = 0,
    framing_overrides: Mapping[str, str] | None = None,
    n_resamples: int = 1000,
    figures: bool = True,
    step: Callable[[str], None] | None = None,
    all_framing_pairs: bool = False,
) -> TokenReport:
    """Analyse sweep runs as `analyze_tokens` does, reading them through DuckDB; `framing_overrides` take
    precedence over run.json.

    Positive and negative prompts whose run.json gives a scope and a phrasing are paired only with prompts of
    the same scope and phrasing (value54: "best thing ever" with "worst thing ever"), unless
    `all_framing_pairs`. The runs are never loaded whole: aggregates and joins run in SQL and the other
    analyses see one model x prompt at a time (`streamed`), so memory stays bounded by one model's vocabulary
    whatever the number of models and prompts; the tables equal those of `analyze_tokens` on the loaded runs.
    """
    from rewardlens.runs.query import SweepRows

    runs = _run_metadata(run_dirs)
    with SweepRows(run_dirs) as rows:
        overrides = dict(framing_overrides or {})
        prompt_ids = set(rows.prompt_ids())
        unknown = sorted(set(overrides) - prompt_ids)
        if unknown:
            raise UserError(f"--framing names prompt id(s) no run has: {', '.join(unknown)}")
        framings = {**runs.framings, **overrides}
        framings = {p: f for p, f in framings.items() if p in prompt_ids}
        return _analyze_rows(
            rows,
            out_dir,
            k=k,
            seed=seed,
            framings=framings,
            n_resamples=n_resamples,
            figures=figures,
            step=step,
            framing_match=None if all_framing_pairs else runs.framing_match,
            prompt_ids=prompt_ids,
        )


def _analyze_rows(
    rows: SweepRows,
    out_dir: str | os.PathLike[str],
    *,
    k: int,
    seed: int,
    framings: Mapping[str, str],
    n_resamples: int,
    figures: bool,
    step: Callable[[str], None] | None,
    framing_match: Mapping[str, Hashable] | None,
    prompt_ids: set[str],
) -> TokenReport:
    """`analyze_tokens` over `SweepRows`: the same checks, tables, figures and notes, in the same order."""
    from rewardlens.report import token_plots

    if k < 1:
        raise UserError(f"--k must be at least 1, got {k}")
    if n_resamples < 0:
        raise UserError(f"--resamples must not be negative, got {n_resamples}")
    if rows.count() == 0:
        raise UserError("token analyses: the runs hold no rows")
    announce = step or (lambda name: None)
    framed = {"positive", "negative"} <= set(framings.values())
    pairs = framing_pairs(framings, prompt_ids, framing_match) if framed else None
    identity_terms = load_identity_terms()

    announce("top and bottom tokens")
    # The one pass over every row; it also refuses overlapping runs, so it runs before anything is written.
    results = group_analyses(
        rows,
        k=k,
        seed=seed,
        n_resamples=n_resamples,
        framing_pairs=pairs,
        identity_terms=identity_terms,
        figures=figures,
    )
    report = TokenReport(Path(out_dir))
    try:
        report.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output directory {out_dir}: {err.strerror or err}") from err
    _write(report, "top_bottom.csv", results.top_bottom)

    announce("moments")
    _write(report, "moments.csv", results.moments)
    if results.histograms is not None:
        path = report.out_dir / "histograms.png"
        report.files.append(token_plots.plot_score_histograms(results.histograms, results.moments, path))

    announce("agreement")
    _streamed_agreement(rows, results, report, figures)

    announce("framing")
    if results.framing is not None:
        _write(report, "framing.csv", results.framing[0])
        _write(report, "framing_movers.csv", results.framing[1])
    else:
        report.notes.append("framing skipped: no prompt is framed both positive and negative (use --framing)")

    announce("frequency")
    if results.features is None:
        report.notes.append("frequency skipped: the runs have no is_word column")
    else:
        _write_frequency(report, results.features, figures)

    announce("identity terms")
    _write(report, "identity.csv", results.identity)
    _write(report, "identity_groups.csv", results.identity_groups)
    if results.identity.empty:
        report.notes.append("identity: no token decodes to an identity term")
    elif figures:
        report.files.append(token_plots.plot_identity_percentiles(results.identity, report.out_dir / "identity.png"))
    return report


def _streamed_agreement(rows: SweepRows, results: GroupResults, report: TokenReport, figures: bool) -> None:
    """`_agreement` with the vocabulary gathered by the group stream and one prompt's aligned scores read at a
    time."""
    models = rows.models()
    if len(models) < 2:
        report.notes.append(f"agreement skipped: it needs at least 2 models, the runs hold {len(models)}")
        return
    vocabulary = results.vocabulary
    report.alignment = alignment_table(vocabulary)
    _write(report, "alignment.csv", report.alignment)
    shared = shared_tokens(vocabulary)
    if shared.empty:
        raise UserError(f"models {', '.join(models)} share no token text; agreement is undefined")
    index = {model: i for i, model in enumerate(models)}
    n_texts = int(shared["code"].max()) + 1
    rows.set_aligned_tokens(shared[["model", "token_id", "code"]])
    records: list[dict[str, object]] = []
    for prompt_id in sorted(rows.prompt_ids()):
        aligned = rows.aligned_scores(prompt_id)
        if aligned.empty:
            continue
        matrix = np.full((len(models), n_texts), np.nan)
        matrix[aligned["model"].map(index).to_numpy(), aligned["code"].to_numpy()] = aligned["score"].to_numpy()
        records.extend(agreement_of_prompt(prompt_id, matrix, models))
    pairs = pd.DataFrame.from_records(records, columns=AGREEMENT_COLUMNS)
    _agreement_outputs(pairs, report, figures)
