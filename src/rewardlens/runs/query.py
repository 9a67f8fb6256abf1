"""DuckDB SQL over any number of runs: a view `scores` (all rows, plus a `run` column naming the DIR)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from rewardlens.errors import UserError
from rewardlens.runs.store import read_manifest, shard_files

RunPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def _as_list(runs: RunPaths) -> list[str]:
    if isinstance(runs, str | os.PathLike):
        return [os.fspath(runs)]
    return [os.fspath(run) for run in runs]


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(runs: RunPaths) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the view `scores` over the shards of `runs`.

    Runs of different kinds are combined by column name (missing columns are NULL), so a sweep and a
    word run can be queried side by side.
    """
    directories = _as_list(runs)
    if not directories:
        raise UserError("query needs at least one run directory")
    selects = []
    for directory in directories:
        read_manifest(directory)  # one clear line for a DIR that is not a run
        files = shard_files(directory)
        if not files:
            continue
        file_list = "[" + ", ".join(_sql_literal(str(f)) for f in files) + "]"
        selects.append(f"SELECT *, {_sql_literal(directory)} AS run FROM read_parquet({file_list})")
    if not selects:
        raise UserError("no rows: the runs hold no shards yet")
    connection = duckdb.connect(":memory:")
    connection.execute("CREATE VIEW scores AS " + " UNION ALL BY NAME ".join(selects))
    return connection


def query(sql: str, runs: RunPaths) -> pd.DataFrame:
    """Run DuckDB SQL over the view `scores` of `runs`; the result as a DataFrame."""
    connection = connect(runs)
    try:
        return connection.execute(sql).df()
    except duckdb.Error as err:
        raise UserError(f"query failed: {str(err).splitlines()[0]}") from err
    finally:
        connection.close()


def _columns(connection: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in connection.execute("DESCRIBE scores").fetchall()]


def top_responses(
    directory: str | os.PathLike[str], prompt_id: str | None = None, k: int = 20, bottom: bool = False
) -> pd.DataFrame:
    """The `k` best (or worst) responses of a run with their scores and ranks (1 = highest score).

    With `prompt_id`, the scores under that prompt; without, and with several prompts in the run,
    the mean score over prompts (and the mean of the per-prompt ranks). DuckDB does the ranking, so
    a run larger than memory works too.
    """
    if k < 1:
        raise UserError("--k must be at least 1")
    connection = connect(directory)
    try:
        columns = _columns(connection)
        key = "token_id" if "token_id" in columns else "response"
        extra = [c for c in ("token", "response") if c in columns and c != key]
        if prompt_id is not None:  # the prompt ids take a scan of the whole run: only when one is asked for
            prompts = [row[0] for row in connection.execute("SELECT DISTINCT prompt_id FROM scores").fetchall()]
            if prompt_id not in prompts:
                shown = ", ".join(sorted(prompts)[:5]) + (", ..." if len(prompts) > 5 else "")
                raise UserError(f"--prompt {prompt_id!r} is not in the run (prompts: {shown})")
        where = "WHERE prompt_id = $prompt" if prompt_id is not None else ""
        ranked = (
            f"SELECT {key}, {', '.join(extra + ['score'])}, prompt_id, "
            f"rank() OVER (PARTITION BY prompt_id ORDER BY score DESC) AS rank FROM scores {where}"
        )
        picks = ", ".join(f"any_value({c}) AS {c}" for c in extra)
        direction = "ASC" if bottom else "DESC"
        sql = (
            f"SELECT {key}, {picks + ', ' if picks else ''}avg(score) AS score, avg(rank) AS rank, "
            f"count(*) AS prompts FROM ({ranked}) GROUP BY {key} "
            f"ORDER BY score {direction}, {key} LIMIT {int(k)}"
        )
        parameters = {"prompt": prompt_id} if prompt_id is not None else {}
        return connection.execute(sql, parameters).df()
    finally:
        connection.close()


EXPORT_FORMATS = ("csv", "parquet")


def export_run(directory: str | os.PathLike[str], path: str | os.PathLike[str], format: str = "csv") -> int:
    """Write the flat table of a run to one CSV or Parquet file (streamed by DuckDB); returns rows."""
    if format not in EXPORT_FORMATS:
        raise UserError(f"unknown export format '{format}' (use csv or parquet)")
    target = Path(path)
    if not target.parent.is_dir():
        raise UserError(f"cannot write {target}: no directory {target.parent}")
    connection = connect(directory)
    try:
        options = "FORMAT csv, HEADER true" if format == "csv" else "FORMAT parquet"
        connection.execute(f"COPY (SELECT * EXCLUDE (run) FROM scores) TO {_sql_literal(str(target))} ({options})")
        return int(connection.execute("SELECT count(*) FROM scores").fetchone()[0])  # type: ignore[index]
    except duckdb.IOException as err:
        raise UserError(f"cannot write {target}: {str(err).splitlines()[0]}") from err
    finally:
        connection.close()
