"""Reading a study file: every problem is one line naming its key, before any job starts.

A model entry's keys are the fields of `rewardlens.config.ModelOptions` (validated by it) plus where it is
written and how it is batched and placed (`rewardlens.study.schema.ENTRY_KEYS`); `defaults:` takes the same
keys and applies them to every model (a model's own keys win).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rewardlens.config import (
    ANALYSES,
    DEFAULT_LEXICON,
    DEFAULT_PERMUTATIONS,
    DEFAULT_POLICY_TEMPLATE,
    DEFAULT_REFERENCE_TEMPLATE,
    DEFAULT_SHARD_SIZE,
    DTYPES,
    ENGINES,
    KINDS,
    MEASURES,
    SWEEP_PROMPTS,
    WORD_PROMPTS,
    ModelOptions,
)
from rewardlens.errors import UserError
from rewardlens.layout import model_slug
from rewardlens.lexicons import load_lexicon
from rewardlens.models.spec import ALIASES, resolve_model
from rewardlens.models.templates import DATE_STRING_FORMAT, SEQUENCES, parse_date
from rewardlens.prompts import load_prompts
from rewardlens.responses import load_responses
from rewardlens.study.schema import (
    DEFAULT_KEYS,
    IMPLICIT_KEYS,
    MODEL_KEYS,
    PAIR_KEYS,
    REFERENCE_KEYS,
    SWEEP_KEYS,
    TOP_KEYS,
    WORDS_KEYS,
    ImplicitPair,
    ImplicitSection,
    ReferenceSection,
    Study,
    StudyModel,
    SweepSection,
    WordsSection,
)

RECIPES_PACKAGE = "rewardlens.data"
RECIPES_DIR = "recipes"


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

    looks_local = spec in ALIASES or spec.startswith((".", "/", "~")) or spec.endswith(".gguf")
    looks_local = looks_local or spec.count("/") != 1 or Path(spec).expanduser().exists()
    if not looks_local:
        return
    try:
        resolve_model(spec)
    except UserError as err:
        raise UserError(f"{source}: {path}: {err}") from None


# The type a study file gives each `ModelOptions` field (checked before the options validate their values).
_OPTION_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "bool": (bool, "true or false"),
    "str": (str, "a string"),
    "str | None": (str, "a string"),
    "int | None": (int, "an integer"),
}


def _options(merged: dict[str, Any], source: str, path: str, base: Path | None) -> ModelOptions:
    """The `ModelOptions` of an entry (or the defaults): every field typed, then validated by the options."""
    values: dict[str, Any] = {}
    for option in fields(ModelOptions):
        if option.name not in merged or merged[option.name] is None:
            continue
        value = merged[option.name]
        if option.name == "date":
            value = _date(value, source, f"{path}.date")
        else:
            kind, what = _OPTION_TYPES[str(option.type)]
            value = _typed(value, kind, source, f"{path}.{option.name}", what)
        values[option.name] = value
    if values.get("template"):
        values["template"] = _local_path(values["template"], base)
    for key, choices in (("dtype", DTYPES), ("kind", KINDS), ("sequences", SEQUENCES)):
        if key in values:
            _choice(values[key], choices, source, f"{path}.{key}")
    return ModelOptions(**values)


def _model(entry: Any, defaults: dict[str, Any], index: int, source: str, base: Path | None) -> StudyModel:
    path = f"models[{index}]"
    if isinstance(entry, str):
        entry = {"model": entry}
    given = _check_keys(entry, MODEL_KEYS, source, path)
    if "model" not in given or given["model"] in (None, ""):
        raise UserError(f"{source}: {path} names no model (add 'model: HUB_ID_OR_PATH')")
    merged = {**defaults, **given}
    spec = _local_path(str(_typed(merged["model"], str, source, f"{path}.model", "a string")), base)
    _check_model_exists(spec, source, f"{path}.model")
    batch_size = merged.get("batch_size")
    if batch_size is not None and (_typed(batch_size, int, source, f"{path}.batch_size", "an integer") < 1):
        raise UserError(f"{source}: {path}.batch_size must be at least 1")
    gpus = merged.get("gpus_per_worker", 1.0)
    if _typed(gpus, (int, float), source, f"{path}.gpus_per_worker", "a number") <= 0:
        raise UserError(f"{source}: {path}.gpus_per_worker must be positive")
    for text in ("family", "name"):
        if merged.get(text) is not None:
            _typed(merged[text], str, source, f"{path}.{text}", "a string")
    return StudyModel(
        spec=spec,
        name=str(merged.get("name") or model_slug(spec)),
        options=_options(merged, source, path, base),
        batch_size=batch_size,
        gpus_per_worker=float(gpus),
        family=merged.get("family"),
    )


def _prompt_set(spec: Any, source: str, path: str, base: Path | None) -> str:

    resolved = _local_path(str(_typed(spec, str, source, path, "a prompt set name or file")), base)
    try:
        load_prompts(resolved)
    except UserError as err:
        raise UserError(f"{source}: {path}: {err}") from None
    return resolved


def _lexicon(spec: Any, source: str, path: str, base: Path | None) -> str:

    resolved = _local_path(str(_typed(spec, str, source, path, "a lexicon name or file")), base)
    try:
        load_lexicon(resolved)
    except UserError as err:
        raise UserError(f"{source}: {path}: {err}") from None
    return resolved


def _responses(spec: Any, human: Any, source: str, base: Path | None) -> tuple[str | None, str | None]:
    """`words.responses` (a response list, read now) and `words.human` (a numeric column of it)."""
    if spec is None:
        if human is not None:
            raise UserError(f"{source}: words.human names a column of words.responses; add 'responses: FILE'")
        return None, None
    resolved = _local_path(str(_typed(spec, str, source, "words.responses", "a responses file")), base)
    try:
        listed = load_responses(resolved)
    except UserError as err:
        raise UserError(f"{source}: words.responses: {err}") from None
    if human is not None:
        try:
            listed.require_numeric(str(_typed(human, str, source, "words.human", "a column name")))
        except UserError as err:
            raise UserError(f"{source}: words.human: {err}") from None
    return str(Path(resolved).resolve()), (str(human) if human is not None else None)


def _implicit_section(value: Any, source: str, base: Path | None) -> ImplicitSection:
    given = _check_keys(value, IMPLICIT_KEYS, source, "implicit")
    entries = given.get("pairs")
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
                str(pair.get("policy_template", DEFAULT_POLICY_TEMPLATE)),
                str(pair.get("reference_template", DEFAULT_REFERENCE_TEMPLATE)),
            )
        )
    responses = str(given.get("responses", "vocab"))
    if responses != "vocab":
        responses = _lexicon(responses, source, "implicit.responses", base)
    beta = _typed(given.get("beta", 1.0), (int, float), source, "implicit.beta", "a number")
    return ImplicitSection(
        pairs=tuple(pairs),
        prompts=_prompt_set(given.get("prompts", WORD_PROMPTS), source, "implicit.prompts", base),
        responses=responses,
        measure=_choice(given.get("measure", "log-ratio"), MEASURES, source, "implicit.measure"),
        beta=float(beta),
    )


def _reference_section(value: Any, source: str, base: Path | None) -> ReferenceSection:
    given = _check_keys({"model": value} if isinstance(value, str) else value, REFERENCE_KEYS, source, "reference")
    if not given.get("model"):
        raise UserError(f"{source}: reference names no model (add 'model: HUB_ID_OR_PATH')")
    spec = _local_path(str(_typed(given["model"], str, source, "reference.model", "a string")), base)
    _check_model_exists(spec, source, "reference.model")
    templates = {}
    for key, default in (("template", DEFAULT_REFERENCE_TEMPLATE), ("policy_template", DEFAULT_POLICY_TEMPLATE)):
        templates[key] = str(_typed(given.get(key, default), str, source, f"reference.{key}", "a string"))
    return ReferenceSection(spec, **templates)


def parse_study(document: Any, source: str = "study", base: Path | None = None) -> Study:
    """Validate a study (the parsed YAML); every problem is one line naming the key."""
    top = _check_keys(document, TOP_KEYS, source, "")
    defaults = _check_keys(top.get("defaults") or {}, DEFAULT_KEYS, source, "defaults")
    # Checked here too: a study of implicit rewards has no models to check them.
    default_options = _options(defaults, source, "defaults", base)
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
        shard_size = _typed(fields.get("shard_size", DEFAULT_SHARD_SIZE), int, source, "sweep.shard_size", "an integer")
        if shard_size < 1:
            raise UserError(f"{source}: sweep.shard_size must be at least 1")
        sweep = SweepSection(
            prompts=_prompt_set(fields.get("prompts", SWEEP_PROMPTS), source, "sweep.prompts", base),
            tokens=str(fields.get("tokens", "all")),
            include_special=bool(
                _typed(fields.get("include_special", False), bool, source, "sweep.include_special", "true or false")
            ),
            shard_size=shard_size,
        )
    words = None
    if top.get("words") is not None:
        fields = _check_keys(top["words"], WORDS_KEYS, source, "words")
        responses, human = _responses(fields.get("responses"), fields.get("human"), source, base)
        # A section that scores a response list needs no lexicon.
        lexicons = fields.get("lexicons", [DEFAULT_LEXICON] if responses is None else [])
        if isinstance(lexicons, str):
            lexicons = [lexicons]
        if not isinstance(lexicons, list) or (not lexicons and responses is None):
            raise UserError(f"{source}: words.lexicons must be a non-empty list")
        words = WordsSection(
            prompts=_prompt_set(fields.get("prompts", WORD_PROMPTS), source, "words.prompts", base),
            lexicons=tuple(_lexicon(x, source, f"words.lexicons[{i}]", base) for i, x in enumerate(lexicons)),
            responses=responses,
            human=human,
        )
    implicit = _implicit_section(top["implicit"], source, base) if top.get("implicit") is not None else None
    reference = _reference_section(top["reference"], source, base) if top.get("reference") is not None else None
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
    if reference is not None and sweep is None and words is None:
        raise UserError(f"{source}: reference needs a 'sweep:' or 'words:' job (its responses)")
    permutations = _typed(top.get("permutations", DEFAULT_PERMUTATIONS), int, source, "permutations", "an integer")
    if permutations < 1:
        raise UserError(f"{source}: permutations must be at least 1")
    return Study(
        name=str(top.get("name") or Path(source).stem),
        description=str(top.get("description") or "").strip(),
        models=models,
        sweep=sweep,
        words=words,
        implicit=implicit,
        reference=reference,
        beside_published=bool(
            _typed(top.get("beside_published", False), bool, source, "beside_published", "true or false")
        ),
        implicit_options=default_options,
        analyses=analyses,
        engine=_choice(top.get("engine", "cached"), ENGINES, source, "engine"),
        permutations=permutations,
        seed=_typed(top.get("seed", 0), int, source, "seed", "an integer"),
        source=source,
    )


TRAINING_RECIPES_KIND = "training-recipes"  # `kind:` of a study that trains networks (similarity.recipes)


def read_study_document(spec: str | os.PathLike[str]) -> tuple[Any, str, Path | None]:
    """A study file or shipped recipe parsed as YAML: (document, source for messages, folder of the file)."""
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
    return document, source, base


def study_kind(document: Any) -> str:
    """`training-recipes` for a study that trains networks, `models` for a study of reward models."""
    if isinstance(document, Mapping) and document.get("kind") == TRAINING_RECIPES_KIND:
        return TRAINING_RECIPES_KIND
    return "models"


def load_study(spec: str | os.PathLike[str]) -> Study:
    """A study file, or the name of a shipped recipe (`rewardlens study --list`)."""
    document, source, base = read_study_document(spec)
    if study_kind(document) == TRAINING_RECIPES_KIND:
        raise UserError(f"{source}: a training-recipes study has no models to load; run it with `rewardlens study`")
    return parse_study(document, source, base)


__all__ = ["list_recipes", "load_study", "parse_study", "read_study_document", "study_kind"]
