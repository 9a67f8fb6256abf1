"""DuckDB SQL over any number of runs: a view `scores` (all rows, plus a `run` column naming the DIR).

The analyses read runs through here rather than loading them whole: `SweepRows` serves the token analyses
(one model x prompt at a time, aggregates and joins in SQL) and `lexicon_rows` the value analysis (only the
rows whose response is a lexicon word). Every connection has a memory limit, so a study of many models over a
whole vocabulary spills to disk instead of growing without bound.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from rewardlens.errors import UserError
from rewardlens.runs.store import read_manifest, shard_files

RunPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

# DuckDB's share of the 4 GB an analysis of 10 models x 54 prompts x 262,144 tokens may use; the rest is for
# the frames pandas gets back. Overridable for machines with more memory.
MEMORY_LIMIT = os.environ.get("REWARDLENS_DUCKDB_MEMORY", "1GB")
SWEEP_MEMORY_LIMIT = os.environ.get("REWARDLENS_DUCKDB_SWEEP_MEMORY", "512MB")
THREADS = max(1, min(4, os.cpu_count() or 1))
# Where DuckDB spills past its memory limit: the system's temporary folder, not `.tmp/` in the user's
# working directory (DuckDB's default for an in-memory database).
SPILL_DIRECTORY = os.path.join(tempfile.gettempdir(), "rewardlens-duckdb")
# Columns that give each row its place in `load_run` order (runs in the order given, shards by name).
ORDER_COLUMNS = ("_run_index", "_file_index", "file_row_number")
ROW_ORDER = ", ".join(ORDER_COLUMNS)


def _as_list(runs: RunPaths) -> list[str]:
    if isinstance(runs, str | os.PathLike):
        return [os.fspath(runs)]
    return [os.fspath(run) for run in runs]


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(runs: RunPaths, *, row_order: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the view `scores` over the shards of `runs`.

    Runs of different kinds are combined by column name (missing columns are NULL), so a sweep and a
    word run can be queried side by side. With `row_order`, the view also has the `ORDER_COLUMNS`, so that
    `ORDER BY {ROW_ORDER}` gives the rows in the order `load_run` and pandas see them.
    """
    directories = _as_list(runs)
    if not directories:
        raise UserError("query needs at least one run directory")
    selects = []
    for index, directory in enumerate(directories):
        read_manifest(directory)  # one clear line for a DIR that is not a run
        files = shard_files(directory)
        if not files:
            continue
        file_list = "[" + ", ".join(_sql_literal(str(f)) for f in files) + "]"
        if row_order:
            # A file's place as a small integer (joined on its name), so that sorting rows into load order
            # carries 16 bytes a row rather than the file's path.
            source = f"read_parquet({file_list}, filename = true, file_row_number = true)"
            places = ", ".join(f"({_sql_literal(str(f))}, {i})" for i, f in enumerate(files))
            selects.append(
                f"SELECT * EXCLUDE (filename), {_sql_literal(directory)} AS run, {index} AS _run_index "
                f"FROM {source} JOIN (VALUES {places}) AS places(filename, _file_index) USING (filename)"
            )
        else:
            selects.append(f"SELECT *, {_sql_literal(directory)} AS run FROM read_parquet({file_list})")
    if not selects:
        raise UserError("no rows: the runs hold no shards yet")
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": MEMORY_LIMIT,
        "threads": THREADS,
        "temp_directory": SPILL_DIRECTORY,
    }
    connection = duckdb.connect(":memory:", config=config)
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


# A sweep row is ranked when its score is a finite number and it is not a special token (the token analyses'
# `scored_tokens`, applied in SQL so that pandas never sees the other rows).
_SCORED = "score IS NOT NULL AND isfinite(score)"
_NOT_SPECIAL = "NOT coalesce(is_special, false)"


