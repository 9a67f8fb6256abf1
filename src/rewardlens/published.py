"""The ten published reward models beside local runs: their families, their bundled scores, one analysis.

"Reward Models Inherit Value Biases from Pretraining" (Christian et al., 2026) audits ten open-weight RMs, four on
Gemma 2 and six on Llama 3.x bases; their scores of the Big Two nouns and of MFD 2.0 under the 54 value prompts are
bundled (`rewardlens.imports.bundled_scores`). `beside_published` analyses local word runs of a lexicon together with
those ten in one `analyze_value_files` call: every model gets its within-model conclusions (unit word), and the family
analysis (Gemma vs Llama, unit model) is computed over the ten. A local model belongs to no family (`NO_FAMILY`) unless
the user gives it one: one SmolLM2 is not a sample of a family, and its inferred family would be a family of one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rewardlens.analysis.family import NO_FAMILY, parse_family_options
from rewardlens.errors import UserError
from rewardlens.imports import bundled_scores
from rewardlens.prompts import Prompt, load_prompts, prompts_from_records
from rewardlens.runs import read_manifest
from rewardlens.values import ValueReport, analyze_value_files

# Hub id -> base family, as the model names say (Gemma 2: Skywork 27B and 27B-v0.2, QRM 27B, GRM 2B).
PUBLISHED_FAMILIES: dict[str, str] = {
    "LxzGordon/URM-LLaMa-3.1-8B": "llama",
    "RLHFlow/ArmoRM-Llama3-8B-v0.1": "llama",
    "Ray2333/GRM-Llama3-8B-rewardmodel-ft": "llama",
    "Ray2333/GRM-Llama3.2-3B-rewardmodel-ft": "llama",
    "Ray2333/GRM-gemma2-2B-rewardmodel-ft": "gemma",
    "Skywork/Skywork-Reward-Gemma-2-27B": "gemma",
    "Skywork/Skywork-Reward-Gemma-2-27B-v0.2": "gemma",
    "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2": "llama",
    "nicolinho/QRM-Gemma-2-27B": "gemma",
    "nicolinho/QRM-Llama3.1-8B": "llama",
}
# lexicon spec -> bundled score set scored on exactly that lexicon's words (other lexicons have none)
LEXICON_BUNDLES: dict[str, str] = {"big2-nouns": "big2", "mfd2": "mfd2"}
BUNDLE_PROMPTS = "value54"  # every bundled set was scored under these prompts


@dataclass(frozen=True)
class PublishedInputs:
    """What `analyze_value_files` needs to put the ten beside local runs."""

    paths: list[Path]  # the bundled score CSVs, one per published RM
    families: list[str]  # `KEY=FAMILY` options: the user's, then the ten's, then `none` for unnamed local models


@dataclass(frozen=True)
class BesidePublished:
    """The analysis of local runs beside the ten, and which analysed model is which."""

    report: ValueReport
    bundle: str
    local_models: tuple[str, ...]  # analysed model names of the local runs
    published_models: dict[str, str]  # analysed model name (the CSV's stem) -> Hub id
    notes: tuple[str, ...]  # the analysis's notes, then any prompt mismatch of a local run
    figure: Path  # beside.png (beside.pdf next to it): each model's contrast, local ones highlighted

    @property
    def lexicon(self) -> str:
        return self.report.analysis.lexicon


def published_bundle(lexicon: str) -> str | None:
    """The bundled score set scored on this lexicon's words (`big2-nouns` -> `big2`, `mfd2` -> `mfd2`), else None."""
    return LEXICON_BUNDLES.get(lexicon.strip().lower())


def published_model_name(stem: str) -> str | None:
    """The Hub id of a bundled CSV's stem (`big2_rewards_Ray2333_GRM-gemma2-2B-rewardmodel-ft` ->
    `Ray2333/GRM-gemma2-2B-rewardmodel-ft`), None for any other name. The files write the id's `/` as `_`,
    and no owner of the ten has `_` in its name."""
    _, sep, rest = stem.partition("_rewards_")
    name = rest.replace("_", "/", 1) if sep else ""
    return name if name in PUBLISHED_FAMILIES else None


