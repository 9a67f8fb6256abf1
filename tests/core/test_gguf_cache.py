"""Where `models.gguf.loadable` sends a load, without converting a real model (the integration test does that)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rewardlens.models import gguf
from rewardlens.models.spec import ResolvedModel


def _fake_gguf(folder: Path) -> ResolvedModel:
    path = folder / "model.gguf"
    path.write_bytes(b"GGUF not really")
    return ResolvedModel(spec=str(path), directory=folder, gguf_file=path.name)


def _fake_convert(resolved: ResolvedModel, folder: Path) -> None:
    (folder / "config.json").write_text("{}", encoding="utf-8")


def test_directories_and_a_switched_off_cache_load_as_they_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = ResolvedModel(spec="m", directory=tmp_path)
    assert gguf.loadable(directory) is directory
    monkeypatch.setenv(gguf.CACHE_ENV, "off")
    resolved = _fake_gguf(tmp_path)
    assert gguf.cache_root() is None
    assert gguf.loadable(resolved) is resolved


def test_a_gguf_converts_once_and_again_when_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gguf.CACHE_ENV, str(tmp_path / "cache"))
    calls: list[Path] = []

    def counting_convert(resolved: ResolvedModel, folder: Path) -> None:
        calls.append(folder)
        _fake_convert(resolved, folder)

    monkeypatch.setattr(gguf, "_convert", counting_convert)
    resolved = _fake_gguf(tmp_path)
    first = gguf.loadable(resolved)
    assert first.gguf_file is None and first.spec == resolved.spec
    assert (first.directory / "config.json").is_file() and (first.directory / gguf.SOURCE_RECORD).is_file()
    assert gguf.loadable(resolved) == first and len(calls) == 1
    source = tmp_path / "model.gguf"
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = gguf.loadable(resolved)
    assert second.directory != first.directory and len(calls) == 2
    # No staging directory is left behind.
    names = sorted(p.name for p in first.directory.parent.iterdir())
    assert names == sorted([first.directory.name, second.directory.name])


def test_a_failed_conversion_leaves_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gguf.CACHE_ENV, str(tmp_path / "cache"))

    def broken(resolved: ResolvedModel, folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"partial")
        raise ValueError("unsupported architecture")

    monkeypatch.setattr(gguf, "_convert", broken)
    with pytest.raises(ValueError, match="unsupported"):
        gguf.loadable(_fake_gguf(tmp_path))
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []


def test_an_unwritable_cache_falls_back_to_the_gguf_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv(gguf.CACHE_ENV, str(blocker))
    resolved = _fake_gguf(tmp_path)
    with pytest.warns(UserWarning, match="cannot write the GGUF cache"):
        assert gguf.loadable(resolved) is resolved


def test_weights_larger_than_the_free_disk_are_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gguf.CACHE_ENV, str(tmp_path / "cache"))

    def too_big(resolved: ResolvedModel, folder: Path) -> None:
        gguf._check_room(folder, 10**18)

    monkeypatch.setattr(gguf, "_convert", too_big)
    resolved = _fake_gguf(tmp_path)
    with pytest.warns(UserWarning, match="GB free"):
        assert gguf.loadable(resolved) is resolved
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []
