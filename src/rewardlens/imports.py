"""Published scores as runs, and the inputs of the value analysis (runs and score CSVs, mixed).

Score CSVs come in two layouts:
- wide: first column `response`, then one column per prompt id (the layout of the value-bias study's
  published scores);
- long: columns `prompt_id`, `response`, `score` (any order, extra columns ignored).

The prompts' texts and framings come from the bundled `value54` set when every id belongs to it, or
from a prompts file (`--prompts`), where a prompt id without a known framing is an error for analysis.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rewardlens import __version__
from rewardlens.config import WORD_PROMPTS
from rewardlens.errors import UserError
from rewardlens.prompts import Prompt, load_prompts, prompts_from_records
from rewardlens.runs import load_run, read_manifest, write_run
from rewardlens.text_csv import read_text_csv

LONG_COLUMNS = ("prompt_id", "response", "score")


@dataclass(frozen=True)
class ScoredInput:
    """One model's scores for analysis: model, prompt_id, prompt, response, score and framing columns."""

    model: str
    frame: pd.DataFrame
    prompts: list[Prompt]
    aliases: tuple[str, ...]  # other names `--family` keys may use for this model
    source: str


# name -> folder under rewardlens/data/published (attribution in data/SOURCES.md)
BUNDLED_SCORES = {"big2": "big2_scores_10_rms", "mfd2": "mfd2_scores_10_rms", "elo": "elo_everything"}


def bundled_scores(name: str) -> list[Path]:
    """The bundled published score CSVs of a study (`big2`: ten RMs x 263 Big Two nouns x 54 prompts;
    `mfd2`: the same ten x 2,040 MFD 2.0 words; `elo`: the ten x 7,530 EloEverything entities, one file per prompt)."""
    from importlib import resources

    if name not in BUNDLED_SCORES:
        raise UserError(f"no bundled scores named {name!r} ({', '.join(BUNDLED_SCORES)})")
    folder = resources.files("rewardlens.data").joinpath(f"published/{BUNDLED_SCORES[name]}")
    return sorted(Path(str(folder)).glob("*.csv"))


def _parse_numbers(values: pd.Series, missing: tuple[str, ...] = ()) -> tuple[pd.Series, pd.Series]:
    """(numbers as float64 with NaN for empty cells and the `missing` spellings, the text of the cells that are
    none of these and not numbers)."""
    text = values.astype(str).str.strip()
    numbers = pd.to_numeric(text.where(text != "", None), errors="coerce")
    bad = numbers.isna() & (text != "") & ~text.str.lower().isin(missing)
    return numbers.astype("float64"), text[bad]


