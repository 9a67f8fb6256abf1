"""A run on disk: `DIR/_run.json` (what was run) plus Parquet shards under `DIR/shards/` (the rows).

Shards are written atomically (temporary file in the same directory, then `os.replace`), so a shard
file that exists is complete: a run killed at any moment resumes by skipping the shards that exist.
Shards are named by what they hold (e.g. a prompt and a token range), so independent workers can write
them without coordinating.

A run is a Parquet dataset as it stands: pyarrow's dataset discovery (what `pandas.read_parquet(DIR)` and
`pyarrow.dataset.dataset(DIR)` use) and DuckDB's `read_parquet('DIR/**/*.parquet')` skip files whose names start
with `_` or `.`, so the manifest is `_run.json` and temporaries are dot-named. Runs written by rewardlens 0.1 have
`run.json` (which pyarrow would try to read as Parquet); they still open, and the first write of their manifest
renames it. `load_run(DIR)` is the API (shard-name order, a clear error for a DIR that is not a run).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rewardlens.errors import UserError

MANIFEST_NAME = "_run.json"
LEGACY_MANIFEST_NAME = "run.json"  # rewardlens 0.1
SHARDS_DIR = "shards"
SHARD_SUFFIX = ".parquet"
FORMAT_VERSION = 1

# Fixed Arrow types for the shared columns, so every shard of every run has one schema
# (pyarrow takes a dataset's schema from one file; a shard with int32 ids would not read back).
COLUMN_TYPES: dict[str, pa.DataType] = {
    "model": pa.string(),
    "prompt_id": pa.string(),
    "prompt": pa.string(),
    "response": pa.string(),
    "score": pa.float64(),
    "token_id": pa.int64(),
    "token": pa.string(),
    "is_special": pa.bool_(),
    "leading_space": pa.bool_(),
    "is_word": pa.bool_(),
    "category": pa.string(),
    "logp_policy": pa.float64(),
    "logp_reference": pa.float64(),
}

# What makes two runs "the same run": a DIR holding a run that differs in one of these is refused.
DEFAULT_IDENTITY_KEYS: tuple[str, ...] = ("kind_of_run", "model", "prompts", "tokens", "include_special")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _shards_path(directory: Path) -> Path:
    return directory / SHARDS_DIR


def _manifest_path(directory: Path) -> Path:
    """Where DIR's manifest is: `_run.json`, or the `run.json` of a run written by rewardlens 0.1."""
    current = directory / MANIFEST_NAME
    legacy = directory / LEGACY_MANIFEST_NAME
    return legacy if not current.is_file() and legacy.is_file() else current


def has_run(directory: str | os.PathLike[str]) -> bool:
    """Whether DIR holds a run (a manifest, current or legacy), finished or not."""
    return _manifest_path(Path(directory)).is_file()


