"""Options shared by every command that loads a model (score, sweep, words, audit, render, ...)."""

from __future__ import annotations

from typing import Annotated

import typer

from rewardlens.models.templates import check_sequences, parse_date

ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Model directory, .gguf file, hub id (from the local cache offline) or alias smollm2-135m-instruct.",
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
