"""`rewardlens similarity arrays|compare|layers|measures|sensitivity` and `rewardlens bench similarity`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from rewardlens.cli.apps import bench_app, similarity_app
from rewardlens.cli.progress import transient_progress
from rewardlens.errors import UserError

OptionList = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-o",
        help="A measure option KEY=VALUE, repeatable (rsa: rdm=euclidean, compare=pearson; "
        "rbf-cka: threshold=0.3). See `rewardlens similarity measures`.",
    ),
]
CenterOption = Annotated[bool | None, typer.Option("--center/--no-center", help="Centre columns first (default: yes).")]
PermutationsOption = Annotated[int, typer.Option(help="Permutation test with N shuffles of the stimuli (0: none).")]
BootstrapOption = Annotated[
    int, typer.Option(help="Percentile bootstrap CI from N resamples of the stimuli (0: none).")
]
SeedOption = Annotated[int, typer.Option(help="Seed of the permutations and bootstrap samples.")]
LevelOption = Annotated[float, typer.Option(help="Confidence level of the bootstrap interval.")]


def parse_options(pairs: list[str] | None, center: bool | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--option needs KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    if center is not None:
        options["center"] = center
    return options


def load_npy(path: Path) -> np.ndarray:
    """A memory-mapped .npy (large arrays are then streamed), or one clear line about why not."""
    from rewardlens.similarity.validation import check_dtype, check_shape  # imports torch: not at CLI start

    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"{path}: not a numeric .npy array ({str(err).splitlines()[0]})") from None
    if not isinstance(array, np.ndarray):
        raise UserError(f"{path}: holds several arrays (.npz); save the one to compare with numpy.save")
    check_dtype(array.dtype, str(path))
    check_shape(tuple(array.shape), str(path))
    return array


@contextmanager
def progress_bar(console: Console, label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A transient rich bar on stderr for long loops; nothing when there is nothing to count."""
    if total <= 0:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with transient_progress(console, *columns) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done: progress.advance(task, done)


