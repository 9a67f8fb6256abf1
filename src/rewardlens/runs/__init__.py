"""Runs on disk: `run.json` plus atomic Parquet shards; resumable; queried with DuckDB."""

from rewardlens.runs.query import connect, query
from rewardlens.runs.store import RunStore, count_rows, load_run, read_manifest, shard_files, write_run

__all__ = [
    "RunStore",
    "connect",
    "count_rows",
    "load_run",
    "query",
    "read_manifest",
    "shard_files",
    "write_run",
]
