"""Studies: one YAML file names the models, the prompt sets and lexicons, the jobs and the analyses.

`load_study` validates the whole file before any job starts (unknown keys, missing models, prompt sets
and lexicons that do not exist: one clear line each). `run_study` runs every job — a vocabulary sweep
and word runs per model, on a Ray cluster or in this process — then the analyses over all models and
one HTML report. Every job is an ordinary resumable run; a job already complete is skipped (and a model
whose jobs are all complete is not loaded), so running a study again resumes it.

Layout of OUT (the same as `rewardlens audit`):

    OUT/study.yaml                       the study as validated (what was run)
    OUT/models/<name>/sweep/             vocabulary sweep (a run)
    OUT/models/<name>/words-<lexicon>/   word scores (a run)
    OUT/values-<lexicon>/                value analysis over all models
    OUT/tokens/                          token analyses over all sweeps
    OUT/report.html                      one report over all models

A study file:

    name: my-study
    defaults: {dtype: bfloat16, revision: main}      # applied to every model (a model's own keys win)
                                                     # date: 1 Dec 2024 fixes what date-stamped templates render
    models:
      - model: Skywork/Skywork-Reward-Llama-3.1-8B-v0.2
      - model: RLHFlow/ArmoRM-Llama3-8B-v0.1
        trust_remote_code: true
        batch_size: 64
    sweep: {prompts: optpess3, tokens: all}
    words: {prompts: value54, lexicons: [big2-nouns, mfd2]}
    analyses: [tokens, values]
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rewardlens.errors import UserError
from rewardlens.layout import ModelRuns, lexicon_slug, model_slug
from rewardlens.models.templates import DATE_STRING_FORMAT, DEFAULT_DATE, SEQUENCES, parse_date
from rewardlens.progress import PhaseProgress, no_progress

DTYPES = ("auto", "float32", "bfloat16", "float16")
KINDS = ("auto", "reward", "lm")
ANALYSES = ("values", "tokens")
ENGINES = ("cached", "batched", "reference")
MODEL_KEYS = (
    "model",
    "name",
    "revision",
    "dtype",
    "trust_remote_code",
    "template",
    "date",
    "sequences",
    "batch_size",
    "kind",
    "include_end",
    "device",
    "device_map",
    "gpus_per_worker",
    "family",
)
DEFAULT_KEYS = tuple(key for key in MODEL_KEYS if key not in ("model", "name", "family"))
TOP_KEYS = (
    "name",
    "description",
    "defaults",
    "models",
    "sweep",
    "words",
    "implicit",
    "analyses",
    "engine",
    "permutations",
    "seed",
)
SWEEP_KEYS = ("prompts", "tokens", "include_special", "shard_size")
WORDS_KEYS = ("prompts", "lexicons")
IMPLICIT_KEYS = ("prompts", "responses", "measure", "beta", "pairs")
PAIR_KEYS = ("policy", "reference", "name", "policy_template", "reference_template")
MEASURES = ("log-ratio", "mwlr")
RECIPES_PACKAGE = "rewardlens.data"
RECIPES_DIR = "recipes"


@dataclass(frozen=True)
class StudyModel:
    """One model of a study and how to load it."""

    spec: str
    name: str  # directory name under OUT/models
    revision: str | None = None
    dtype: str = "auto"
    trust_remote_code: bool = False
    template: str | None = None
    date: str = DEFAULT_DATE  # what a date-stamped template renders, as its _run.json records it
    sequences: str = "exact"
    batch_size: int | None = None
    kind: str = "auto"
    include_end: bool = False
    device: str = "auto"
    device_map: str | None = None
    gpus_per_worker: float = 1.0
    family: str | None = None

    def load_options(self) -> dict[str, Any]:
        """Keyword arguments of `load_scorer` (device_map only where set: most models need none)."""
        options: dict[str, Any] = {
            "revision": self.revision,
            "dtype": self.dtype,
            "device": self.device,
            "trust_remote_code": self.trust_remote_code,
            "kind": self.kind,
            "template": self.template,
            "date": self.date,
            "sequences": self.sequences,
            "include_end": self.include_end,
        }
        if self.device_map is not None:
            options["device_map"] = self.device_map
        return options


@dataclass(frozen=True)
class SweepJob:
    prompts: str = "optpess3"
    tokens: str = "all"
    include_special: bool = False
    shard_size: int = 4096


@dataclass(frozen=True)
class WordsJob:
    prompts: str = "value54"
    lexicons: tuple[str, ...] = ("big2-nouns",)


@dataclass(frozen=True)
class ImplicitPair:
    policy: str
    reference: str
    name: str
    policy_template: str = "chat"
    reference_template: str = "plain-nospace"


@dataclass(frozen=True)
class ImplicitJob:
    """Implicit rewards of policy/reference pairs; `responses`: "vocab" or a lexicon."""

    pairs: tuple[ImplicitPair, ...]
    prompts: str = "value54"
    responses: str = "vocab"
    measure: str = "log-ratio"
    beta: float = 1.0


@dataclass(frozen=True)
class Study:
    name: str
    models: tuple[StudyModel, ...]
    sweep: SweepJob | None = None
    words: WordsJob | None = None
    implicit: ImplicitJob | None = None
    analyses: tuple[str, ...] = ()
    description: str = ""
    engine: str = "cached"
    permutations: int = 10_000
    seed: int = 0
    source: str = ""
    family_options: tuple[str, ...] = ()  # `KEY=FAMILY` strings, as `--family` of `rewardlens audit`
    implicit_options: dict[str, Any] = field(default_factory=dict)  # loading options of the pairs (defaults)

    def to_yaml(self) -> str:
        """The validated study as a study file (paths resolved), written into OUT."""
        document: dict[str, Any] = {"name": self.name}
        if self.description:
            document["description"] = self.description
        if self.implicit_options:
            document["defaults"] = dict(self.implicit_options)
        if self.models:
            document["models"] = [
                {
                    ("model" if key == "spec" else key): value
                    for key, value in asdict(model).items()
                    if value is not None
                }
                for model in self.models
            ]
        if self.sweep:
            document["sweep"] = asdict(self.sweep)
        if self.words:
            document["words"] = {"prompts": self.words.prompts, "lexicons": list(self.words.lexicons)}
        if self.implicit:
            document["implicit"] = {**asdict(self.implicit), "pairs": [asdict(p) for p in self.implicit.pairs]}
        document.update(
            analyses=list(self.analyses), engine=self.engine, permutations=self.permutations, seed=self.seed
        )
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------------------------------------- recipes


def list_recipes() -> dict[str, str]:
    """The shipped recipes: name -> description."""
    folder = resources.files(RECIPES_PACKAGE).joinpath(RECIPES_DIR)
    recipes = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            content = yaml.safe_load(entry.read_text("utf-8")) or {}
            recipes[entry.name.removesuffix(".yaml")] = str(content.get("description", "")).strip()
    return recipes


def _recipe_text(name: str) -> str | None:
    entry = resources.files(RECIPES_PACKAGE).joinpath(RECIPES_DIR).joinpath(f"{name.removesuffix('.yaml')}.yaml")
    return entry.read_text("utf-8") if entry.is_file() else None


# ------------------------------------------------------------------------------------------- validation


def _where(source: str, path: str) -> str:
    return f"{source}: {path}" if path else source


def _check_keys(value: Any, allowed: Sequence[str], source: str, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise UserError(f"{_where(source, path or 'the study')} must be a mapping of keys")
    for key in value:
        if key not in allowed:
            place = f"{path}.{key}" if path else str(key)
            raise UserError(f"{source}: unknown key '{place}' (known: {', '.join(allowed)})")
    return dict(value)


def _typed(value: Any, kind: type | tuple[type, ...], source: str, path: str, what: str) -> Any:
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise UserError(f"{source}: {path} must be {what}")
    if not isinstance(value, kind):
        raise UserError(f"{source}: {path} must be {what}")
    return value


def _choice(value: Any, choices: Sequence[str], source: str, path: str) -> str:
    if value not in choices:
        raise UserError(f"{source}: {path} is {value!r}; use one of {', '.join(choices)}")
    return str(value)


def _date_string(date: str) -> str:
    """A `--date` as runs record it and templates render it ("01 Dec 2024"), so that runs compare by day."""
    return parse_date(date).strftime(DATE_STRING_FORMAT)


def _date(value: Any, source: str, path: str) -> str:
    """A study's date; YAML reads an unquoted 2024-12-01 as a date already."""
    if isinstance(value, dt.date):
        return value.strftime(DATE_STRING_FORMAT)
    text = _typed(value, str, source, path, "a date such as 26 Jul 2024")
    try:
        return _date_string(text)
    except UserError as err:
        raise UserError(f"{source}: {path}: {err}") from None


