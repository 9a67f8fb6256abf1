"""Run the `rewardlens` console entry point in-process, exit code included (shared by the CLI tests)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`rewardlens ARGS...` through `rewardlens.cli.main`: (exit code, stdout, stderr)."""
    from rewardlens.cli import main

    old = sys.argv
    sys.argv = ["rewardlens", *map(str, args)]
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err
