"""The CLI starts fast (no torch, scipy or statsmodels until a command needs them) and tells its version."""

import subprocess
import sys

HEAVY = ("torch", "scipy", "statsmodels", "transformers", "pandas", "duckdb")


def test_importing_the_cli_leaves_heavy_libraries_for_the_commands() -> None:
    code = f"import sys, rewardlens.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert loaded == "", f"imported when the CLI starts: {loaded}"


def test_version_flag_prints_the_package_version(run_cli) -> None:  # type: ignore[no-untyped-def]
    from rewardlens import __version__

    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"rewardlens {__version__}"