def _local_path(spec: str, base: Path | None) -> str:
    """A spec relative to the study file's folder where such a file exists there; else unchanged."""
    if base is not None and not os.path.isabs(spec):
        candidate = base / spec
        if candidate.exists():
            return str(candidate.resolve())
    return spec


def _check_model_exists(spec: str, source: str, path: str) -> None:
    """Aliases and local paths are checked now; a hub id is fetched by the workers that load it."""
    from rewardlens.models.spec import ALIASES, resolve_model

    looks_local = spec in ALIASES or spec.startswith((".", "/", "~")) or spec.endswith(".gguf")
    looks_local = looks_local or spec.count("/") != 1 or Path(spec).expanduser().exists()
    if not looks_local:
        return
    try:
        resolve_model(spec)
    except UserError as err:
        raise UserError(f"{source}: {path}: {err}") from None


def _model(entry: Any, defaults: dict[str, Any], index: int, source: str, base: Path | None) -> StudyModel:
    path = f"models[{index}]"
    if isinstance(entry, str):
        entry = {"model": entry}
    fields = _check_keys(entry, MODEL_KEYS, source, path)
    if "model" not in fields or fields["model"] in (None, ""):
        raise UserError(f"{source}: {path} names no model (add 'model: HUB_ID_OR_PATH')")
    merged = {**defaults, **fields}
    spec = _local_path(str(_typed(merged["model"], str, source, f"{path}.model", "a string")), base)
    _check_model_exists(spec, source, f"{path}.model")
    batch_size = merged.get("batch_size")
    if batch_size is not None and (_typed(batch_size, int, source, f"{path}.batch_size", "an integer") < 1):
        raise UserError(f"{source}: {path}.batch_size must be at least 1")
    gpus = merged.get("gpus_per_worker", 1.0)
    if _typed(gpus, (int, float), source, f"{path}.gpus_per_worker", "a number") <= 0:
        raise UserError(f"{source}: {path}.gpus_per_worker must be positive")
    for flag in ("trust_remote_code", "include_end"):
        _typed(merged.get(flag, False), bool, source, f"{path}.{flag}", "true or false")
    for text in ("revision", "template", "device", "device_map", "family", "name"):
        if merged.get(text) is not None:
            _typed(merged[text], str, source, f"{path}.{text}", "a string")
    template = merged.get("template")
    return StudyModel(
        spec=spec,
        name=str(merged.get("name") or model_slug(spec)),
        revision=merged.get("revision"),
        dtype=_choice(merged.get("dtype", "auto"), DTYPES, source, f"{path}.dtype"),
        trust_remote_code=bool(merged.get("trust_remote_code", False)),
        template=_local_path(template, base) if template else None,
        date=_date(merged.get("date", DEFAULT_DATE), source, f"{path}.date"),
        sequences=_choice(merged.get("sequences", "exact"), SEQUENCES, source, f"{path}.sequences"),
        batch_size=batch_size,
        kind=_choice(merged.get("kind", "auto"), KINDS, source, f"{path}.kind"),
        include_end=bool(merged.get("include_end", False)),
        device=str(merged.get("device", "auto")),
        device_map=merged.get("device_map"),
        gpus_per_worker=float(gpus),
        family=merged.get("family"),
    )


def _prompt_set(spec: Any, source: str, path: str, base: Path | None) -> str:
    from rewardlens.prompts import load_prompts

    resolved = _local_path(str(_typed(spec, str, source, path, "a prompt set name or file")), base)
    try:
        load_prompts(resolved)
    except UserError as err:
        raise UserError(f"{source}: {path}: {err}") from None
    return resolved


def _lexicon(spec: Any, source: str, path: str, base: Path | None) -> str:
    from rewardlens.lexicons import load_lexicon

    resolved = _local_path(str(_typed(spec, str, source, path, "a lexicon name or file")), base)
    try:
        load_lexicon(resolved)
    except UserError as err:
        raise UserError(f"{source}: {path}: {err}") from None
    return resolved


def _implicit_job(value: Any, source: str, base: Path | None) -> ImplicitJob:
    fields = _check_keys(value, IMPLICIT_KEYS, source, "implicit")
    entries = fields.get("pairs")
    if not entries or not isinstance(entries, list):
        raise UserError(f"{source}: implicit.pairs must list policy/reference pairs")
    pairs = []
    for index, entry in enumerate(entries):
        path = f"implicit.pairs[{index}]"
        pair = _check_keys(entry, PAIR_KEYS, source, path)
        specs = []
        for role in ("policy", "reference"):
            if not pair.get(role):
                raise UserError(f"{source}: {path} names no {role} model")
            spec = _local_path(str(_typed(pair[role], str, source, f"{path}.{role}", "a string")), base)
            _check_model_exists(spec, source, f"{path}.{role}")
            specs.append(spec)
        name = pair.get("name") or f"{model_slug(specs[0])}-vs-{model_slug(specs[1])}"
        pairs.append(
            ImplicitPair(
                specs[0],
                specs[1],
                str(name),
                str(pair.get("policy_template", "chat")),
                str(pair.get("reference_template", "plain-nospace")),
            )
        )
    responses = str(fields.get("responses", "vocab"))
    if responses != "vocab":
        responses = _lexicon(responses, source, "implicit.responses", base)
    beta = _typed(fields.get("beta", 1.0), (int, float), source, "implicit.beta", "a number")
    return ImplicitJob(
        pairs=tuple(pairs),
        prompts=_prompt_set(fields.get("prompts", "value54"), source, "implicit.prompts", base),
        responses=responses,
        measure=_choice(fields.get("measure", "log-ratio"), MEASURES, source, "implicit.measure"),
        beta=float(beta),
    )