def shard_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The finished shard files of a run, sorted by name (the row order of `load_run`)."""
    shards = _shards_path(Path(directory))
    if not shards.is_dir():
        return []
    return sorted(p for p in shards.iterdir() if p.name.endswith(SHARD_SUFFIX) and not p.name.startswith("."))


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest (`_run.json`) of a run DIR; a UserError if DIR holds no (readable) run."""
    path = _manifest_path(Path(directory))
    if not path.is_file():
        raise UserError(f"{directory} holds no run (no {MANIFEST_NAME})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from err
    if not isinstance(manifest, dict):
        raise UserError(f"{path} is not a run manifest (expected a JSON object)")
    return manifest


def is_complete_run(directory: str | os.PathLike[str], model_spec: str) -> bool:
    """Whether DIR holds a finished run of `model_spec` (a job that finds one needs no model)."""
    if not has_run(directory):
        return False
    manifest = read_manifest(directory)
    return bool(manifest.get("complete")) and manifest.get("model_spec") == model_spec


def load_run(directory: str | os.PathLike[str]) -> pd.DataFrame:
    """All rows of a run as one DataFrame, in shard-name order."""
    read_manifest(directory)  # a clear error for a DIR that is not a run
    files = shard_files(directory)
    if not files:
        return pd.DataFrame()
    return pq.read_table([str(f) for f in files]).to_pandas()


def count_rows(directory: str | os.PathLike[str]) -> int:
    """Rows written so far, from the Parquet footers only (no data read)."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in shard_files(directory))


def frame_to_table(frame: pd.DataFrame) -> pa.Table:
    """The Arrow table of a frame with the shared column types and no pandas index."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = []
    for field in table.schema:
        target = COLUMN_TYPES.get(field.name)
        if target is None and pa.types.is_large_string(field.type):
            target = pa.string()  # one string type across shards and runs
        fields.append(pa.field(field.name, target or field.type))
    return table.cast(pa.schema(fields)).replace_schema_metadata(None)


def atomic_write(path: Path, write: Any) -> None:
    """Write via `write(tmp_path)` to a dot-named temporary file beside `path`, then rename it into place.

    The temporary name starts with `.` (ignored by pyarrow and by `shard_files`) and carries host and pid,
    so a stale one left by a killed process can be recognised and removed.
    """
    prefix = f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}-"
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
    atomic_write(directory / MANIFEST_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    # A resumed 0.1 run now has `_run.json`; its `run.json` would keep the directory unreadable as a dataset.
    (directory / LEGACY_MANIFEST_NAME).unlink(missing_ok=True)


def _remove_stale_temporaries(shards: Path) -> None:
    """Remove temporary files of dead processes on this host (a killed run leaves them behind)."""
    host = socket.gethostname()
    for path in shards.glob(".*.tmp-*"):
        _, _, tail = path.name.partition(".tmp-")
        owner_host, _, rest = tail.rpartition("-")  # "<host>-<pid>-<random>"
        owner_host, _, pid_text = owner_host.rpartition("-")
        if owner_host != host or not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        path.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_directory(directory: Path) -> None:
    """Create DIR and check that it is writable; a UserError (not a traceback) if it is not."""
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory} exists and is not a directory")
    try:
        _shards_path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create run directory {directory}: {err.strerror or err}") from err
    if not os.access(directory, os.W_OK) or not os.access(_shards_path(directory), os.W_OK):
        raise UserError(f"run directory {directory} is not writable")


def _clear_run(directory: Path) -> None:
    """Remove the run files of DIR (manifest and shards), leaving anything else the user put there."""
    (directory / MANIFEST_NAME).unlink(missing_ok=True)
    (directory / LEGACY_MANIFEST_NAME).unlink(missing_ok=True)
    shutil.rmtree(_shards_path(directory), ignore_errors=True)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _describe(value: Any) -> str:
    text = _canonical(value)
    return text if len(text) <= 60 else text[:57] + "..."


