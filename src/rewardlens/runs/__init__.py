"""Runs on disk: `_run.json` plus atomic Parquet shards; resumable; queried with DuckDB."""

from rewardlens.runs.query import connect, export_run, query, top_responses
from rewardlens.runs.store import (
    RunStore,
    count_rows,
    has_run,
    is_complete_run,
    load_run,
    read_manifest,
    run_status,
    shard_files,
    write_run,
)

__all__ = [
    "RunStore",
    "connect",
    "count_rows",
    "export_run",
    "has_run",
    "is_complete_run",
    "load_run",
    "query",
    "read_manifest",
    "run_status",
    "shard_files",
    "top_responses",
    "write_run",
]