def parse_study(document: Any, source: str = "study", base: Path | None = None) -> Study:
    """Validate a study (the parsed YAML); every problem is one line naming the key."""
    top = _check_keys(document, TOP_KEYS, source, "")
    defaults = _check_keys(top.get("defaults") or {}, DEFAULT_KEYS, source, "defaults")
    if "date" in defaults:  # checked here too: a study of implicit rewards has no models to check it
        defaults["date"] = _date(defaults["date"], source, "defaults.date")
    entries = top.get("models")
    if entries is None and top.get("implicit") is not None and top.get("sweep") is None and top.get("words") is None:
        entries = []  # a study of implicit rewards only: its models are the pairs
    elif not entries:
        raise UserError(f"{source}: no models (add a 'models:' list)")
    if not isinstance(entries, list):
        raise UserError(f"{source}: models must be a list")
    models = tuple(_model(entry, defaults, i, source, base) for i, entry in enumerate(entries))
    names = [model.name for model in models]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise UserError(f"{source}: two models are called {duplicate!r}; give one a 'name:'")

    sweep = None
    if top.get("sweep") is not None:
        fields = _check_keys(top["sweep"], SWEEP_KEYS, source, "sweep")
        shard_size = _typed(fields.get("shard_size", 4096), int, source, "sweep.shard_size", "an integer")
        if shard_size < 1:
            raise UserError(f"{source}: sweep.shard_size must be at least 1")
        sweep = SweepJob(
            prompts=_prompt_set(fields.get("prompts", "optpess3"), source, "sweep.prompts", base),
            tokens=str(fields.get("tokens", "all")),
            include_special=bool(
                _typed(fields.get("include_special", False), bool, source, "sweep.include_special", "true or false")
            ),
            shard_size=shard_size,
        )
    words = None
    if top.get("words") is not None:
        fields = _check_keys(top["words"], WORDS_KEYS, source, "words")
        lexicons = fields.get("lexicons", ["big2-nouns"])
        if isinstance(lexicons, str):
            lexicons = [lexicons]
        if not isinstance(lexicons, list) or not lexicons:
            raise UserError(f"{source}: words.lexicons must be a non-empty list")
        words = WordsJob(
            prompts=_prompt_set(fields.get("prompts", "value54"), source, "words.prompts", base),
            lexicons=tuple(_lexicon(x, source, f"words.lexicons[{i}]", base) for i, x in enumerate(lexicons)),
        )
    implicit = _implicit_job(top["implicit"], source, base) if top.get("implicit") is not None else None
    if sweep is None and words is None and implicit is None:
        raise UserError(f"{source}: no jobs (add 'sweep:', 'words:' and/or 'implicit:')")

    analyses_value = top.get("analyses") or []
    if not isinstance(analyses_value, list):
        raise UserError(f"{source}: analyses must be a list ({', '.join(ANALYSES)})")
    analyses = tuple(_choice(a, ANALYSES, source, f"analyses[{i}]") for i, a in enumerate(analyses_value))
    if "values" in analyses and words is None:
        raise UserError(f"{source}: analyses: values needs a 'words:' job")
    if "tokens" in analyses and sweep is None:
        raise UserError(f"{source}: analyses: tokens needs a 'sweep:' job")
    permutations = _typed(top.get("permutations", 10_000), int, source, "permutations", "an integer")
    if permutations < 1:
        raise UserError(f"{source}: permutations must be at least 1")
    return Study(
        name=str(top.get("name") or Path(source).stem),
        description=str(top.get("description") or "").strip(),
        models=models,
        sweep=sweep,
        words=words,
        implicit=implicit,
        implicit_options={
            key: defaults[key] for key in ("dtype", "device", "trust_remote_code", "date") if key in defaults
        },
        analyses=analyses,
        engine=_choice(top.get("engine", "cached"), ENGINES, source, "engine"),
        permutations=permutations,
        seed=_typed(top.get("seed", 0), int, source, "seed", "an integer"),
        source=source,
    )