@similarity_app.command("arrays")
def arrays_command(
    x_path: Annotated[Path, typer.Argument(help="X.npy: one row per stimulus.", show_default=False)],
    y_path: Annotated[Path, typer.Argument(help="Y.npy: the same stimuli in the same order.", show_default=False)],
    measure: Annotated[
        str,
        typer.Option("--measure", "-m", help="rv|rv2|linear-cka|rbf-cka|debiased-cka|rsa|procrustes|cca."),
    ] = "rv2",
    option: OptionList = None,
    center: CenterOption = None,
    permutations: PermutationsOption = 0,
    bootstrap: BootstrapOption = 0,
    seed: SeedOption = 0,
    level: LevelOption = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Similarity of two arrays with the same stimuli (rows); optional permutation test and bootstrap CI."""
    from rewardlens.similarity import compare, get_measure
    from rewardlens.similarity.inference import bootstrap_ci, permutation_test

    chosen = get_measure(measure)
    options = parse_options(option, center)
    resolved = chosen.resolve(options)
    x, y = load_npy(x_path), load_npy(y_path)
    console = Console(stderr=True)
    names = (str(x_path), str(y_path))
    result: dict[str, Any] = {
        "measure": chosen.name,
        "value": compare(x, y, chosen.name, names=names, **options),
    }
    result.update({"larger_is_more_similar": chosen.larger_is_more_similar, "n": int(x.shape[0]), "options": resolved})
    if permutations:
        with progress_bar(console, "permutations", permutations) as advance:
            tested = permutation_test(
                x,
                y,
                chosen.name,
                permutations=permutations,
                seed=seed,
                names=names,
                progress=advance,
                **options,
            )
        result.update({"p_value": tested.p_value, "permutations": permutations})
    if bootstrap:
        with progress_bar(console, "bootstrap", bootstrap) as advance:
            interval = bootstrap_ci(
                x,
                y,
                chosen.name,
                samples=bootstrap,
                seed=seed,
                level=level,
                names=names,
                progress=advance,
                **options,
            )
        result.update({"ci_low": interval.ci_low, "ci_high": interval.ci_high, "bootstrap": bootstrap, "level": level})
    if permutations or bootstrap:
        result["seed"] = seed
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(show_header=False)
    for key, value in result.items():
        table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
    Console().print(table)


def parse_candidates(specs: list[str]) -> dict[str, Path]:
    """--candidate NAME=PATH, each name once."""
    candidates: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise UserError(f"--candidate needs NAME=PATH, got {spec!r}")
        if name.strip() in candidates:
            raise UserError(f"--candidate {name.strip()!r} is given twice")
        candidates[name.strip()] = Path(path.strip())
    return candidates


@similarity_app.command("compare")
def compare_command(
    target: Annotated[
        list[str],
        typer.Option("--target", help="T.npy: the target (n x d); repeat for repeated measurements of it."),
    ],
    candidate: Annotated[
        list[str], typer.Option("--candidate", help="NAME=C.npy: a candidate model (same n rows); repeatable.")
    ],
    measure: Annotated[
        str,
        typer.Option("--measure", "-m", help="rv|rv2|linear-cka|rbf-cka|debiased-cka|rsa|procrustes|cca."),
    ] = "rv2",
    option: OptionList = None,
    center: CenterOption = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples of the stimuli (CIs and paired p).")] = 1000,
    seed: SeedOption = 0,
    level: LevelOption = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Candidates against one target: CIs, paired differences over stimuli and, with repetitions, the noise ceiling."""
    from rewardlens.similarity import get_measure
    from rewardlens.similarity.inference import compare_models

    chosen = get_measure(measure)
    options = parse_options(option, center)
    chosen.resolve(options)  # refuse bad options before reading any file
    paths = parse_candidates(candidate)
    targets = [load_npy(Path(path)) for path in target]
    candidates = {name: load_npy(path) for name, path in paths.items()}
    with progress_bar(Console(stderr=True), "bootstrap", bootstrap * len(candidates)) as advance:
        result = compare_models(
            candidates,
            targets,
            chosen.name,
            bootstrap=bootstrap,
            seed=seed,
            level=level,
            progress=advance,
            **options,
        ).to_dict()
    if as_json:
        typer.echo(json.dumps(result))
        return
    print_comparison(result)


def print_comparison(result: dict[str, Any]) -> None:
    console = Console()
    percent = f"{result['level']:.0%}"
    scores = Table(title=f"{result['measure']} to the mean target ({result['stimuli']} stimuli)")
    for column in ("candidate", "score", f"{percent} CI (stimuli)", "per repetition"):
        scores.add_column(column)
    for row in result["candidates"]:
        per_repetition = f"{row['per_repetition']:.4f}" if "per_repetition" in row else "-"
        scores.add_row(
            row["name"], f"{row['score']:.4f}", f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}]", per_repetition
        )
    console.print(scores)
    if result["pairs"]:
        pairs = Table(title="paired differences (bootstrap over stimuli, two-sided)")
        for column in ("a", "b", "difference", f"{percent} CI", "p"):
            pairs.add_column(column)
        for row in result["pairs"]:
            interval = f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}]"
            pairs.add_row(row["a"], row["b"], f"{row['difference']:.4f}", interval, f"{row['p_value']:.3g}")
        console.print(pairs)
    ceiling = result["noise_ceiling"]
    if ceiling:
        console.print(
            f"noise ceiling ({ceiling['repetitions']} repetitions, bounds 'per repetition'): "
            f"lower {ceiling['lower']:.4f}, upper {ceiling['upper']:.4f}"
        )
    console.print("Scores, CIs and p-values generalize over stimuli; target repetitions enter only the ceiling.")


@similarity_app.command("measures")
def measures_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the registry as JSON.")] = False,
) -> None:
    """The registered measures: direction, invariances, options and reference."""
    from rewardlens.similarity import MEASURES

    described = [measure.describe() for measure in MEASURES.values()]
    if as_json:
        typer.echo(json.dumps(described))
        return
    table = Table("measure", "larger = more similar", "invariant to", "options")
    for entry in described:
        options = ", ".join(f"{key}={value}" for key, value in entry["options"].items())
        table.add_row(
            entry["name"],
            "yes" if entry["larger_is_more_similar"] else "no (distance)",
            ", ".join(entry["invariances"]),
            options,
        )
    Console().print(table)


