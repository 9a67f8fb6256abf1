"""Reading a user's CSV as text: every cell a string, so that each reader decides what is a number or missing."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from rewardlens.errors import UserError


def read_text_csv(path: str | os.PathLike[str]) -> tuple[Path, pd.DataFrame]:
    """Every cell as text (empty cells as ""), column names stripped; one-line errors for a missing or bad file."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{file}: no such file")
    try:
        raw = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise UserError(f"{file}: not a readable CSV ({err.__class__.__name__})") from err
    raw.columns = [str(column).strip() for column in raw.columns]
    return file, raw


__all__ = ["read_text_csv"]