def load_study(spec: str | os.PathLike[str]) -> Study:
    """A study file, or the name of a shipped recipe (`rewardlens study --list`)."""
    name = os.fspath(spec)
    path = Path(name)
    if path.is_file():
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"cannot read study file {path}: {err.__class__.__name__}") from None
        source, base = str(path), path.resolve().parent
    else:
        recipe = _recipe_text(name)
        if recipe is None:
            known = ", ".join(list_recipes())
            raise UserError(f"study {name!r}: no such file and not a shipped recipe ({known})")
        text, source, base = recipe, name.removesuffix(".yaml"), None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else "invalid YAML"
        raise UserError(f"{source}: malformed YAML ({first})") from None
    return parse_study(document, source, base)


def audit_study(
    models: Sequence[str],
    *,
    lexicons: Sequence[str] = (),
    families: Sequence[str] = (),
    tokens: str = "all",
    sweep_prompts: str = "optpess3",
    word_prompts: str = "value54",
    n_permutations: int = 10_000,
    seed: int = 0,
    engine: str = "cached",
    batch_size: int | None = None,
    **model_options: Any,
) -> Study:
    """`rewardlens audit` as a study (same layout of OUT), so that an audit can run on Ray."""
    from rewardlens.lexicons import load_lexicon
    from rewardlens.prompts import load_prompts

    if not models:
        raise UserError("give at least one --model")
    chosen_lexicons = tuple(dict.fromkeys(["big2-nouns", *lexicons]))
    for lexicon in chosen_lexicons:
        load_lexicon(lexicon)  # a bad lexicon fails now, not after an hour of scoring
    load_prompts(sweep_prompts)
    load_prompts(word_prompts)
    if "date" in model_options:
        model_options["date"] = _date_string(model_options["date"])
    entries = tuple(
        StudyModel(spec=spec, name=model_slug(spec), batch_size=batch_size, **model_options) for spec in models
    )
    if len({entry.name for entry in entries}) != len(entries):
        raise UserError("two --model values have the same base name; audit them into separate --out dirs")
    return Study(
        name="audit",
        models=entries,
        sweep=SweepJob(prompts=sweep_prompts, tokens=tokens),
        words=WordsJob(prompts=word_prompts, lexicons=chosen_lexicons),
        analyses=("values",),
        engine=engine,
        permutations=n_permutations,
        seed=seed,
        family_options=tuple(families),
    )


