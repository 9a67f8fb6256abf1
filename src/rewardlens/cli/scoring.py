"""`rewardlens score` and `rewardlens bench engine`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rewardlens.cli.apps import app, bench_app
from rewardlens.cli.options import (
    BatchSizeOption,
    DeviceOption,
    DtypeOption,
    EngineOption,
    ModelOption,
    TrustRemoteCodeOption,
    with_model_options,
)
from rewardlens.config import DEFAULT_MODEL, ModelOptions
from rewardlens.errors import UserError


def _read_responses(responses: list[str], responses_file: Path | None) -> list[str]:
    collected = list(responses)
    if responses_file is not None:
        try:
            lines = responses_file.read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise UserError(f"cannot read responses file '{responses_file}': {err.strerror}") from None
        collected.extend(line for line in lines if line.strip())
    if not collected:
        raise UserError("no responses to score: pass --response or --responses-file")
    return collected


@app.command()
@with_model_options()
def score(
    options: ModelOptions,
    model: ModelOption = DEFAULT_MODEL,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The user prompt.")] = (
        "What, in one word, is the greatest thing ever?"
    ),
    response: Annotated[list[str] | None, typer.Option("--response", "-r", help="A response (repeatable).")] = None,
    responses_file: Annotated[Path | None, typer.Option(help="One response per line.")] = None,
    engine: EngineOption = "cached",
    batch_size: BatchSizeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines {prompt, response, score}.")] = False,
) -> None:
    """Score responses to a prompt with a reward model (raw logit) or a language model (log-probability)."""
    from rewardlens.scorers import load_scorer

    responses = _read_responses(response or [], responses_file)
    from rewardlens.engine import check_engine

    check_engine(engine)
    scorer = load_scorer(model, options)
    scores = scorer.score_texts(prompt, responses, engine=engine, batch_size=batch_size)
    if as_json:
        for text, value in zip(responses, scores, strict=True):
            typer.echo(json.dumps({"prompt": prompt, "response": text, "score": float(value)}))
        return
    what = "reward" if scorer.kind == "reward" else "log p(response | prompt)"
    table = Table(title=f"{scorer.name} — {prompt}")
    table.add_column("response")
    table.add_column(what, justify="right")
    for text, value in zip(responses, scores, strict=True):
        table.add_row(text, f"{value:.6f}")
    Console().print(table)


@bench_app.command("engine")
def bench_engine(
    model: ModelOption = DEFAULT_MODEL,
    candidates: Annotated[int, typer.Option(help="Single-token candidates to score.")] = 2048,
    batch_size: Annotated[int, typer.Option(help="Sequences per batch.")] = 256,
    dtype: DtypeOption = "auto",
    device: DeviceOption = "auto",
    trust_remote_code: TrustRemoteCodeOption = False,
    seed: Annotated[int, typer.Option(help="Seed of the random score head put on a causal LM.")] = 0,
    replica: Annotated[
        str, typer.Option(help="none, or gated: a seeded random QRM-layout gated head on the model's backbone.")
    ] = "none",
) -> None:
    """Time `batched`, `cached` and the model's own forward on the same single-token candidates; one JSON line."""
    from rewardlens.bench.engine import benchmark_engine

    result = benchmark_engine(
        model,
        candidates=candidates,
        batch_size=batch_size,
        dtype=dtype,
        device=device,
        trust_remote_code=trust_remote_code,
        seed=seed,
        replica=replica,
    )
    typer.echo(json.dumps(result))