@similarity_app.command("sensitivity")
def sensitivity_command(
    measure: Annotated[
        str, typer.Option("--measure", "-m", help="Comma-separated measures.")
    ] = "rv,rv2,linear-cka,debiased-cka",
    n: Annotated[str, typer.Option("--n", help="Comma-separated numbers of stimuli (rows).")] = "20,50,200,1000",
    d: Annotated[str, typer.Option("--d", help="Comma-separated numbers of features (columns).")] = "64,512",
    repeats: Annotated[int, typer.Option(help="Independent draws per (relation, n, d).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the generated arrays.")] = 0,
    noise: Annotated[float, typer.Option(help="Noise sd of the linear relation Y = XW/sqrt(d) + noise E.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per (measure, relation, n, d).")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Folder for sensitivity.csv, sensitivity_values.csv and sensitivity.png.")
    ] = None,
) -> None:
    """Each measure on independent data (true similarity 0) and on a noisy linear relation, as n and d change."""
    from rewardlens.report.similarity_plots import save_sensitivity_figure
    from rewardlens.similarity.sensitivity import (
        SensitivityConfig,
        parse_int_list,
        parse_name_list,
        run_sensitivity,
        write_tables,
    )

    config = SensitivityConfig(
        measures=parse_name_list(measure, "--measure"),
        n=parse_int_list(n, "--n"),
        d=parse_int_list(d, "--d"),
        repeats=repeats,
        seed=seed,
        noise=noise,
    )
    with progress_bar(Console(stderr=True), "draws", config.draws) as advance:
        result = run_sensitivity(config, progress=advance)
    if out is not None:
        paths = write_tables(result, out)
        paths.append(save_sensitivity_figure(result.summary, out / "sensitivity.png"))
        typer.echo(f"wrote {', '.join(str(path) for path in paths)}", err=True)
    if as_json:
        for record in result.records():
            typer.echo(json.dumps(record))
        return
    table = Table("measure", "relation", "n", "d", "mean", "sd", title=f"{config.repeats} draws each, seed {seed}")
    for record in result.records():
        table.add_row(
            str(record["measure"]), str(record["relation"]), str(record["n"]), str(record["d"]),
            f"{record['mean']:.4f}", f"{record['sd']:.4f}",
        )
    Console().print(table)


@bench_app.command("similarity")
def bench_similarity_command(
    n: Annotated[int, typer.Option(help="Stimuli (rows).")] = 3000,
    d: Annotated[int, typer.Option(help="Features (columns) of each array.")] = 1024,
    seed: SeedOption = 0,
    repeats: Annotated[int, typer.Option(help="rewardlens timings: best of this many runs.")] = 5,
    reference_repeats: Annotated[int, typer.Option(help="hoggorm/rsatoolbox timings: best of this many.")] = 2,
) -> None:
    """Time rv2 and linear CKA against hoggorm and rsatoolbox on the same arrays; print one JSON line."""
    from rewardlens.bench.similarity import run_similarity_bench

    if n < 4 or d < 1 or repeats < 1 or reference_repeats < 1:
        raise UserError("bench similarity needs --n >= 4, --d >= 1 and --repeats, --reference-repeats >= 1")
    result = run_similarity_bench(n=n, d=d, seed=seed, repeats=repeats, reference_repeats=reference_repeats)
    typer.echo(json.dumps(result))