# ---------------------------------------------------------------------------------------------- running


@dataclass
class StudyResult:
    out: Path
    models: list[ModelRuns]
    value_dirs: dict[str, Path] = field(default_factory=dict)
    tokens_dir: Path | None = None
    implicit_dirs: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None
    skipped_jobs: int = 0
    notes: list[str] = field(default_factory=list)


def _runs_of(study: Study, model: StudyModel, root: Path) -> ModelRuns:
    directory = root / "models" / model.name
    lexicons = study.words.lexicons if study.words else ()
    return ModelRuns(
        spec=model.spec,
        name=model.name,
        sweep_dir=directory / "sweep",
        word_dirs={lexicon: directory / f"words-{lexicon_slug(lexicon)}" for lexicon in lexicons},
    )


def _write_study_file(study: Study, root: Path) -> None:
    """Keep what was run beside the results (each run directory guards its own identity)."""
    from rewardlens.runs.store import prepare_directory

    prepare_directory(root)
    target = root / "study.yaml"
    temporary = target.with_name(".study.yaml.tmp")
    temporary.write_text(study.to_yaml(), encoding="utf-8")
    temporary.replace(target)


def _refuse_finished_runs_of_other_dates(study: Study, root: Path) -> None:
    """A finished job is skipped without loading its model, so the date and sequences it was scored with are
    checked here, before anything is written (an unfinished one is checked by its run store when resumed)."""
    from rewardlens.implicit import implicit_model_spec, refuse_finished_run_of_another_date

    for model in study.models:
        runs = _runs_of(study, model, root)
        for path in ([runs.sweep_dir] if study.sweep else []) + list(runs.word_dirs.values()):
            refuse_finished_run_of_another_date(path, model.spec, model.date, model.sequences)
    if study.implicit:
        date = study.implicit_options.get("date", DEFAULT_DATE)
        for pair in study.implicit.pairs:
            path = root / "implicit" / pair.name
            refuse_finished_run_of_another_date(path, implicit_model_spec(pair.policy, pair.reference), date)


def run_study(
    study: Study,
    out: str | os.PathLike[str],
    *,
    ray: Any = None,
    phase: PhaseProgress = no_progress,
) -> StudyResult:
    """Run every job of every model (on Ray when `ray` is a `RayOptions`), then the analyses and the report."""
    from rewardlens.distributed import RayOptions, open_pool, sweep_with_pool, words_with_pool
    from rewardlens.prompts import load_prompts
    from rewardlens.runs import is_complete_run

    root = Path(out)
    _refuse_finished_runs_of_other_dates(study, root)
    _write_study_file(study, root)
    sweep_prompts = load_prompts(study.sweep.prompts) if study.sweep else []
    word_prompts = load_prompts(study.words.prompts) if study.words else []
    result = StudyResult(out=root, models=[])
    for model in study.models:
        runs = _runs_of(study, model, root)
        result.models.append(runs)
        jobs = ([runs.sweep_dir] if study.sweep else []) + list(runs.word_dirs.values())
        todo = [path for path in jobs if not is_complete_run(path, model.spec)]
        result.skipped_jobs += len(jobs) - len(todo)
        if not todo:
            continue
        options = None
        if ray is not None:
            options = replace(ray, gpus_per_worker=model.gpus_per_worker) if isinstance(ray, RayOptions) else ray
        load_done = phase(f"loading {model.name}", 1, 0)
        with open_pool(model.spec, model.load_options(), options) as pool:
            load_done(1)
            runs.loaded = True
            if study.sweep and runs.sweep_dir in todo:
                sweep_with_pool(
                    pool,
                    sweep_prompts,
                    runs.sweep_dir,
                    model_spec=model.spec,
                    tokens=study.sweep.tokens,
                    include_special=study.sweep.include_special,
                    shard_size=study.sweep.shard_size,
                    batch_size=model.batch_size,
                    engine=study.engine,
                    phase=phase,
                )
            for lexicon, path in runs.word_dirs.items():
                if path in todo:
                    words_with_pool(
                        pool,
                        lexicon,
                        word_prompts,
                        path,
                        model_spec=model.spec,
                        batch_size=model.batch_size,
                        engine=study.engine,
                        phase=phase,
                    )
    if study.implicit:
        _run_implicit(study, study.implicit, root, ray, result, phase)
    _analyse(study, result, phase)
    return result