class SweepRows:
    """The rows of sweep runs for the token analyses, read in pieces that fit in memory.

    `groups` yields one model x prompt at a time (rows in `load_run` order, scored rows only), the
    aggregates (row counts, prompt ids, models) are SQL, and `aligned_scores` joins one prompt's scores with
    a token table in SQL. Use it as a context manager.
    """

    def __init__(self, runs: RunPaths, include_special: bool = False) -> None:
        self.connection = connect(runs, row_order=True)
        # Every query here that needs an order says so (ORDER BY): DuckDB may then stream without keeping it.
        self.connection.execute("SET preserve_insertion_order = false")
        # The analyses keep what they have read of all models (the histograms' scores) beside DuckDB's sort of
        # one model; sorting spills to disk, so DuckDB gets the smaller share.
        self.connection.execute(f"SET memory_limit = '{SWEEP_MEMORY_LIMIT}'")
        self.columns = _columns(self.connection)
        keep = _SCORED if include_special or "is_special" not in self.columns else f"{_SCORED} AND {_NOT_SPECIAL}"
        self.connection.execute(
            "CREATE VIEW all_rows AS SELECT * REPLACE (CAST(model AS VARCHAR) AS model, "
            "CAST(prompt_id AS VARCHAR) AS prompt_id) FROM scores"
        )
        self.connection.execute(f"CREATE VIEW scored AS SELECT * FROM all_rows WHERE {keep}")

    def __enter__(self) -> SweepRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    def count(self) -> int:
        return int(self.connection.execute("SELECT count(*) FROM all_rows").fetchone()[0])  # type: ignore[index]

    def prompt_ids(self) -> list[str]:
        return [row[0] for row in self.connection.execute("SELECT DISTINCT prompt_id FROM all_rows").fetchall()]

    def models(self) -> list[str]:
        """Every model of the runs, scored rows or not, sorted."""
        sql = "SELECT DISTINCT model FROM all_rows ORDER BY model"
        return [row[0] for row in self.connection.execute(sql).fetchall()]

    def groups(self, columns: Sequence[str], scored_only: bool = True) -> Iterator[tuple[str, str, pd.DataFrame]]:
        """(model, prompt_id, rows) for every model x prompt in sorted order; rows in load order.

        One model's rows are sorted by DuckDB (spilling to disk past the memory limit) and streamed in
        batches, so at most one model x prompt plus one batch is in memory. With `scored_only=False` the
        unscored rows come too (a check of duplicate tokens needs them): a model x prompt is where two runs
        can overlap, and checking it there needs no hash table of every row, which a GROUP BY over a whole
        study would build.
        """
        source = "scored" if scored_only else "all_rows"
        wanted = ", ".join(_identifier(c) for c in columns if c in self.columns and c not in ("model", "prompt_id"))
        counts: dict[str, list[tuple[str, int]]] = {}
        sql = f"SELECT model, prompt_id, count(*) FROM {source} GROUP BY ALL ORDER BY model, prompt_id"
        for model, prompt_id, n in self.connection.execute(sql).fetchall():
            counts.setdefault(model, []).append((prompt_id, int(n)))
        for model, prompts in counts.items():
            # A cursor of its own: the caller may query the connection while the stream is open.
            cursor = self.connection.cursor()
            try:
                reader = cursor.sql(
                    f"SELECT {wanted} FROM {source} WHERE model = $model ORDER BY prompt_id, {ROW_ORDER}",
                    params={"model": model},
                ).to_arrow_reader(_BATCH_ROWS)
                for (prompt_id, _), table in zip(prompts, _slices(reader, [n for _, n in prompts]), strict=True):
                    # numpy buffers from malloc, so that `malloc_trim` returns them once a model is done
                    frame = table.to_pandas(memory_pool=pa.system_memory_pool())
                    frame.insert(0, "prompt_id", prompt_id)
                    frame.insert(0, "model", model)
                    yield model, str(prompt_id), frame
            finally:
                cursor.close()

    def set_aligned_tokens(self, tokens: pd.DataFrame) -> None:
        """Copy the (model, token_id, ...) table `aligned_scores` joins with into DuckDB, once: a pandas frame
        registered again for every prompt would be scanned (and its strings converted) every time."""
        self.connection.register("_aligned_frame", tokens)
        try:
            self.connection.execute("CREATE OR REPLACE TEMP TABLE _aligned_tokens AS SELECT * FROM _aligned_frame")
        finally:
            self.connection.unregister("_aligned_frame")

    def aligned_scores(self, prompt_id: str) -> pd.DataFrame:
        """Scores under one prompt of the (model, token_id) pairs of `set_aligned_tokens`, with its other columns."""
        return self.connection.execute(
            "SELECT t.*, s.score FROM scored AS s JOIN _aligned_tokens AS t USING (model, token_id) "
            "WHERE s.prompt_id = $prompt",
            {"prompt": prompt_id},
        ).df()


