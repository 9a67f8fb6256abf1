"""DuckDB SQL over any number of runs: a view `scores` (all rows, plus a `run` column naming the DIR)."""

from __future__ import annotations

import os
from collections.abc import Sequence

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
