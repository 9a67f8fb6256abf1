"""`rewardlens render`: what exactly is scored, id by id, without loading the weights."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rewardlens.cli.apps import app
from rewardlens.cli.options import ModelOption, with_model_options
from rewardlens.config import DEFAULT_MODEL, ModelOptions
from rewardlens.errors import UserError


@app.command()
@with_model_options(without=("dtype", "device", "device_map"))  # no weights are loaded
def render(
    options: ModelOptions,
    model: ModelOption = DEFAULT_MODEL,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The user prompt.")] = (
        "What, in one word, is the greatest thing ever?"
    ),
    response: Annotated[
        list[str] | None, typer.Option("--response", "-r", help="A text response (repeatable).")
    ] = None,
    token_id: Annotated[
        list[int] | None, typer.Option("--token-id", help="A single-token response by id (repeatable).")
    ] = None,
    vocab: Annotated[
        bool,
        typer.Option("--vocab", help="Compare the exact and the published pipeline over the whole vocabulary."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON line per response (with --vocab: one line of counts).")
    ] = False,
) -> None:
    """Show the ids each response is scored as, the text of every id, and the position a reward model reads.

    --model may be a directory holding only a tokenizer: the read position then follows the tokenizer's pad id.
    """
    from rewardlens.render import compare_pipelines, load_render_subject, render_responses

    if vocab and (response or token_id):
        raise UserError("--vocab compares the whole vocabulary; it takes no --response or --token-id")
    if not vocab and not response and not token_id:
        raise UserError("nothing to render: pass --response, --token-id or --vocab")
    subject = load_render_subject(model, options)
    if vocab:
        counts = compare_pipelines(subject.template, prompt).to_dict()
        summary = {"model": subject.name, "prompt": prompt, "date": subject.template.date_string, **counts}
        if as_json:
            typer.echo(json.dumps(summary, ensure_ascii=False))
        else:
            _print_counts(summary)
        return
    rendered = render_responses(subject, prompt, response or [], token_id or [])
    if as_json:
        for item in rendered:
            typer.echo(json.dumps({"prompt": prompt, **item.to_dict()}, ensure_ascii=False))
        return
    console = Console()
    for item in rendered:
        console.print(_table(subject.name, item.to_dict()))


def _table(name: str, item: dict[str, Any]) -> Table:
    rule = item["read_rule"]
    if rule is None:
        read = "no read position (language model)"
    else:
        read = f"read rule {rule['rule']} (pad id {rule['pad_token_id']}, from {rule['from']})"
    table = Table(title=f"{name} — {item['response']!r} ({item['sequences']} sequence; {read})")
    for column in ("index", "id", "piece", "token", "part"):
        table.add_column(column, justify="right" if column in ("index", "id") else "left")
    for index, (token, piece, raw) in enumerate(zip(item["ids"], item["pieces"], item["tokens"], strict=True)):
        part = "prompt" if index < item["prompt_length"] else "response"
        if index == item["read_at"]:
            part += "  <- read"
        table.add_row(str(index), str(token), repr(piece), raw, part)
    return table


def _print_counts(summary: dict[str, Any]) -> None:
    table = Table(title=f"{summary['model']}: exact vs published single-token sequences")
    table.add_column("")
    table.add_column("ids", justify="right")
    table.add_column("examples")
    examples = summary["examples"]
    for key in ("tokens", "differ", "double_bos", "trimmed", "merged", "collisions"):
        shown = ", ".join(f"{token_id}:{text!r}" for token_id, text in examples.get(key, []))
        table.add_row(key, f"{summary[key]:,}", shown)
    table.add_row("collision groups", f"{summary['collision_groups']:,}", "")
    Console().print(table)
