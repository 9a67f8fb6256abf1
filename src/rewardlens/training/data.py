"""Preference data for reward-model training: (prompt, chosen, rejected) pairs from JSONL or a `datasets` directory.

A pair's `chosen` and `rejected` are strings (then `prompt` is required and is the user turn) or message lists
(`[{"role": ..., "content": ...}, ...]`): either the assistant turn(s) after a `prompt` that is a string or a
message list, or the whole conversation when there is no `prompt` (the implicit-prompt layout of many public
preference sets). Pairs are validated line by line so that a bad line is named, not discovered mid-training.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlens.errors import UserError

Message = dict[str, str]
Turns = str | list[Message]


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: the conversation so far, the preferred and the dispreferred continuation."""

    prompt: Turns | None
    chosen: Turns
    rejected: Turns

    def conversations(self) -> tuple[list[Message], list[Message]]:
        """The chosen and the rejected conversation as full message lists."""
        return _conversation(self.prompt, self.chosen), _conversation(self.prompt, self.rejected)


@dataclass
class PreferenceData:
    """The valid pairs of a source, and what was left out while reading it."""

    pairs: list[PreferencePair]
    source: str
    sha256: str
    n_records: int
    skipped_invalid: int = 0
    skipped_identical: int = 0
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "records": self.n_records,
            "valid_pairs": len(self.pairs),
            "skipped_invalid": self.skipped_invalid,
            "skipped_identical": self.skipped_identical,
        }


def _conversation(prompt: Turns | None, answer: Turns) -> list[Message]:
    before: list[Message]
    if prompt is None:
        before = []
    elif isinstance(prompt, str):
        before = [{"role": "user", "content": prompt}]
    else:
        before = list(prompt)
    after = [{"role": "assistant", "content": answer}] if isinstance(answer, str) else list(answer)
    return before + after


def _check_turns(value: Any, key: str) -> Turns:
    """A non-empty string, or a non-empty list of {role, content} messages with string values."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"`{key}` is empty")
        return value
    if isinstance(value, list) and value:
        messages: list[Message] = []
        for message in value:
            if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
                raise ValueError(f"`{key}` holds a message without a `role`")
            if not isinstance(message.get("content"), str):
                raise ValueError(f"`{key}` holds a message whose `content` is not a string")
            messages.append({"role": str(message["role"]), "content": str(message["content"])})
        return messages
    raise ValueError(f"`{key}` is neither a string nor a non-empty list of messages")


def parse_pair(record: Any) -> PreferencePair:
    """A validated pair, or ValueError saying what is wrong with the record."""
    if not isinstance(record, Mapping):
        raise ValueError("not a JSON object")
    missing = [key for key in ("chosen", "rejected") if key not in record or record[key] is None]
    if missing:
        raise ValueError(f"missing key {' and '.join(repr(k) for k in missing)}")
    chosen = _check_turns(record["chosen"], "chosen")
    rejected = _check_turns(record["rejected"], "rejected")
    prompt_value = record.get("prompt")
    prompt = None if prompt_value is None else _check_turns(prompt_value, "prompt")
    if prompt is None and (isinstance(chosen, str) or isinstance(rejected, str)):
        raise ValueError("string `chosen`/`rejected` need a `prompt` (or give whole conversations as message lists)")
    if isinstance(chosen, str) != isinstance(rejected, str):
        raise ValueError("`chosen` and `rejected` must both be strings or both be message lists")
    return PreferencePair(prompt, chosen, rejected)


def _file_sha256(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _jsonl_records(path: Path, skip_invalid: bool) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) of every non-blank line; invalid JSON is an error unless skipped."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot read it ({err.__class__.__name__})") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as err:
                    if skip_invalid:
                        yield number, _InvalidJson(err.msg)
                        continue
                    raise UserError(
                        f"{path}: line {number} is not valid JSON ({err.msg}); pass --skip-invalid to skip such lines"
                    ) from None
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text") from None


@dataclass(frozen=True)
class _InvalidJson:
    message: str


def _dataset_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Rows of a `datasets.save_to_disk` directory (its `train` split when it holds several)."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as err:
        raise UserError(f"{path}: not a saved `datasets` directory ({str(err).splitlines()[0][:160]})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise UserError(f"{path}: a DatasetDict without a `train` split ({', '.join(loaded)})")
        loaded = loaded["train"]
    missing = [key for key in ("chosen", "rejected") if key not in loaded.column_names]
    if missing:
        columns = ", ".join(loaded.column_names)
        raise UserError(f"{path}: the dataset has no column {missing[0]!r} (columns: {columns})")
    yield from enumerate(loaded)


def load_preference_data(source: str | os.PathLike[str], skip_invalid: bool = False) -> PreferenceData:
    """Read and validate every pair of a JSONL file or a saved `datasets` directory.

    A record with missing keys or wrong types is an error naming its line (or row), unless `skip_invalid`,
    which counts it instead. A pair whose chosen equals its rejected carries no preference: it is skipped
    and counted. No valid pair at all is an error.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        records = _dataset_records(path)
        where = "row"
    elif path.is_file():
        files = [path]
        records = _jsonl_records(path, skip_invalid)
        where = "line"
    else:
        raise UserError(f"preference data {source}: no such file or directory")
    data = PreferenceData([], str(path), _file_sha256(files), 0)
    for number, record in records:
        data.n_records += 1
        try:
            if isinstance(record, _InvalidJson):
                raise ValueError(f"not valid JSON ({record.message})")
            pair = parse_pair(record)
        except ValueError as err:
            if skip_invalid:
                data.skipped_invalid += 1
                continue
            hint = "; pass --skip-invalid to skip such records" if where == "line" else ""
            raise UserError(f"{path}: {where} {number}: {err}{hint}") from None
        if pair.chosen == pair.rejected:
            data.skipped_identical += 1
            continue
        data.pairs.append(pair)
    if not data.pairs:
        detail = f"{data.n_records} records, {data.skipped_invalid} invalid, {data.skipped_identical} identical"
        raise UserError(f"preference data {path}: no usable pair ({detail})")
    return data


def sample_order(n_pairs: int, seed: int) -> np.ndarray:
    """The seeded order in which pairs are taken: a smaller `--n-pairs` takes a prefix of a larger one's pairs."""
    return np.random.default_rng(seed).permutation(n_pairs)


def parse_sizes(text: str) -> list[int]:
    """`--sizes 1000,5000,20000` as positive integers."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--sizes {text!r}: expected comma-separated positive integers, e.g. 1000,5000") from None
    if not sizes or any(size <= 0 for size in sizes):
        raise UserError(f"--sizes {text!r}: expected comma-separated positive integers, e.g. 1000,5000")
    return sorted(dict.fromkeys(sizes))


__all__ = [
    "PreferenceData",
    "PreferencePair",
    "load_preference_data",
    "parse_pair",
    "parse_sizes",
    "sample_order",
]
