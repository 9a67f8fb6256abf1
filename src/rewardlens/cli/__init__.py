"""The `rewardlens` command line: a thin Typer layer over the Python API.

Each verb group lives in its own module and registers itself on the shared apps in `cli.apps`.
"""

from __future__ import annotations

import sys

import click
import typer

from rewardlens.cli.apps import app
from rewardlens.cli.options import expand_ray_flag
from rewardlens.errors import UserError

# Importing a command module registers its commands; the order is the order of `--help`.
from rewardlens.cli import scoring  # noqa: E402,F401  isort: skip
from rewardlens.cli import sweep  # noqa: E402,F401  isort: skip
from rewardlens.cli import render  # noqa: E402,F401  isort: skip
from rewardlens.cli import tokens  # noqa: E402,F401  isort: skip
from rewardlens.cli import values  # noqa: E402,F401  isort: skip
from rewardlens.cli import human  # noqa: E402,F401  isort: skip
from rewardlens.cli import similarity  # noqa: E402,F401  isort: skip
from rewardlens.cli import training  # noqa: E402,F401  isort: skip
from rewardlens.cli import implicit  # noqa: E402,F401  isort: skip
from rewardlens.cli import study  # noqa: E402,F401  isort: skip
from rewardlens.cli import bench_analyses  # noqa: E402,F401  isort: skip


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and exit code 2."""
    sys.argv[1:] = expand_ray_flag(sys.argv[1:])  # `--ray` alone: a local Ray
    try:
        app(standalone_mode=False)
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)


__all__ = ["app", "main"]
