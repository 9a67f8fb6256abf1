"""`rewardlens --help` and every command's argument parsing must not wait for torch, scipy or statsmodels."""

import subprocess
import sys

HEAVY = ("torch", "scipy", "statsmodels", "transformers", "pandas", "duckdb")


def test_importing_the_cli_leaves_heavy_libraries_for_the_commands() -> None:
    code = f"import sys, rewardlens.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert loaded == "", f"imported when the CLI starts: {loaded}"
