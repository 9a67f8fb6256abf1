"""rewardlens: audit what reward models value and where those values come from."""

__version__ = "0.1.0"

from typing import Any as _Any

# Run-store entry points, imported on first use so that `import rewardlens` stays light.
_LAZY_RUNS = {"load_run", "query"}


def __getattr__(name: str) -> _Any:
    if name in _LAZY_RUNS:
        from rewardlens import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'rewardlens' has no attribute {name!r}")