def published_inputs(
    lexicon: str, local_runs: Sequence[str | os.PathLike[str]] = (), families: Sequence[str] = ()
) -> PublishedInputs:
    """The bundled CSVs of `lexicon` and the family options that put them beside `local_runs`.

    The user's options come first and win (`assign_families` takes the first key that names a model); a model
    they do not name gets its default: a published RM its family, a local run `none`.
    """
    user_keys = set(parse_family_options(families))
    paths = bundled_scores(_required_bundle(lexicon))
    defaults = []
    for path in paths:
        hub_id = published_model_name(path.stem)
        if hub_id is not None and not user_keys & {path.stem, path.name}:
            defaults.append(f"{path.stem}={PUBLISHED_FAMILIES[hub_id]}")
    for run in local_runs:
        model, aliases = _local_model(Path(run))
        if not user_keys & aliases:
            defaults.append(f"{model}={NO_FAMILY}")
    return PublishedInputs(paths, [*families, *defaults])


def beside_published(
    local_runs: Sequence[str | os.PathLike[str]],
    lexicon: str,
    out: str | os.PathLike[str],
    *,
    families: Sequence[str] = (),
    n_permutations: int = 10_000,
    seed: int = 0,
) -> BesidePublished:
    """Analyse the local word runs of `lexicon` beside the ten published RMs; every output goes into `out`.

    `families` are the user's `KEY=FAMILY` options for the local models (as `analyze values --family`).
    A UserError when no published scores of `lexicon` are bundled (`published_bundle` says beforehand).
    """
    bundle = _required_bundle(lexicon)
    inputs = published_inputs(lexicon, local_runs, families)
    runs = [Path(run) for run in local_runs]
    report = analyze_value_files(
        [*runs, *inputs.paths], lexicon, out, families=inputs.families, n_permutations=n_permutations, seed=seed
    )
    from rewardlens.report.values_plot import save_beside_figure  # matplotlib only when writing

    published = {path.stem: published_model_name(path.stem) or path.stem for path in inputs.paths}
    local = tuple(model for model in report.families if model not in published)
    figures = save_beside_figure(report.analysis.conclusions, report.families, local, published, report.out)
    mismatches = [note for run in runs if (note := prompt_mismatch(run)) is not None]
    return BesidePublished(report, bundle, local, published, (*report.notes, *mismatches), figures[0])


def _required_bundle(lexicon: str) -> str:
    bundle = published_bundle(lexicon)
    if bundle is None:
        raise UserError(f"no published scores of lexicon {lexicon!r} are bundled (only {', '.join(LEXICON_BUNDLES)})")
    return bundle


def _local_model(run: Path) -> tuple[str, set[str]]:
    """A run's model name (as `scores_from_run` names it) and the keys a `--family` option may use for it."""

    model = str(read_manifest(run).get("model") or run.name)
    return model, {model, Path(model).name, run.name}


def prompt_mismatch(run: Path) -> str | None:
    """Why a local run's contrasts are not comparable with the ten's, if its prompts are not theirs (else None)."""

    recorded = prompts_from_records(read_manifest(run).get("prompts", []))
    expected = {prompt.id: prompt.text for prompt in load_prompts(BUNDLE_PROMPTS)}
    differing = _differing(recorded, expected)
    if not differing:
        return None
    return (
        f"{run}: {len(differing)} of its {len(recorded)} prompts are not among the {BUNDLE_PROMPTS} prompts the ten "
        f"were scored under (e.g. {differing[0]!r}); its contrasts are not comparable with theirs"
    )


def _differing(prompts: Iterable[Prompt], expected: dict[str, str]) -> list[str]:
    return [prompt.id for prompt in prompts if expected.get(prompt.id) != prompt.text]


__all__ = [
    "BUNDLE_PROMPTS",
    "LEXICON_BUNDLES",
    "PUBLISHED_FAMILIES",
    "BesidePublished",
    "PublishedInputs",
    "beside_published",
    "published_bundle",
    "published_inputs",
    "prompt_mismatch",
    "published_model_name",
]