_BATCH_ROWS = 1 << 20


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _slices(reader: pa.RecordBatchReader, sizes: Sequence[int]) -> Iterator[pa.Table]:
    """Consecutive tables of `sizes` rows cut from a stream of record batches."""
    pending: list[pa.RecordBatch] = []
    held = 0
    batches = iter(reader)
    for size in sizes:
        while held < size:
            batch = next(batches)
            pending.append(batch)
            held += batch.num_rows
        table = pa.Table.from_batches(pending, schema=reader.schema)
        yield table.slice(0, size)
        rest = table.slice(size)
        pending = rest.to_batches()
        held = rest.num_rows


def run_responses(runs: RunPaths) -> list[str]:
    """The distinct responses of `runs`, as text (what a lexicon is matched against)."""
    connection = connect(runs)
    try:
        sql = "SELECT DISTINCT CAST(response AS VARCHAR) FROM scores WHERE response IS NOT NULL"
        return [row[0] for row in connection.execute(sql).fetchall()]
    finally:
        connection.close()


@dataclass(frozen=True)
class LexiconRows:
    """What the value analysis needs of one run: the rows of lexicon responses (in load order), every prompt
    id of the run (in order of first appearance), the model of its first row and its row count."""

    frame: pd.DataFrame
    prompt_ids: list[str]
    first_model: str | None
    n_rows: int


def lexicon_rows(directory: str | os.PathLike[str], responses: Sequence[str]) -> LexiconRows:
    """The rows of one run whose response is in `responses`, found by a join in SQL: a sweep over a whole
    vocabulary comes back as its few lexicon rows."""
    connection = connect(directory, row_order=True)
    try:
        wanted = pd.DataFrame({"response": pd.Series(list(dict.fromkeys(responses)), dtype=object)})
        connection.register("_wanted", wanted)
        order = ", ".join(ORDER_COLUMNS)
        rows = connection.execute(
            f"SELECT * EXCLUDE (run, {order}) FROM scores WHERE CAST(response AS VARCHAR) IN "
            f"(SELECT response FROM _wanted) ORDER BY {ROW_ORDER}"
        ).df()
        prompts = connection.execute(
            f"SELECT CAST(prompt_id AS VARCHAR) FROM scores GROUP BY prompt_id ORDER BY min(row({order}))"
        ).fetchall()
        count = int(connection.execute("SELECT count(*) FROM scores").fetchone()[0])  # type: ignore[index]
        first = connection.execute(f"SELECT model FROM scores ORDER BY {ROW_ORDER} LIMIT 1").fetchone()
        return LexiconRows(rows, [str(row[0]) for row in prompts], None if first is None else first[0], count)
    finally:
        connection.close()


def run_columns(directory: str | os.PathLike[str]) -> list[str]:
    """The columns of a run's shards (from the Parquet footers only); none for a run without shards."""
    import pyarrow.parquet as pq

    names: dict[str, None] = {}
    for file in shard_files(directory):
        names.update(dict.fromkeys(pq.read_schema(file).names))
    return list(names)
