"""Options shared by every command that loads a model (score, sweep, words, audit, ...)."""

from __future__ import annotations

from typing import Annotated

import typer

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

