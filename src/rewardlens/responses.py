"""A list of responses to score instead of a lexicon (`rewardlens words --responses FILE`).

Two layouts:
- a text file: one response per line, exactly as written (as `rewardlens score --responses-file` reads it);
  blank lines are skipped;
- a CSV (`.csv`): a `response` column, and any other columns kept as metadata, as text, in every row of the run
  (so a numeric column such as `elo_score` can serve `analyze human` as the human rating).

A response given twice is refused rather than deduplicated: the run's rows are joined on the response text (with
a human reference, with other runs), and two rows of one text would make that join ambiguous.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rewardlens.errors import UserError
from rewardlens.text_csv import read_text_csv

# Columns of a word run's rows: metadata may not take these names.
RESERVED_COLUMNS = ("model", "prompt_id", "prompt", "score", "category", "word")


@dataclass(frozen=True)
class Responses:
    """The responses of a file: `table` has the column `word` (the response, as the words job names it) and the
    metadata columns, in the file's order; `name` is the file's stem, `sha1` identifies the whole table."""

    name: str
    source: str
    table: pd.DataFrame = field(repr=False)

    @property
    def metadata(self) -> list[str]:
        return [column for column in self.table.columns if column != "word"]

    def require_numeric(self, column: str) -> None:
        """A metadata column that serves as a rating: present, and every non-empty cell a number."""
        if column not in self.metadata:
            known = ", ".join(self.metadata) or "none"
            raise UserError(f"{self.source}: no column {column!r} (metadata columns: {known})")
        text = self.table[column].astype(str).str.strip()
        numbers = pd.to_numeric(text.where(text != "", None), errors="coerce")
        bad = text[numbers.isna() & (text != "")]
        if len(bad):
            raise UserError(f"{self.source}: column {column!r} is not numeric ({bad.iloc[0]!r})")
        if numbers.notna().sum() < 2:
            raise UserError(f"{self.source}: column {column!r} rates fewer than 2 responses")

    @property
    def sha1(self) -> str:
        text = self.table.to_csv(index=False, lineterminator="\n")
        return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{file}: not a readable responses file ({err.__class__.__name__})") from None


def _from_csv(file: Path) -> pd.DataFrame:
    _, raw = read_text_csv(file)
    if "response" not in raw.columns:
        raise UserError(f"{file}: no `response` column (columns: {', '.join(raw.columns[:6])})")
    repeated = [column for column in raw.columns if list(raw.columns).count(column) > 1]
    if repeated:
        raise UserError(f"{file}: column {repeated[0]!r} is given twice")
    clash = [column for column in raw.columns if column in RESERVED_COLUMNS]
    if clash:
        raise UserError(f"{file}: column {clash[0]!r} is a column of the run's rows; rename it")
    empty = raw.index[raw["response"].str.strip() == ""]
    if len(empty):
        raise UserError(f"{file}: row {int(empty[0]) + 2} has an empty response")
    table = raw.rename(columns={"response": "word"})
    return table[["word", *(c for c in table.columns if c != "word")]]


def load_responses(path: str | os.PathLike[str]) -> Responses:
    """The responses of a text file or a CSV; every problem is one line, before any model is loaded."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{file}: no such responses file")
    if file.stat().st_size == 0:
        raise UserError(f"{file}: no responses (the file is empty)")
    if file.suffix.lower() == ".csv":
        table = _from_csv(file)
    else:
        lines = [line for line in _read_text(file).splitlines() if line.strip()]
        table = pd.DataFrame({"word": lines}, dtype=object)
    if table.empty:
        raise UserError(f"{file}: no responses")
    twice = table["word"][table["word"].duplicated()]
    if len(twice):
        raise UserError(
            f"{file}: response {twice.iloc[0]!r} is given {int((table['word'] == twice.iloc[0]).sum())} times; "
            "each response once (rows are joined on it)"
        )
    return Responses(file.stem, str(file.resolve()), table.reset_index(drop=True))


__all__ = ["RESERVED_COLUMNS", "Responses", "load_responses"]
