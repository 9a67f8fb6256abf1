"""Every CLI option that more than one command shares, declared once.

`with_model_options` gives a command every field of `rewardlens.config.ModelOptions` as a Typer option and
hands the command one `options: ModelOptions`: a new loading option is one field there and reaches every
command, study and Ray worker, and no command can drop one.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from rewardlens.config import DEFAULT_MODEL, ModelOptions
from rewardlens.errors import UserError
from rewardlens.models.templates import check_sequences, parse_date

if TYPE_CHECKING:
    from rewardlens.jobs.ray_pool import RayOptions

ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help=f"Model directory, .gguf file, hub id (from the local cache offline) or alias {DEFAULT_MODEL}.",
    ),
]
RevisionOption = Annotated[str | None, typer.Option(help="Hub revision (branch, tag or commit).")]
DtypeOption = Annotated[str, typer.Option(help="auto|float32|bfloat16|float16 (auto: float32 on CPU, bf16 on CUDA).")]
DeviceOption = Annotated[str, typer.Option(help="auto|cpu|cuda[:N].")]
TrustRemoteCodeOption = Annotated[
    bool, typer.Option("--trust-remote-code", help="Allow the model's own code to run (off unless passed).")
]
KindOption = Annotated[
    str, typer.Option(help="auto|reward|lm (auto: sequence-classification = reward, causal LM = log-probability).")
]
TemplateOption = Annotated[
    str | None,
    typer.Option(help="chat (the tokenizer's, default), plain ('User: {prompt}\\nAssistant: {response}'), FILE.jinja"),
]
EngineOption = Annotated[str, typer.Option(help="cached|batched|reference.")]
BatchSizeOption = Annotated[int | None, typer.Option(help="Sequences per batch (default: chosen from memory).")]
IncludeEndOption = Annotated[
    bool, typer.Option("--include-end", help="Language models: also score the end-of-turn token after the response.")
]


def _checked_date(value: str) -> str:
    # Checked while the command line is parsed: a bad date ends in one line, before anything is written.
    parse_date(value)
    return value


def _checked_sequences(value: str) -> str:
    return check_sequences(value)


DateOption = Annotated[
    str,
    typer.Option(
        "--date",
        help="The date a date-stamped chat template renders (Llama 3.1/3.2's 'Today Date'), never today's: "
        "26 Jul 2024 (Llama 3.1's own default) unless given, e.g. '1 Dec 2024' or 2024-12-01.",
        callback=_checked_date,
    ),
]
SequencesOption = Annotated[
    str,
    typer.Option(
        "--sequences",
        help="exact (ids: prefix + token + suffix, one BOS) or published (decode, render as text, tokenize again "
        "with special tokens: the published optimal/pessimal pipeline, a second BOS on Llama-3 and Gemma).",
        callback=_checked_sequences,
    ),
]
DeviceMapOption = Annotated[
    str | None,
    typer.Option("--device-map", help="auto: spread a model too big for one GPU over the GPUs of its worker."),
]

# The Typer option of each `ModelOptions` field a user sets on a command line (the benchmarks' random head
# seed is not one of them).
MODEL_OPTION_TYPES: dict[str, Any] = {
    "revision": RevisionOption,
    "dtype": DtypeOption,
    "device": DeviceOption,
    "device_map": DeviceMapOption,
    "trust_remote_code": TrustRemoteCodeOption,
    "kind": KindOption,
    "template": TemplateOption,
    "date": DateOption,
    "sequences": SequencesOption,
    "include_end": IncludeEndOption,
}

Command = TypeVar("Command", bound=Callable[..., Any])


def with_model_options(*, without: Sequence[str] = ()) -> Callable[[Command], Command]:
    """Give a command (which takes `options: ModelOptions`) the model options as Typer options.

    `without` leaves out fields the command sets itself (e.g. `template` for a command that has one per
    model); they keep their defaults. The wrapped function's signature is what Typer reads.
    """

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        hints = typing.get_type_hints(command, include_extras=True)
        defaults = ModelOptions()
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, name), annotation=kind)
            for name, kind in MODEL_OPTION_TYPES.items()
            if name not in without
        ]
        kept = [parameter for name, parameter in signature.parameters.items() if name != "options"]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {parameter.name: kwargs.pop(parameter.name) for parameter in added}
            return command(*args, options=ModelOptions(**values), **kwargs)

        wrapper.__signature__ = signature.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
        hints.pop("options", None)
        wrapper.__annotations__ = {**hints, **{parameter.name: parameter.annotation for parameter in added}}
        return typing.cast(Command, wrapper)

    return decorate


# -- Ray: `--ray [ADDRESS]`, `--workers N`, `--gpus-per-worker G` -------------------------------------------
LOCAL_RAY = "local"

RayOption = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help="Score on Ray: alone, join a local Ray or start one; HOST:PORT or ray://HOST:PORT joins a cluster.",
        show_default=False,
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", help="Ray scoring actors (default: one per GPU; without GPUs, one per CPU).", min=None),
]
GpusPerWorkerOption = Annotated[
    float, typer.Option("--gpus-per-worker", help="GPUs per Ray actor (>1 with --device-map auto for big models).")
]

_ADDRESS = re.compile(r"^(local|auto|[a-z][a-z0-9+.-]*://\S+|[\w.\-\[\]:]+:\d+)$")


def expand_ray_flag(argv: Sequence[str]) -> list[str]:
    """`--ray` given without an address becomes `--ray local` (Typer has no options with an optional value).

    The next argument is taken as the address only where it looks like one (local, auto, HOST:PORT,
    SCHEME://...), so `study STUDY.yaml --ray --out DIR` and `study --ray STUDY.yaml` both work.
    """
    expanded: list[str] = []
    for index, argument in enumerate(argv):
        expanded.append(argument)
        if argument == "--ray":
            following = argv[index + 1] if index + 1 < len(argv) else None
            if following is None or not _ADDRESS.match(following):
                expanded.append(LOCAL_RAY)
    return expanded


def ray_options(ray: str | None, workers: int | None, gpus_per_worker: float = 1.0) -> RayOptions | None:
    """The Ray settings of a command, checked before any work starts; None: run in this process."""
    from rewardlens.jobs.ray_pool import RayOptions, check_reachable, check_workers

    check_workers(workers)
    if gpus_per_worker <= 0:
        raise UserError("--gpus-per-worker must be positive")
    if ray is None:
        if workers is not None:
            raise UserError("--workers needs --ray (the number of Ray scoring actors)")
        return None
    if ray != LOCAL_RAY:
        check_reachable(ray)  # seconds, before any directory is made or model loaded
    return RayOptions(address=None if ray == LOCAL_RAY else ray, workers=workers, gpus_per_worker=gpus_per_worker)