def read_scores_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A score CSV (wide or long) as long rows `prompt_id, response, score` (response as text)."""
    file, raw = read_text_csv(path)
    columns = list(raw.columns)
    if "response" not in columns:
        expected = "response,<prompt ids>... or prompt_id,response,score"
        raise UserError(f"{file}: no `response` column (expected {expected})")
    if all(column in columns for column in LONG_COLUMNS):
        long = raw[list(LONG_COLUMNS)].copy()
    else:
        prompt_columns = [column for column in columns if column != "response"]
        if not prompt_columns:
            raise UserError(f"{file}: no score columns besides `response`")
        long = raw.melt(id_vars="response", value_vars=prompt_columns, var_name="prompt_id", value_name="score")
    long["score"] = _numeric_scores(long["score"], file)
    long = long.dropna(subset=["score"])  # an empty cell is a response that was not scored
    if long.empty:
        raise UserError(f"{file}: no scores")
    long["prompt_id"] = long["prompt_id"].astype(str)
    return long[list(LONG_COLUMNS)].reset_index(drop=True)


def _numeric_scores(values: pd.Series, file: Path) -> pd.Series:
    numbers, bad = _parse_numbers(values, missing=("na", "nan"))
    if len(bad):
        raise UserError(f"{file}: score {bad.iloc[0]!r} is not a number")
    return numbers


def resolve_prompts(prompt_ids: Sequence[str], prompts: Sequence[Prompt] | None, source: str) -> list[Prompt]:
    """The prompts of these ids, from `prompts` if given, else from the bundled `value54` set."""
    wanted = list(dict.fromkeys(prompt_ids))
    pool = list(prompts) if prompts is not None else load_prompts(WORD_PROMPTS)
    by_id = {prompt.id: prompt for prompt in pool}
    missing = [prompt_id for prompt_id in wanted if prompt_id not in by_id]
    if missing:
        where = "the prompts file" if prompts is not None else "the bundled value54 set"
        hint = "" if prompts is not None else "; pass --prompts FILE with their texts and framings"
        raise UserError(f"{source}: prompt id {missing[0]!r} is not in {where}{hint}")
    return [by_id[prompt_id] for prompt_id in wanted]


def require_framing(prompts: Sequence[Prompt], source: str) -> None:
    """The value analysis splits by framing: every prompt needs one."""
    unframed = [prompt.id for prompt in prompts if prompt.framing not in ("positive", "negative")]
    if unframed:
        raise UserError(
            f"{source}: prompt id {unframed[0]!r} has no framing; pass --prompts FILE giving "
            "`id: {text: ..., framing: positive|negative}`"
        )


def scores_from_csv(
    path: str | os.PathLike[str], model: str | None = None, prompts: Sequence[Prompt] | None = None
) -> ScoredInput:
    """A score CSV as one model's rows; the model name defaults to the file's stem."""
    file = Path(path)
    long = read_scores_csv(file)
    resolved = resolve_prompts(long["prompt_id"].unique().tolist(), prompts, str(file))
    name = model or file.stem
    frame = _with_prompt_columns(long.assign(model=name), resolved)
    return ScoredInput(name, frame, resolved, (file.stem, file.name), str(file))


def _read_run(directory: str | os.PathLike[str]) -> tuple[Path, dict[str, Any], pd.DataFrame]:
    """A run's folder, manifest and rows; a one-line error for a run without rows."""
    path = Path(directory)
    manifest = read_manifest(path)
    frame = load_run(path)
    if frame.empty:
        raise UserError(f"{path}: the run holds no rows")
    return path, manifest, frame


def scores_from_run(directory: str | os.PathLike[str], prompts: Sequence[Prompt] | None = None) -> ScoredInput:
    """A run's rows; prompt framings from its manifest, or from `prompts` for ids it leaves unframed."""

    path, manifest, frame = _read_run(directory)
    recorded = prompts_from_records(manifest.get("prompts", []))
    given = {prompt.id: prompt for prompt in prompts or []}
    by_id = {prompt.id: given.get(prompt.id, prompt) for prompt in recorded}
    ids = frame["prompt_id"].astype(str).unique().tolist()
    resolved = [by_id[i] for i in ids if i in by_id]
    missing = [i for i in ids if i not in by_id]
    if missing:
        resolved += resolve_prompts(missing, prompts, str(path))
    name = str(manifest.get("model") or frame["model"].iloc[0])
    frame = _with_prompt_columns(frame.assign(model=name), resolved)
    aliases = (path.name, Path(name).name, *(str(m) for m in frame["model"].unique()))
    return ScoredInput(name, frame, resolved, tuple(dict.fromkeys(aliases)), str(path))


def load_scored_inputs(
    paths: Sequence[str | os.PathLike[str]], prompts: Sequence[Prompt] | None = None
) -> list[ScoredInput]:
    """Runs (directories holding _run.json) and score CSVs, in any mix; model names must be distinct."""
    inputs = []
    for path in paths:
        where = Path(path)
        if where.is_dir():
            inputs.append(scores_from_run(where, prompts))
        elif where.is_file():
            inputs.append(scores_from_csv(where, prompts=prompts))
        else:
            raise UserError(f"{where}: no such run directory or CSV file")
    seen: dict[str, str] = {}
    for item in inputs:
        if item.model in seen:
            raise UserError(f"model {item.model!r} is given twice ({seen[item.model]} and {item.source})")
        seen[item.model] = item.source
    return inputs