def identity_difference(old: Mapping[str, Any], new: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    """The first identity key on which two manifests differ, described for an error message."""
    for key in keys:
        if _canonical(old.get(key)) != _canonical(new.get(key)):
            if key in ("prompts", "prompt_set"):
                return "another prompt set"
            return f"another {key.replace('_', ' ')} ({_describe(old.get(key))}, not {_describe(new.get(key))})"
    return None


def refuse_other_run(
    directory: str | os.PathLike[str], identity: Mapping[str, Any], keys: Iterable[str], overwrite: bool
) -> None:
    """Refuse a DIR whose run differs from `identity` on `keys`, unless `overwrite`.

    Jobs call it early with the keys they know before loading a model; `RunStore` calls it with all of them.
    """
    if overwrite or not has_run(directory):
        return
    difference = identity_difference(read_manifest(directory), identity, keys)
    if difference is not None:
        raise UserError(f"{directory} holds another run ({difference}); pass --overwrite to replace it")


def _refuse_or_clear(directory: Path, new: Mapping[str, Any], keys: Iterable[str], overwrite: bool) -> bool:
    """Whether DIR holds the same run (to resume); clears it under `overwrite`, refuses another run."""
    if overwrite:
        _clear_run(directory)
        return False
    if not has_run(directory):
        if shard_files(directory):
            raise UserError(f"{directory} holds shards without a {MANIFEST_NAME}; pass --overwrite to replace them")
        return False
    refuse_other_run(directory, new, keys, overwrite=False)
    return True


class RunStore:
    """An incremental run: create it, or resume the same run; write shards atomically; finish it.

    `manifest` describes the run (see the `_run.json` contract); the values under `identity_keys` decide
    whether an existing DIR holds the same run (resumed) or another one (refused unless `overwrite`).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        manifest: Mapping[str, Any],
        *,
        identity_keys: Iterable[str] = DEFAULT_IDENTITY_KEYS,
        overwrite: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.identity_keys = tuple(identity_keys)
        prepare_directory(self.directory)
        self.resumed = _refuse_or_clear(self.directory, manifest, self.identity_keys, overwrite)
        self.shards_dir.mkdir(exist_ok=True)  # `overwrite` removed it with the old shards
        if self.resumed:
            # The first start wins for what it fixed (start time, layout); later starts are appended.
            stored = read_manifest(self.directory)
            stored.setdefault("resumed_at", []).append(now_iso())
            stored.pop("finished_at", None)
            stored["complete"] = False
            self.manifest: dict[str, Any] = stored
        else:
            self.manifest = {"format_version": FORMAT_VERSION, **dict(manifest)}
            self.manifest.setdefault("started_at", now_iso())
            self.manifest["complete"] = False
        _remove_stale_temporaries(self.shards_dir)
        _write_manifest(self.directory, self.manifest)

    @property
    def shards_dir(self) -> Path:
        return _shards_path(self.directory)

    def shard_path(self, shard_name: str) -> Path:
        if not shard_name or "/" in shard_name or "\\" in shard_name or shard_name.startswith((".", "_")):
            raise ValueError(f"invalid shard name {shard_name!r}")
        name = shard_name if shard_name.endswith(SHARD_SUFFIX) else shard_name + SHARD_SUFFIX
        return self.shards_dir / name

    def is_done(self, shard_name: str) -> bool:
        """Whether the shard exists; it is then complete, since shards appear only by atomic rename."""
        return self.shard_path(shard_name).is_file()

    def write_shard(self, shard_name: str, frame: pd.DataFrame) -> Path:
        """Write one shard atomically; rewriting an existing shard replaces it whole."""
        path = self.shard_path(shard_name)
        table = frame_to_table(frame)
        atomic_write(path, lambda tmp: pq.write_table(table, tmp))
        return path

    def rows_done(self) -> int:
        return count_rows(self.directory)

    def update_manifest(self, **fields: Any) -> None:
        self.manifest.update(fields)
        _write_manifest(self.directory, self.manifest)

    def finish(self, scoring_seconds: float | None = None, **fields: Any) -> dict[str, Any]:
        """Record end time and row count; complete when the rows match `rows_expected` (if given).

        `scoring_seconds` (this session's) is added to what earlier sessions of the run recorded; `fields`
        are recorded as they are. One write of the manifest.
        """
        rows = self.rows_done()
        expected = self.manifest.get("rows_expected")
        self.manifest.update(finished_at=now_iso(), rows=rows, complete=expected is None or int(expected) == rows)
        if scoring_seconds is not None:
            earlier = float(self.manifest.get("scoring_seconds", 0.0))
            self.manifest["scoring_seconds"] = round(earlier + scoring_seconds, 3)
        self.manifest.update(fields)
        _write_manifest(self.directory, self.manifest)
        return self.manifest


def write_run(
    directory: str | os.PathLike[str],
    manifest: Mapping[str, Any],
    frame: pd.DataFrame,
    overwrite: bool = False,
    *,
    shard_rows: int = 1_000_000,
) -> Path:
    """Write a whole run at once (imports, word runs, analyses). A DIR holding any run is refused
    unless `overwrite`; the frame is split into shards of at most `shard_rows` rows."""
    path = Path(directory)
    if has_run(path) and not overwrite:
        raise UserError(f"{path} already holds a run; pass --overwrite to replace it")
    full = {**dict(manifest), "rows_expected": len(frame)}
    store = RunStore(path, full, identity_keys=(), overwrite=True)
    for index, start in enumerate(range(0, max(len(frame), 1), shard_rows)):
        store.write_shard(f"part-{index:05d}", frame.iloc[start : start + shard_rows])
    store.finish()
    return path


def run_status(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """What `rewardlens runs` lists: model, kinds, prompts, rows done / expected, complete or not."""
    manifest = read_manifest(directory)
    rows = count_rows(directory)
    expected = manifest.get("rows_expected")
    return {
        "run": os.fspath(directory),
        "kind_of_run": manifest.get("kind_of_run"),
        "model": manifest.get("model"),
        "kind": manifest.get("kind"),
        "prompts": len(manifest.get("prompts") or []),
        "rows": rows,
        "rows_expected": expected,
        "complete": int(expected) == rows if expected is not None else bool(manifest.get("complete")),
        "started_at": manifest.get("started_at"),
        "finished_at": manifest.get("finished_at"),
    }
