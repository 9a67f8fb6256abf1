"""The audit's self-contained HTML report: one file, figures embedded as base64 PNG, no scripts."""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

TOP_K = 15

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.tokens { display: flex; gap: 1.5em; flex-wrap: wrap; } .note { color: #8a5300; }
code { background: #f5f5f5; padding: 0 3px; } img { max-width: 100%; }
"""


def write_report(
    path: Path, audits: Sequence[Any], value_reports: Mapping[str, Any], extra_html: str = ""
) -> Path:
    """Write `path` from the audited models (runs on disk), the value analyses and further HTML sections."""
    from rewardlens.runs import load_run, read_manifest

    parts = [f"<h1>rewardlens audit</h1><p>{_escape(_now())} &middot; {len(audits)} model(s)</p>"]
    parts.append("<h2>Models</h2>" + _models_table(audits, read_manifest))
    for audit in audits:
        sweep = load_run(audit.sweep_dir)
        parts.append(f"<h2>Optimal and pessimal tokens: {_escape(audit.name)}</h2>")
        parts.append(_tokens_section(sweep, read_manifest(audit.sweep_dir)))
    for lexicon, report in value_reports.items():
        parts.append(f"<h2>Value bias: {_escape(lexicon)}</h2>")
        parts.append(_values_section(report))
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
            f"{lexicon}: {read_manifest(path).get('rows', '?')} rows"
            for lexicon, path in audit.word_dirs.items()
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
    from rewardlens.analysis.tokens.top_bottom import top_bottom

    if sweep.empty:
        return "<p>The sweep holds no rows.</p>"
    texts = {p["id"]: p["text"] for p in manifest.get("prompts", [])}
    ranked = top_bottom(sweep, k=TOP_K)
    blocks = []
    for prompt_id, group in ranked.groupby("prompt_id", sort=False):
        columns = []
        for end in ("top", "bottom"):
            chosen = group[group["end"] == end]
            rows = [
                [int(r.rank), repr(str(r.text)), f"{r.score:.4g}"] for r in chosen.itertuples(index=False)
            ]
            columns.append(f"<div><b>{end} {TOP_K}</b>{_table(['#', 'token', 'score'], rows)}</div>")
        blocks.append(
            f"<h3>{_escape(texts.get(str(prompt_id), prompt_id))} <small>({_escape(prompt_id)})</small></h3>"
            f"<div class='tokens'>{''.join(columns)}</div>"
        )
    return "".join(blocks)


def _values_section(report: Any) -> str:
    analysis = report.analysis
    png = report.files.get("values.png")
    parts = []
    if png is not None and Path(png).is_file():
        parts.append(_png_img(Path(png), "value bias panels"))
    parts.extend(f"<p class='note'>note: {_escape(note)}</p>" for note in analysis.notes)
    parts.append("<h3>Mean over models of the median rank (1 = best)</h3>")
    parts.append(_summary_table(analysis.summary))
    tests = analysis.tests
    if not tests.empty:
        shown = tests[tests["unit"] != "model"]
        keys = ["framing", "category"] if analysis.compare == "families" else ["model", "framing"]
        parts.append(f"<h3>Permutation tests ({_escape(analysis.compare)}, Bonferroni-adjusted)</h3>")
        parts.append(
            _table(
                [*keys, "a", "b", "mean a", "mean b", "t", "p adj.", ""],
                [
                    [
                        *(getattr(r, k) for k in keys),
                        r.group_a,
                        r.group_b,
                        f"{r.mean_a:.1f}",
                        f"{r.mean_b:.1f}",
                        f"{r.t:.2f}",
                        f"{r.p_bonferroni:.3g}",
                        r.significance,
                    ]
                    for r in shown.itertuples(index=False)
                ],
            )
        )
    parts.append(f"<p>Tables and figures: <code>{_escape(str(report.out))}</code></p>")
    return "".join(parts)


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
    """A report section from the files an `analyze values` run left in `directory` (figure and summary)."""
    parts = [f"<h2>{_escape(title)}</h2>"]
    png = directory / "values.png"
    if png.is_file():
        parts.append(_png_img(png, title))
    summary_path = directory / "summary.csv"
    if summary_path.is_file():
        parts.append(_summary_table(pd.read_csv(summary_path)))
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


__all__ = ["replace_report_section", "value_dir_html", "write_report"]