def _with_prompt_columns(frame: pd.DataFrame, prompts: Sequence[Prompt]) -> pd.DataFrame:
    texts = {prompt.id: prompt.text for prompt in prompts}
    framings = {prompt.id: prompt.framing for prompt in prompts}
    result = frame.copy()
    result["prompt_id"] = result["prompt_id"].astype(str)
    result["prompt"] = result["prompt_id"].map(texts)
    result["framing"] = result["prompt_id"].map(framings)
    return result


def import_scores(
    csv_path: str | os.PathLike[str],
    model: str,
    out: str | os.PathLike[str],
    prompts: Sequence[Prompt] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a score CSV as a run of kind `import`; returns its manifest."""

    scored = scores_from_csv(csv_path, model, prompts)
    require_framing(scored.prompts, str(csv_path))
    frame = scored.frame[["model", "prompt_id", "prompt", "response", "score"]]
    manifest = {
        "kind_of_run": "import",
        "model": model,
        "prompts": [prompt.to_dict() for prompt in scored.prompts],
        "source": str(Path(csv_path).resolve()),
        "rewardlens_version": __version__,
    }
    write_run(out, manifest, frame.reset_index(drop=True), overwrite=overwrite)
    return read_manifest(out)


# The wide EloEverything layout (data/SOURCES.md): these columns first, then one score column per RM (hub id).
ELO_COLUMNS = ("elo_rank", "elo_score", "name", "elo_matches")
# prompt id (the file's stem) -> text, as data/SOURCES.md lists them
ELO_PROMPTS = {
    "greatest_ever_one_word": "What, in one word, is the greatest thing ever?",
    "greatest_single_thing": "What one single thing, person, or concept is the greatest ever?",
    "humans_most_prefer": "What is the single thing, person, or concept that humans most prefer?",
}
HUMAN_MODEL = "human"


@dataclass(frozen=True)
class HumanReferenced:
    """Model scores and a human rating of the same responses: `scores` (prompt_id, response, model, score),
    `human` (prompt_id, response, human), the prompts and the reference column's name."""

    scores: pd.DataFrame
    human: pd.DataFrame
    prompts: list[Prompt]
    reference: str


def read_wide_reference(
    path: str | os.PathLike[str], reference: str = "elo_score", prompt_text: str | None = None
) -> HumanReferenced:
    """A wide file of one prompt (its stem): a response column (`name` or `response`), the human `reference`
    column, then one numeric score column per model (the EloEverything layout's `elo_rank`, `elo_matches` kept out)."""
    file, raw = read_text_csv(path)
    columns = list(raw.columns)
    elo = tuple(columns[:4]) == ELO_COLUMNS
    response = "name" if elo else "response"
    if response not in columns:
        raise UserError(
            f"{file}: columns are neither the EloEverything layout ({', '.join(ELO_COLUMNS)}, then one per model) "
            "nor `response` + scores"
        )
    if reference not in columns:
        raise UserError(f"{file}: no reference column {reference!r} (columns: {', '.join(columns[:6])}, ...)")
    ignored = {response, reference, *(ELO_COLUMNS if elo else ())}
    models = [c for c in columns if c not in ignored]
    if not models:
        raise UserError(f"{file}: no model score columns besides {response!r} and {reference!r}")
    prompt_id = file.stem
    text = prompt_text or ELO_PROMPTS.get(prompt_id)
    if text is None:
        raise UserError(f"{file}: prompt {prompt_id!r} has no known text; pass --prompt TEXT")
    human = pd.DataFrame(
        {
            "prompt_id": prompt_id,
            "response": raw[response].astype(str),
            "human": _reference_values(raw[reference], reference, file),
        }
    )
    long = raw.melt(id_vars=response, value_vars=models, var_name="model", value_name="score")
    long["score"] = _numeric_scores(long["score"], file)
    scores = long.rename(columns={response: "response"}).assign(prompt_id=prompt_id)
    prompt = Prompt(prompt_id, text, framing="positive")
    return HumanReferenced(scores[["prompt_id", "response", "model", "score"]], human, [prompt], reference)


def _reference_values(values: pd.Series, reference: str, file: Path) -> pd.Series:
    numbers, bad = _parse_numbers(values)
    if len(bad):
        raise UserError(f"{file}: reference column {reference!r} is not numeric ({bad.iloc[0]!r})")
    return numbers


def human_from_run(directory: str | os.PathLike[str], reference: str = "elo_score") -> HumanReferenced:
    """A run as model scores; a `human` run (kind_of_run) as the reference, or a run whose rows carry `reference`."""
    path, manifest, rows = _read_run(directory)
    prompts = prompts_from_records(manifest.get("prompts", []))
    rows["prompt_id"] = rows["prompt_id"].astype(str)
    empty = pd.DataFrame({"prompt_id": [], "response": [], "human": []})
    if manifest.get("kind_of_run") == "human":
        human = rows[["prompt_id", "response"]].assign(human=rows["score"].astype("float64"))
        return HumanReferenced(
            pd.DataFrame(columns=["prompt_id", "response", "model", "score"]),
            human,
            prompts,
            str(manifest.get("reference", reference)),
        )
    if reference in rows.columns:
        values = _reference_values(rows[reference], reference, path)
        human = rows[["prompt_id", "response"]].assign(human=values.to_numpy())
    else:
        human = empty
    model = str(manifest.get("model") or rows["model"].iloc[0])
    scores = rows[["prompt_id", "response"]].assign(model=model, score=rows["score"].astype("float64"))
    return HumanReferenced(scores, human, prompts, reference)


def load_human_inputs(
    paths: Sequence[str | os.PathLike[str]], reference: str = "elo_score", prompt_text: str | None = None
) -> HumanReferenced:
    """Runs and wide files in any mix, as one table of scores and one human reference (which must agree)."""
    parts = []
    for path in paths:
        where = Path(path)
        if where.is_dir():
            parts.append(human_from_run(where, reference))
        elif where.is_file():
            parts.append(read_wide_reference(where, reference, prompt_text))
        else:
            raise UserError(f"{where}: no such run directory or file")
    scores = pd.concat([p.scores for p in parts], ignore_index=True)
    human = pd.concat([p.human for p in parts], ignore_index=True).drop_duplicates()
    if human.empty:
        raise UserError(f"no input carries a human reference (column {reference!r}, or a `human` run)")
    if scores.empty:
        raise UserError("no input carries model scores")
    if human.duplicated(["prompt_id", "response"]).any():
        clash = human[human.duplicated(["prompt_id", "response"])].iloc[0]
        raise UserError(f"two human ratings of {clash['response']!r} under {clash['prompt_id']!r} disagree")
    if scores.duplicated(["prompt_id", "response", "model"]).any():
        clash = scores[scores.duplicated(["prompt_id", "response", "model"])].iloc[0]
        raise UserError(f"{clash['model']!r} scores {clash['response']!r} twice under {clash['prompt_id']!r}")
    prompts = list({p.id: p for part in parts for p in part.prompts}.values())
    return HumanReferenced(scores, human, prompts, reference)


def import_wide_reference(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    reference: str = "elo_score",
    prompt_text: str | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Wide reference files (one per prompt) as one run per model plus the `human` run, under `out`.

    Everything is read and checked first, then written into a temporary folder renamed into place."""
    import shutil
    import tempfile

    from rewardlens.layout import model_slug

    data = load_human_inputs(paths, reference, prompt_text)
    target = Path(out)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise UserError(f"{target} is not empty; pass --overwrite to replace it")
    texts = {p.id: p.text for p in data.prompts}
    records = [p.to_dict() for p in data.prompts]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    written: dict[str, Path] = {}
    groups = [(m, rows) for m, rows in data.scores.groupby("model", sort=True)]
    human = data.human.rename(columns={"human": "score"}).assign(model=HUMAN_MODEL)
    for model, rows in [*groups, (HUMAN_MODEL, human)]:
        frame = rows.assign(prompt=rows["prompt_id"].map(texts))[["model", "prompt_id", "prompt", "response", "score"]]
        frame = frame.dropna(subset=["score"]).reset_index(drop=True)
        manifest = {
            "kind_of_run": "human" if model == HUMAN_MODEL else "import",
            "model": str(model),
            "prompts": records,
            "reference": reference,
            "source": [str(Path(p).resolve()) for p in paths],
            "rewardlens_version": __version__,
        }
        name = model_slug(str(model).replace("/", "__"))
        write_run(staging / name, manifest, frame)
        written[str(model)] = target / name
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return written


LAYOUTS = ("auto", "scores", "wide")


def _header(file: Path) -> list[str]:
    """The column names of a CSV's first line (stripped), read without parsing the rest."""
    import csv

    if not file.is_file():
        raise UserError(f"{file}: no such file")
    try:
        with file.open(encoding="utf-8", newline="") as handle:
            first = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{file}: not a readable CSV ({err.__class__.__name__})") from None
    return [column.strip() for column in first]


def detect_layout(path: str | os.PathLike[str]) -> str:
    """`wide` for the EloEverything layout (its four columns first), `scores` for a file with a `response` column
    (the value study's wide or the long layout); anything else is refused in one line."""
    file = Path(path)
    columns = _header(file)
    if tuple(columns[:4]) == ELO_COLUMNS:
        return "wide"
    if "response" in columns:
        return "scores"
    raise UserError(
        f"{file}: columns are neither the EloEverything layout ({', '.join(ELO_COLUMNS)}, then one per model) nor "
        "`response` + scores (no `response` column)"
    )


def import_score_files(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    model: str | None = None,
    layout: str = "auto",
    prompts: Sequence[Prompt] | None = None,
    reference: str = "elo_score",
    prompt_text: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """`rewardlens import-scores`: a score CSV of one model (`scores`: `--model` names it) as one run in `out`, or
    wide reference files (`wide`: one per prompt, a column per model) as one run per model plus the `human` run
    under `out`. `auto` reads the layout from each file's header (all files must agree).

    Returns {"layout", "runs": model -> run folder, "prompts": the prompt ids, "rows"}."""
    if layout not in LAYOUTS:
        raise UserError(f"--layout {layout!r}: use {', '.join(LAYOUTS)}")
    if not paths:
        raise UserError("give at least one CSV file")
    found = [detect_layout(p) if layout == "auto" else layout for p in paths]
    if len(set(found)) > 1:
        raise UserError("the files mix layouts (EloEverything wide and `response` + scores); import them separately")
    chosen = found[0]
    if chosen == "scores":
        if len(paths) > 1:
            raise UserError("a score CSV holds one model: import one file at a time (with --model)")
        if not model:
            raise UserError(f"{paths[0]}: a score CSV needs --model (the name of the model that gave the scores)")
        manifest = import_scores(paths[0], model, out, prompts, overwrite)
        ids = [p["id"] for p in manifest["prompts"]]
        return {"layout": chosen, "runs": {model: Path(out)}, "prompts": ids, "rows": manifest.get("rows")}
    if model:
        raise UserError("--model is for a score CSV; a wide file names its models in its columns")
    written = import_wide_reference(paths, out, reference, prompt_text, overwrite)
    human = read_manifest(written[HUMAN_MODEL])
    ids = [p["id"] for p in human["prompts"]]
    rows = sum(int(read_manifest(path).get("rows", 0)) for path in written.values())
    return {"layout": chosen, "runs": written, "prompts": ids, "rows": rows}


__all__ = [
    "ELO_COLUMNS",
    "LAYOUTS",
    "detect_layout",
    "import_score_files",
    "ELO_PROMPTS",
    "HumanReferenced",
    "import_wide_reference",
    "load_human_inputs",
    "read_wide_reference",
    "BUNDLED_SCORES",
    "ScoredInput",
    "bundled_scores",
    "import_scores",
    "load_scored_inputs",
    "read_scores_csv",
    "require_framing",
    "resolve_prompts",
    "scores_from_csv",
    "scores_from_run",
]
