"""`rewardlens implicit` and `bench implicit`: implicit rewards of a policy against a reference model."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from rewardlens.cli.apps import app, bench_app
from rewardlens.cli.options import (
    BatchSizeOption,
    DeviceOption,
    DtypeOption,
    EngineOption,
    GpusPerWorkerOption,
    RayOption,
    TrustRemoteCodeOption,
    WorkersOption,
    ray_options,
    with_model_options,
)
from rewardlens.cli.progress import bar_columns, transient_progress
from rewardlens.cli.sweep import _prompts
from rewardlens.config import DEFAULT_POLICY_TEMPLATE, DEFAULT_REFERENCE_TEMPLATE, ModelOptions
from rewardlens.errors import UserError

PolicyOption = Annotated[
    str, typer.Option("--policy", help="The instruction-tuned language model (spec as for --model).")
]
ReferenceOption = Annotated[
    str, typer.Option("--reference", help="The base language model it is compared with (spec as for --model).")
]
PolicyTemplateOption = Annotated[
    str, typer.Option("--policy-template", help="chat (default), plain, plain-nospace or FILE.jinja.")
]
ReferenceTemplateOption = Annotated[
    str,
    typer.Option(
        "--reference-template",
        help="plain-nospace (default: prefix 'User: {prompt}\\nAssistant:', the response after one space), "
        "plain (prefix ends in 'Assistant: '), chat or FILE.jinja.",
    ),
]


@app.command()
@with_model_options(without=("template",))  # each model has its own: --policy-template, --reference-template
def implicit(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (created, or resumed).")],
    policy: PolicyOption,
    reference: ReferenceOption,
    options: ModelOptions,
    prompt: Annotated[
        list[str] | None, typer.Option("--prompt", "-p", help="A prompt (repeatable).", show_default=False)
    ] = None,
    prompts: Annotated[
        str | None, typer.Option("--prompts", help="Bundled set (value54, optpess3) or YAML/text file.")
    ] = None,
    vocab: Annotated[bool, typer.Option("--vocab", help="Responses: every token of the vocabulary.")] = False,
    lexicon: Annotated[
        str | None, typer.Option("--lexicon", help="Responses: the words of a bundled lexicon or a lexicon file.")
    ] = None,
    measure: Annotated[str, typer.Option("--measure", help="log-ratio (DPO implicit reward) or mwlr.")] = "log-ratio",
    beta: Annotated[float, typer.Option("--beta", help="Scale of the log-ratio.")] = 1.0,
    policy_template: PolicyTemplateOption = DEFAULT_POLICY_TEMPLATE,
    reference_template: ReferenceTemplateOption = DEFAULT_REFERENCE_TEMPLATE,
    align: Annotated[
        str,
        typer.Option(
            "--align",
            help="text (default, one tokenizer or two: the texts both templates can start a response with, "
            "each side's variants of a text summed by log-sum-exp) or id (one tokenizer: the same token id, "
            "template boundary included).",
        ),
    ] = "text",
    text_rule: Annotated[
        str,
        typer.Option(
            "--text-rule", help="Text alignment: stripped (' love' = 'love') or exact (the response text exactly)."
        ),
    ] = "stripped",
    include_special: Annotated[
        bool, typer.Option("--include-special", help="Also keep control, added and reserved tokens.")
    ] = False,
    engine: EngineOption = "cached",
    batch_size: BatchSizeOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a different run in DIR.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ray: RayOption = None,
    workers: WorkersOption = None,
    gpus_per_worker: GpusPerWorkerOption = 1.0,
) -> None:
    """Implicit rewards log p_policy - log p_reference over the vocabulary or a lexicon, as a run."""
    from rewardlens.implicit import run_implicit
    from rewardlens.jobs.implicit import alignment_line

    cluster = ray_options(ray, workers, gpus_per_worker)
    if cluster is not None and (cluster.workers or 1) != 1:
        raise UserError("implicit --ray runs on one worker (policy and reference side by side); drop --workers")
    chosen = _prompts(prompt, prompts)
    console = Console(stderr=True)
    with transient_progress(console, *bar_columns()) as progress:
        task = progress.add_task("loading", total=None)
        if cluster is not None:
            from rewardlens.implicit import implicit_on_ray

            run: Callable[..., Any] = partial(implicit_on_ray, ray=cluster)
        else:
            run = partial(run_implicit, on_loading=lambda spec: progress.update(task, description=f"loading {spec}"))
        summary = run(
            policy,
            reference,
            chosen,
            out,
            vocab=vocab,
            lexicon=lexicon,
            measure=measure,
            beta=beta,
            policy_template=policy_template,
            reference_template=reference_template,
            align=align,
            text_rule=text_rule,
            include_special=include_special,
            engine=engine,
            batch_size=batch_size,
            overwrite=overwrite,
            progress=lambda n: progress.update(task, description="implicit rewards", advance=n),
            options=options,
        )
    if as_json:
        typer.echo(json.dumps({**summary.to_dict(), "alignment": summary.alignment}, default=str))
        return
    typer.echo(summary.line())
    typer.echo(alignment_line(summary.alignment))


@bench_app.command("implicit")
def bench_implicit(
    policy: PolicyOption = "smollm2-135m-instruct",
    reference: ReferenceOption = "smollm2-135m-instruct",
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The prompt.")] = (
        "What, in one word, is the greatest thing ever?"
    ),
    policy_template: PolicyTemplateOption = "chat",
    reference_template: ReferenceTemplateOption = "plain-nospace",
    repeats: Annotated[int, typer.Option(help="Best of this many alternating timings.")] = 3,
    dtype: DtypeOption = "auto",
    device: DeviceOption = "auto",
    trust_remote_code: TrustRemoteCodeOption = False,
) -> None:
    """Time a whole-vocabulary implicit reward against one plain forward pass of each model; one JSON line."""
    from rewardlens.bench.implicit import benchmark_implicit

    result = benchmark_implicit(
        policy,
        reference,
        prompt,
        policy_template=policy_template,
        reference_template=reference_template,
        repeats=repeats,
        dtype=dtype,
        device=device,
        trust_remote_code=trust_remote_code,
    )
    typer.echo(json.dumps(result))
