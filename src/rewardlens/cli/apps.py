"""The root Typer app and its sub-command groups, shared by the command modules."""

from typing import Annotated

import typer

app = typer.Typer(
    name="rewardlens",
    help="Audit what reward models value and where those values come from.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        from rewardlens import __version__

        typer.echo(f"rewardlens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """Audit what reward models value and where those values come from."""


analyze_app = typer.Typer(help="Statistics over scored runs.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print ratios measured side by side in one run.", no_args_is_help=True)
similarity_app = typer.Typer(help="Representational similarity (RV, RV2, CKA, RSA).", no_args_is_help=True)

app.add_typer(analyze_app, name="analyze")
app.add_typer(bench_app, name="bench")
app.add_typer(similarity_app, name="similarity")
