"""The audit's self-contained HTML report: one file, figures embedded as base64 PNG, no scripts."""

from __future__ import annotations

import base64
import datetime as dt
import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rewardlens.analysis.conclusions import FRAMING_DIFFERENCE, WITHIN_MODEL
from rewardlens.analysis.tokens.top_bottom import top_bottom
from rewardlens.runs import load_run, read_manifest

TOP_K = 15
CONCLUSION_ROWS = 60  # the rest are in conclusions.csv
MAX_CONTRASTS_IN_WORDS = 3  # more category pairs (MFD: 45) are counted, not listed, in the sentences
ALPHA = 0.05
MAX_CATEGORY_COLUMNS = 4  # more categories (MFD: 10) are in model_medians.csv; the table keeps the contrasts

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.tokens { display: flex; gap: 1.5em; flex-wrap: wrap; } .note { color: #8a5300; }
code { background: #f5f5f5; padding: 0 3px; } img { max-width: 100%; }
.conclusions li { margin: .3em 0; } .conclusions table { width: 100%; font-size: .75em; }
.conclusions td, .conclusions th { overflow-wrap: break-word; } .wide { overflow-x: auto; }
.conclusions td:nth-child(2), .conclusions td:nth-child(10) { overflow-wrap: anywhere; }
"""


def write_report(
    path: Path,
    audits: Sequence[Any],
    value_reports: Mapping[str, Any],
    extra_html: str = "",
    published: Mapping[str, Any] | None = None,
) -> Path:
    """Write `path` from the audited models (runs on disk), the value analyses and further HTML sections.

    `published` maps a lexicon to its `rewardlens.published.BesidePublished` (the local models analysed beside
    the ten published RMs); each gets the section "Beside the ten published reward models".
    """

    parts = [f"<h1>rewardlens audit</h1><p>{_escape(_now())} &middot; {len(audits)} model(s)</p>"]
    parts.append("<h2>Models</h2>" + _models_table(audits, read_manifest))
    for audit in audits:
        sweep = load_run(audit.sweep_dir)
        parts.append(f"<h2>Optimal and pessimal tokens: {_escape(audit.name)}</h2>")
        parts.append(_tokens_section(sweep, read_manifest(audit.sweep_dir)))
    for lexicon, report in value_reports.items():
        parts.append(f"<h2>Value bias: {_escape(lexicon)}</h2>")
        parts.append(_values_section(report))
    for beside in (published or {}).values():
        parts.append(beside_published_html(beside))
    if extra_html:
        parts.append(extra_html)
    document = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>rewardlens audit</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, document)
    return path


def _write_atomically(path: Path, document: str) -> None:
    """Write beside `path`, then rename: a reader never sees half a report."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(document, encoding="utf-8")
    temporary.replace(path)


def _png_img(png: Path, alt: str) -> str:
    """The PNG inlined as base64, so that the report is one self-contained file."""
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    return f"<img alt='{_escape(alt)}' src='data:image/png;base64,{encoded}'>"


def _summary_table(summary: pd.DataFrame) -> str:
    """The value analysis's summary: mean over models of the median rank per framing x category x family."""
    rows = [
        [r.framing, r.category, r.family, f"{r.mean_median_rank:.1f}", r.n_models]
        for r in summary.itertuples(index=False)
    ]
    return _table(["framing", "category", "family", "mean median rank", "models"], rows)


def _models_table(audits: Sequence[Any], read_manifest: Any) -> str:
    header = ["model", "spec", "kind", "dtype", "device", "sweep rows", "sweep s", "word runs", "versions"]
    rows = []
    for audit in audits:
        sweep = read_manifest(audit.sweep_dir)
        versions = (sweep.get("scorer") or {}).get("versions") or {}
        words = ", ".join(
            f"{lexicon}: {read_manifest(path).get('rows', '?')} rows" for lexicon, path in audit.word_dirs.items()
        )
        rows.append(
            [
                audit.name,
                audit.spec,
                sweep.get("kind"),
                sweep.get("dtype"),
                sweep.get("device"),
                sweep.get("rows"),
                sweep.get("scoring_seconds"),
                words,
                ", ".join(f"{k} {v}" for k, v in versions.items()),
            ]
        )
    definition = ""
    if audits:
        first = read_manifest(audits[0].sweep_dir)
        definition = f"<p>Sweep score: <code>{_escape(first.get('score_definition', ''))}</code></p>"
    return _table(header, rows) + definition


def _tokens_section(sweep: pd.DataFrame, manifest: Mapping[str, Any]) -> str:

    if sweep.empty:
        return "<p>The sweep holds no rows.</p>"
    texts = {p["id"]: p["text"] for p in manifest.get("prompts", [])}
    ranked = top_bottom(sweep, k=TOP_K)
    blocks = []
    for prompt_id, group in ranked.groupby("prompt_id", sort=False):
        columns = []
        for end in ("top", "bottom"):
            chosen = group[group["end"] == end]
            rows = [[int(r.rank), repr(str(r.text)), f"{r.score:.4g}"] for r in chosen.itertuples(index=False)]
            columns.append(f"<div><b>{end} {TOP_K}</b>{_table(['#', 'token', 'score'], rows)}</div>")
        blocks.append(
            f"<h3>{_escape(texts.get(str(prompt_id), prompt_id))} <small>({_escape(prompt_id)})</small></h3>"
            f"<div class='tokens'>{''.join(columns)}</div>"
        )
    return "".join(blocks)


def _values_section(report: Any) -> str:
    analysis = report.analysis
    png = report.files.get("values.png")
    parts = [_conclusions_html(analysis.conclusions)]
    if png is not None and Path(png).is_file():
        parts.append(_png_img(Path(png), "value bias panels"))
    parts.extend(f"<p class='note'>note: {_escape(note)}</p>" for note in analysis.notes)
    parts.append("<h3>Mean over models of the median rank (1 = best)</h3>")
    parts.append(_summary_table(analysis.summary))
    parts.append(f"<p>Tables and figures: <code>{_escape(str(report.out))}</code></p>")
    return "".join(parts)


def beside_published_html(beside: Any) -> str:
    """The section of one lexicon's `BesidePublished`: the local models' contrasts beside the ten's (sentences,
    figure, per-model table), then the family analysis over the published models with what each claim licenses."""
    analysis = beside.report.analysis
    conclusions = analysis.conclusions
    local = list(beside.local_models)
    within = conclusions[conclusions["claim"] == WITHIN_MODEL]
    n_words = analysis.ranked.drop_duplicates(["model", "word"]).groupby("model")["word"].size()
    sizes = pd.Series(beside.report.families).loc[list(beside.published_models)].value_counts()
    parts = [
        f"<h2>Beside the ten published reward models: {_escape(analysis.lexicon)}</h2>",
        "<p>The local model(s) "
        + ", ".join(f"<b>{_escape(model)}</b>" for model in local)
        + f" scored the words of <code>{_escape(analysis.lexicon)}</code> under the same 54 value prompts as the ten "
        "reward models of Christian et al. (2026), whose published scores are bundled "
        f"(<code>{_escape(beside.bundle)}</code>: "
        + ", ".join(f"{int(count)} {_escape(family)}" for family, count in sizes.sort_index().items())
        + f"). Every model ranks the same {int(n_words.min()) if len(n_words) else 0} words within each prompt. "
        "A local model belongs to no family unless one was given: it is set beside the ten, and the family "
        "analysis below is computed over the models that have a family.</p>",
    ]
    sentences = _beside_sentences(within, local, beside.report.families)
    if sentences:
        parts.append("<ul>" + "".join(f"<li>{_escape(sentence)}</li>" for sentence in sentences) + "</ul>")
    figure = Path(beside.figure)
    if figure.is_file():
        parts.append(_png_img(figure, "each model's category contrast beside the ten published reward models"))
    parts.append("<h3>Each model: median rank per category (1 = best) and its within-model contrast</h3>")
    parts.append(f"<div class='wide'>{_beside_table(analysis.model_medians, within, beside)}</div>")
    parts.append(_family_analysis_html(conclusions, set(beside.published_models)))
    parts.extend(f"<p class='note'>note: {_escape(note)}</p>" for note in beside.notes)
    parts.append(f"<p>Tables and figures: <code>{_escape(str(beside.report.out))}</code></p>")
    return "<section class='conclusions'>" + "".join(parts) + "</section>"


def _beside_sentences(within: pd.DataFrame, local: Sequence[str], families: Mapping[str, str]) -> list[str]:
    """Per local model, contrast and framing: its estimate, then where the published models' estimates lie."""
    sentences = []
    others = within[~within["scope"].isin(local)]
    for row in within[within["scope"].isin(local)].itertuples(index=False):
        same = others[(others["contrast"] == row.contrast) & (others["framing"] == row.framing)]
        if same.empty:
            continue
        by_family = same.assign(family=same["scope"].map(families)).groupby("family")["estimate"].mean()
        means = ", ".join(f"{family} mean {_number(value)}" for family, value in by_family.items())
        low, high = same["estimate"].min(), same["estimate"].max()
        inside = "within" if low <= row.estimate <= high else "outside"
        sentences.append(
            f"{row.scope}, {row.contrast} under {row.framing} framing: {_number(row.estimate)} percentile points "
            f"(95% CI {_number(row.ci_low)} to {_number(row.ci_high)}; Holm p = {_p(row.p_adjusted)}, unit word). "
            f"The {len(same)} others range from {_number(low)} to {_number(high)} ({means}): {inside} their range. "
            "A description, not a test: one model is no sample of a family."
        )
    return sentences


def _beside_table(medians: pd.DataFrame, within: pd.DataFrame, beside: Any) -> str:
    """One row per model x framing, local models first: median ranks (when few categories), then contrasts."""
    families: Mapping[str, str] = beside.report.families
    local = list(beside.local_models)
    labels = {**beside.published_models, **{model: f"{model} (local)" for model in local}}
    few = medians["category"].nunique() <= MAX_CATEGORY_COLUMNS
    categories = sorted(medians["category"].unique()) if few else []
    contrasts = list(dict.fromkeys(within["contrast"]))
    ranks = medians.pivot_table(index=["model", "framing"], columns="category", values="median_rank")
    cells = within.set_index(["scope", "framing", "contrast"])
    others = sorted((m for m in families if m not in local), key=lambda m: (families[m], labels.get(m, m)))
    rows = []
    for model in [*local, *others]:
        for framing in [f for f in ("positive", "negative") if (model, f) in ranks.index]:
            row: list[Any] = [labels.get(model, model), families[model], framing]
            row += [f"{ranks.loc[(model, framing), category]:.1f}" for category in categories]
            row += [_contrast_cell(cells, (model, framing, contrast)) for contrast in contrasts]
            rows.append(row)
    header = ["model", "family", "framing", *categories, *(f"{c} (pct points, Holm p)" for c in contrasts)]
    return _table(header, rows)


def _contrast_cell(cells: pd.DataFrame, key: tuple[str, str, str]) -> str:
    if key not in cells.index:
        return ""
    cell = cells.loc[key]
    interval = f"[{_number(cell['ci_low'])}, {_number(cell['ci_high'])}]"
    return f"{_number(cell['estimate'])} {interval} p={_p(cell['p_adjusted'])}"


def _family_analysis_html(conclusions: pd.DataFrame, published: set[str]) -> str:
    """The family rows (scope `all`): sentences on what they license, then the table with their units."""
    family = conclusions[conclusions["scope"] == "all"]
    if family.empty:
        return "<p class='note'>No family-level conclusion: fewer than 2 models in some family.</p>"
    # The sentences count models from the within-model rows: only the published ones carry families here.
    ten = pd.concat([family, conclusions[conclusions["scope"].isin(published)]])
    sentences = [*_across_model_words(ten), *_mixed_model_words(ten)]
    rows = [
        [
            r.claim,
            r.framing,
            r.contrast,
            f"{_number(r.estimate)} [{_number(r.ci_low)}, {_number(r.ci_high)}]",
            r.unit,
            r.n_units,
            r.test,
            _p(r.p_value),
            r.generalizes_to,
            "" if pd.isna(r.note) else r.note,
        ]
        for r in family.itertuples(index=False)
    ]
    header = ["claim", "framing", "contrast", "estimate [95% CI]", "unit", "n_units", "test", "p"]
    header += ["generalizes_to", "note"]
    return (
        "<h3>The family analysis over the published models, each claim at the unit it is tested at</h3>"
        + ("<ul>" + "".join(f"<li>{_escape(s)}</li>" for s in sentences) + "</ul>" if sentences else "")
        + f"<div class='wide'>{_table(header, rows)}</div>"
    )


def _conclusions_html(conclusions: pd.DataFrame) -> str:
    """The conclusions in words, then their table: what each claim generalizes to, tested at which unit."""
    if conclusions.empty:
        return ""
    sentences = "".join(f"<li>{_escape(sentence)}</li>" for sentence in conclusions_in_words(conclusions))
    # Claims about families first: they are the ones read as being about reward models in general.
    ordered = pd.concat([conclusions[conclusions["scope"] == "all"], conclusions[conclusions["scope"] != "all"]])
    shown = ordered.head(CONCLUSION_ROWS)
    rows = [
        [
            r.claim,
            r.scope,
            r.framing,
            f"{_number(r.estimate)} [{_number(r.ci_low)}, {_number(r.ci_high)}]",
            r.unit,
            r.n_units,
            r.test,
            _p(r.p_value),
            _p(r.p_adjusted),
            r.generalizes_to,
            "" if pd.isna(r.note) else r.note,
        ]
        for r in shown.itertuples(index=False)
    ]
    header = [
        "claim",
        "scope",
        "framing",
        "estimate [95% CI]",
        "unit",
        "n_units",
        "test",
        "p",
        "p_adjusted",
        "generalizes_to",
        "note",
    ]
    more = (
        f"<p>first {CONCLUSION_ROWS} of {len(conclusions)} conclusions; all in conclusions.csv</p>"
        if len(conclusions) > CONCLUSION_ROWS
        else ""
    )
    return (
        "<section class='conclusions'><h3>Conclusions, each at the unit it is tested at</h3>"
        f"<ul>{sentences}</ul>"
        "<p>Scales: percentile rank within model x prompt for the word and model units (lower = better); "
        "median rank for the mixed models. p_adjusted: Holm over the rows of one claim, unit and test.</p>"
        f"<div class='wide'>{_table(header, rows)}</div>{more}</section>"
    )


def conclusions_in_words(conclusions: pd.DataFrame) -> list[str]:
    """One sentence per kind of claim: within each model (unit word), across models (unit model), and the
    mixed models (the published one at unit prompt), each saying what it licenses."""
    sentences = [
        *_within_model_words(conclusions[conclusions["unit"] == "word"]),
        *_across_model_words(conclusions),
        *_mixed_model_words(conclusions),
    ]
    return [sentence for sentence in sentences if sentence]


def _within_model_words(within: pd.DataFrame) -> list[str]:
    within = within[within["p_adjusted"].notna()]
    if within.empty:
        return []
    lead = (
        "Within each model (unit: word; category labels permuted across the model's words; generalizes to new "
        "words of these categories, for that model): "
    )
    if within["contrast"].nunique() > MAX_CONTRASTS_IN_WORDS:
        significant = int((within["p_adjusted"] < ALPHA).sum())
        return [
            lead + f"{significant} of {len(within)} model x framing x category-pair contrasts differ "
            f"(Holm p < {ALPHA}); see the table."
        ]
    clauses = []
    for (contrast, framing), rows in within.groupby(["contrast", "framing"], sort=False):
        first, second = (part.strip() for part in str(contrast).split(" - ", 1))
        significant = rows[rows["p_adjusted"] < ALPHA]
        clause = f"{contrast} differs in {len(significant)} of {len(rows)} models under {framing} framing"
        if len(significant):
            better_first = int((significant["estimate"] < 0).sum())  # lower percentile = ranked better
            clause += f" ({first} ranked better in {better_first}, {second} in {len(significant) - better_first})"
        clauses.append(clause)
    return [lead + "; ".join(clauses) + f" (Holm p < {ALPHA})."]


def _across_model_words(conclusions: pd.DataFrame) -> list[str]:
    across = conclusions[(conclusions["unit"] == "model") & conclusions["test"].str.startswith("permutation")]
    if across.empty:
        return []
    if len(across) > MAX_CONTRASTS_IN_WORDS * 3:
        significant = int((across["p_value"] < ALPHA).sum())
        return [
            f"Across models (unit: model; family labels permuted across models): {significant} of {len(across)} "
            f"family differences have p < {ALPHA}; see the table."
        ]
    sentences = []
    for row in across.itertuples(index=False):
        families, contrast = str(row.contrast).split(": ", 1)
        sizes = str(row.note).split(":", 1)[0] if isinstance(row.note, str) and " vs " in row.note else ""
        how = _permutation_kind(str(row.test))
        where = "in how the framing changes" if row.framing == FRAMING_DIFFERENCE else f"under {row.framing} framing"
        size = ", ".join(part for part in (sizes, how) if part)
        verdict = _verdict(row.p_value, row.note)
        sentences.append(
            f"Across models (unit: model, {size}) the {families} difference in {contrast} {where} is "
            f"{_number(row.estimate)} percentile points (95% CI {_number(row.ci_low)} to {_number(row.ci_high)}): "
            f"{verdict}; {'established' if row.p_value < ALPHA else 'not established'} for {row.generalizes_to}."
        )
    return sentences


def _permutation_kind(test: str) -> str:
    exact = re.search(r"exact over all (\d+) relabellings", test)
    if exact:
        return f"exact permutation over {exact.group(1)} relabellings"
    drawn = re.search(r"(\d+) random relabellings", test)
    return f"permutation over {drawn.group(1)} random relabellings" if drawn else "permutation"


def _verdict(p_value: float, note: Any) -> str:
    if isinstance(note, str) and "can reach" in note:
        floor = note.split(";", 1)[0].split(": ", 1)[-1]
        return f"not testable at this unit ({floor}; p = {_p(p_value)})"
    return f"{'significant' if p_value < ALPHA else 'not significant'} (p = {_p(p_value)})"


def _mixed_model_words(conclusions: pd.DataFrame) -> list[str]:
    mixed = conclusions[conclusions["test"].str.startswith("linear mixed model")]
    three_way = mixed[mixed["framing"] == "interaction"]
    rows = three_way if not three_way.empty else mixed
    n_models = conclusions.loc[conclusions["unit"] == "word", "scope"].nunique()
    sentences = []
    for structure, group in rows.groupby(rows["claim"].str.extract(r"\((.*)\)$")[0], sort=False):
        best = group.loc[group["p_value"].idxmin()]
        term = "the family x category x framing term" if len(group) == 1 else f"the smallest of {len(group)} terms"
        if best["unit"] == "prompt":
            cells = int(best["n_units"])
            per_model = f"{cells // n_models} prompts" if n_models and cells % n_models == 0 else "prompts"
            name = "random-intercept" if str(structure).startswith("random intercept") else str(structure)
            sentences.append(
                f"The published {name} model (unit: prompt, treats each model's {per_model} as independent; "
                f"{cells} model x prompt cells) gives p = {_p(best['p_value'])} for {term} — not evidence about "
                "new reward models."
            )
        else:
            sentences.append(
                f"The same fixed effects with {structure} (unit: model, {int(best['n_units'])} models) give "
                f"p = {_p(best['p_value'])} for {term}."
            )
    return sentences


def _p(value: Any) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    number = float(value)
    return f"{number:.0e}" if 0 < number < 1e-3 else f"{number:.2g}"


def _number(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return f"<td class='num'>{_escape(value)}</td>" if numeric else f"<td>{_escape(value)}</td>"


def _escape(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def value_dir_html(title: str, directory: Path) -> str:
    """A report section from the files an `analyze values` run left in `directory` (conclusions, figure, summary)."""
    parts = [f"<h2>{_escape(title)}</h2>"]
    conclusions_path = directory / "conclusions.csv"
    if conclusions_path.is_file():
        parts.append(_conclusions_html(pd.read_csv(conclusions_path)))
    png = directory / "values.png"
    if png.is_file():
        parts.append(_png_img(png, title))
    summary_path = directory / "summary.csv"
    if summary_path.is_file():
        parts.append(_summary_table(pd.read_csv(summary_path)))
    return "".join(parts)


def human_section_html(directory: Path, reference: str) -> str:
    """The "vs human preferences" section from the files `analyze human` left in `directory`: Kendall tau-b of
    each model with the human rating per prompt (bootstrap CI over responses), the family rows, the heatmap."""
    title = f"Reward models vs human preferences ({reference})"
    parts = [f"<h2>{_escape(title)}</h2>"]
    table_path = directory / "human.csv"
    if table_path.is_file():
        table = pd.read_csv(table_path)
        parts.append(
            "<p>Kendall tau-b of each model's scores with the human rating of the same responses, per prompt; "
            "95% percentile bootstrap CI over responses (unit: responses).</p>"
        )
        rows = [
            [
                row.prompt_id,
                row.model,
                row.family if isinstance(row.family, str) else "",
                int(row.n),
                f"{row.kendall_tau:.3f}",
                f"({row.ci_low:.3f}, {row.ci_high:.3f})",
                f"{row.spearman:.3f}",
                _p(row.p_value),
            ]
            for row in table.itertuples(index=False)
        ]
        header = ["prompt", "model", "family", "n", "tau-b", "95% CI", "spearman", "p"]
        parts.append(_table(header, rows))
    conclusions_path = directory / "conclusions.csv"
    if conclusions_path.is_file():
        conclusions = pd.read_csv(conclusions_path)
        across = conclusions[conclusions["unit"] == "models"]
        if not across.empty:
            parts.append("<h3>Families compared across models (unit: models)</h3>")
            rows = [
                [
                    r.contrast,
                    r.framing,
                    f"{r.estimate:.3f}",
                    f"({r.ci_low:.3f}, {r.ci_high:.3f})",
                    _p(r.p_value),
                    r.note,
                ]
                for r in across.itertuples(index=False)
            ]
            parts.append(_table(["contrast", "prompt", "difference in tau", "95% CI", "p", "note"], rows))
    png = directory / "tau_heatmap.png"
    if png.is_file():
        parts.append(_png_img(png, title))
    return "".join(parts)


def replace_report_section(path: Path, name: str, section_html: str) -> None:
    """Put `section_html` into the report between markers named `name`, replacing an earlier copy
    (so a resumed job does not add it twice); written atomically like the report itself."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    document = path.read_text(encoding="utf-8")
    if start in document and end in document:
        before, rest = document.split(start, 1)
        document = before + rest.split(end, 1)[1]
    _write_atomically(path, document.replace("</body>", f"{start}{section_html}{end}</body>", 1))


__all__ = ["beside_published_html", "human_section_html", "replace_report_section", "value_dir_html", "write_report"]