@similarity_app.command("layers")
def layers_command(
    stimuli: Annotated[
        str,
        typer.Option(
            help="Text file with one stimulus per line, or a lexicon (bundled name or .csv/.dic/.dicx): its words."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Output folder: similarity.csv, the heatmaps, and activations/<model>/ (a run each, resumable)."
        ),
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model (directory, .gguf, hub id, alias); repeat it to compare models, e.g. an RM and its base.",
        ),
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="The prompt each stimulus answers (with a template).")] = None,
    template: Annotated[
        str | None, typer.Option(help="chat (default), plain, FILE.jinja, or none for raw text.")
    ] = None,
    pool: Annotated[
        str, typer.Option(help="last (the token a reward model reads) or mean (over the response).")
    ] = "last",
    measure: Annotated[str, typer.Option("--measure", help="Comma-separated measures, e.g. rv2,linear-cka.")] = "rv2",
    option: OptionList = None,
    center: CenterOption = None,
    permutations: PermutationsOption = 0,
    bootstrap: BootstrapOption = 0,
    seed: SeedOption = 0,
    level: LevelOption = 0.95,
    batch_size: Annotated[int, typer.Option(help="Stimuli per forward pass.")] = 16,
    dtype: Annotated[str, typer.Option(help="auto|float32|bfloat16|float16.")] = "auto",
    device: Annotated[str, typer.Option(help="auto|cpu|cuda[:N].")] = "auto",
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow the model's own code.")] = False,
    ablation: Annotated[
        Path | None,
        typer.Option(help="An `ablate` output folder: every checkpoint of its trained cells joins the models."),
    ] = None,
) -> None:
    """Compare the hidden states of every layer (embeddings and each block) within and across models."""
    from rewardlens.engine import check_batch_size
    from rewardlens.report.similarity_plots import save_layer_heatmaps
    from rewardlens.similarity import get_measure
    from rewardlens.similarity.activations import POOLS
    from rewardlens.similarity.layers import (
        layer_similarity,
        load_stimuli,
        model_activations,
        model_labels,
        options_for,
        pair_count,
        safe_name,
    )
    from rewardlens.training.ablate import ablation_checkpoints

    specs = dict(zip(model_labels(model or []), model or [], strict=True))
    for label, path in ablation_checkpoints(ablation) if ablation is not None else []:
        if label in specs:
            raise UserError(f"two models are labelled {label!r}; compare the checkpoint by --ablation only")
        specs[label] = str(path)
    if not specs:
        raise UserError("give at least one --model (or --ablation DIR)")
    check_batch_size(batch_size)
    names = [name.strip() for name in measure.split(",") if name.strip()]
    chosen = [get_measure(name) for name in names]
    options = parse_options(option, center)
    options_for(chosen, options)  # refuse bad options before loading any model
    if pool not in POOLS:
        raise UserError(f"unknown pooling {pool!r}; choose from: {', '.join(POOLS)}")
    texts = load_stimuli(stimuli)
    if template != "none" and prompt is None:
        raise UserError("--prompt is required with a chat template (or pass --template none for raw text)")
    labels = list(specs)
    console = Console(stderr=True)
    activations = {}
    for label, spec in specs.items():
        with progress_bar(console, f"hidden states {label}", len(texts)) as advance:
            activations[label] = model_activations(
                spec,
                texts,
                out / "activations" / safe_name(label),
                prompt=prompt,
                template=template,
                pool=pool,
                batch_size=batch_size,
                dtype=dtype,
                device=device,
                trust_remote_code=trust_remote_code,
                progress=advance,
            )
    with progress_bar(console, "layer pairs", pair_count(activations) * len(chosen)) as advance:
        frame = layer_similarity(
            activations,
            names,
            options=options,
            permutations=permutations,
            bootstrap=bootstrap,
            seed=seed,
            level=level,
            progress=advance,
        )
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "similarity.csv", index=False)
    directions = {m.name: m.larger_is_more_similar for m in chosen}
    heatmaps = save_layer_heatmaps(frame, out, directions, {label: safe_name(label) for label in labels})
    table = Table("model", "layers", "stimuli", "layers equal for every stimulus (NaN)")
    constant = frame.attrs.get("constant_layers", {})
    for label in labels:
        equal = ", ".join(f"layer {index}" for index in constant.get(label, [])) or "none"
        table.add_row(label, str(len(activations[label])), str(len(texts)), equal)
    Console().print(table)
    typer.echo(f"wrote {out / 'similarity.csv'} ({len(frame)} rows) and {len(heatmaps)} heatmap(s)")