def _run_implicit(
    study: Study, job: ImplicitJob, root: Path, ray: Any, result: StudyResult, phase: PhaseProgress
) -> None:
    from rewardlens.implicit import implicit_model_spec
    from rewardlens.prompts import load_prompts
    from rewardlens.runs import is_complete_run

    prompts = load_prompts(job.prompts)
    for pair in job.pairs:
        target = root / "implicit" / pair.name
        result.implicit_dirs[pair.name] = target
        if is_complete_run(target, implicit_model_spec(pair.policy, pair.reference)):
            result.skipped_jobs += 1
            continue
        options: dict[str, Any] = {
            "vocab": job.responses == "vocab",
            "lexicon": None if job.responses == "vocab" else job.responses,
            "measure": job.measure,
            "beta": job.beta,
            "policy_template": pair.policy_template,
            "reference_template": pair.reference_template,
            "engine": study.engine,
            "progress": phase(f"implicit {pair.name}", 0, 0),
            **study.implicit_options,
        }
        if ray is not None:
            from rewardlens.distributed import implicit_on_ray

            implicit_on_ray(pair.policy, pair.reference, prompts, target, ray, **options)
        else:
            from rewardlens.implicit import run_implicit

            run_implicit(pair.policy, pair.reference, prompts, target, **options)


def _families(study: Study, result: StudyResult, lexicon: str) -> list[str]:
    """`KEY=FAMILY` options for the models whose study entry names a family (KEY: the run's model name)."""
    from rewardlens.runs import read_manifest

    options = list(study.family_options)
    for model, runs in zip(study.models, result.models, strict=True):
        if model.family:
            name = read_manifest(runs.word_dirs[lexicon]).get("model") or model.name
            options.append(f"{name}={model.family}")
    return options


def _analyse(study: Study, result: StudyResult, phase: PhaseProgress) -> None:
    from rewardlens.report.audit_html import write_report
    from rewardlens.values import analyze_value_files

    reports = {}
    if "values" in study.analyses and study.words:
        tick = phase("value analysis", len(study.words.lexicons), 0)
        for lexicon in study.words.lexicons:
            target = result.out / f"values-{lexicon_slug(lexicon)}"
            reports[lexicon] = analyze_value_files(
                [runs.word_dirs[lexicon] for runs in result.models],
                lexicon,
                target,
                families=_families(study, result, lexicon),
                n_permutations=study.permutations,
                seed=study.seed,
            )
            result.notes.extend(f"{lexicon}: {note}" for note in reports[lexicon].notes)
            result.value_dirs[lexicon] = target
            tick(1)
    if "tokens" in study.analyses and study.sweep:
        from rewardlens.analysis.tokens.api import analyze_token_runs

        tick = phase("token analyses", 1, 0)
        result.tokens_dir = result.out / "tokens"
        analyze_token_runs([runs.sweep_dir for runs in result.models], result.tokens_dir, seed=study.seed)
        tick(1)
    # The report shows each model's optimal and pessimal tokens (needs sweeps) and the value panels.
    audits = result.models if study.sweep else []
    result.report = write_report(result.out / "report.html", audits, reports)


__all__ = [
    "ImplicitJob",
    "ImplicitPair",
    "ModelRuns",
    "audit_study",
    "Study",
    "StudyModel",
    "StudyResult",
    "SweepJob",
    "WordsJob",
    "list_recipes",
    "load_study",
    "parse_study",
    "run_study",
]
