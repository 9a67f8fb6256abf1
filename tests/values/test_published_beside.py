"""Local word runs beside the ten published RMs: families, bundled inputs, one analysis, the report section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rewardlens.analysis.conclusions import FAMILY_CONTRAST, FAMILY_INTERACTION, FRAMING_DIFFERENCE, WITHIN_MODEL
from rewardlens.analysis.family import NO_FAMILY, assign_families, infer_family, parse_family_options
from rewardlens.errors import UserError
from rewardlens.imports import bundled_scores, read_scores_csv
from rewardlens.lexicons import load_lexicon
from rewardlens.prompts import Prompt, load_prompts
from rewardlens.published import (
    PUBLISHED_FAMILIES,
    BesidePublished,
    beside_published,
    prompt_mismatch,
    published_bundle,
    published_inputs,
    published_model_name,
)
from rewardlens.report.audit_html import write_report
from rewardlens.runs import write_run

LOCAL_A = "local/tiny-agentic"
LOCAL_B = "local/tiny-communal"
# The ten alone (README, "analyze values" on the published scores): gemma - llama in Agency - Communion,
# percentile points. Estimates do not depend on permutations or bootstrap draws.
TEN_ALONE = {"negative": -3.415350, "positive": 1.697036, FRAMING_DIFFERENCE: 5.112387}


def write_local_run(directory: Path, model: str, agency_shift: float, prompts: list[Prompt]) -> Path:
    """A word run of the Big Two nouns as `run_words` writes it, with scores that favour one category strongly:
    if the model leaked into a family, the family estimates would move."""
    entries = load_lexicon("big2-nouns").entries
    words = entries.groupby("word", sort=False)["category"].agg(";".join).reset_index()  # as a word run stores them
    rng = np.random.default_rng(len(model))
    agency = words["category"].str.contains("Agency").to_numpy()
    frames = [
        pd.DataFrame(
            {
                "model": model,
                "prompt_id": prompt.id,
                "prompt": prompt.text,
                "response": words["word"].tolist(),
                "score": rng.normal(size=len(words)) + agency_shift * agency,
                "category": words["category"].to_numpy(),
            }
        )
        for prompt in prompts
    ]
    manifest = {
        "kind_of_run": "words",
        "model": model,
        "prompts": [prompt.to_dict() for prompt in prompts],
        "lexicon": "big2-nouns",
    }
    write_run(directory, manifest, pd.concat(frames, ignore_index=True))
    return directory


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("local")
    prompts = load_prompts("value54")
    return [
        write_local_run(root / "a" / "words-big2-nouns", LOCAL_A, 3.0, prompts),
        write_local_run(root / "b" / "words-big2-nouns", LOCAL_B, -3.0, prompts),
    ]


@pytest.fixture(scope="module")
def beside(local_runs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> BesidePublished:
    return beside_published(local_runs, "big2-nouns", tmp_path_factory.mktemp("beside"), n_permutations=200)


def test_the_ten_have_families_from_their_names_and_share_the_value54_prompts() -> None:
    files = bundled_scores("big2")
    names = [published_model_name(file.stem) for file in files]
    assert sorted(n for n in names if n) == sorted(PUBLISHED_FAMILIES)
    assert sorted(PUBLISHED_FAMILIES.values()).count("gemma") == 4 and len(PUBLISHED_FAMILIES) == 10
    assert all(infer_family(name) == family for name, family in PUBLISHED_FAMILIES.items())
    assert published_model_name("big2_rewards_someone_Other-RM") is None and published_model_name("x") is None
    value54 = {prompt.id for prompt in load_prompts("value54")}
    for file in files:
        assert set(read_scores_csv(file)["prompt_id"]) == value54
    assert published_bundle("big2-nouns") == "big2" and published_bundle("mfd2") == "mfd2"
    assert published_bundle("big2-expanded") is None


def test_published_inputs_leave_local_models_without_a_family(local_runs: list[Path]) -> None:
    inputs = published_inputs("big2-nouns", local_runs)
    assert inputs.paths == bundled_scores("big2")
    aliases = {path.stem: (path.stem, path.name) for path in inputs.paths}
    aliases |= {LOCAL_A: (str(local_runs[0].name),), LOCAL_B: (str(local_runs[1].name),)}
    assigned = assign_families(aliases, parse_family_options(inputs.families))
    assert assigned[LOCAL_A] == assigned[LOCAL_B] == NO_FAMILY
    assert sorted(v for k, v in assigned.items() if k not in (LOCAL_A, LOCAL_B)).count("llama") == 6
    # A family the user gives wins over the default, for a local and a published model alike.
    stem = inputs.paths[0].stem
    given = published_inputs("big2-nouns", local_runs, [f"{LOCAL_A}=llama", f"{stem}=other"])
    assigned = assign_families(aliases, parse_family_options(given.families))
    assert assigned[LOCAL_A] == "llama" and assigned[stem] == "other" and assigned[LOCAL_B] == NO_FAMILY
    with pytest.raises(UserError, match="no published scores"):
        published_inputs("big2-expanded", local_runs)


def test_family_analysis_is_over_the_ten_and_local_models_keep_their_rows(beside: BesidePublished) -> None:
    conclusions = pd.read_csv(beside.report.out / "conclusions.csv")
    assert beside.local_models == (LOCAL_A, LOCAL_B)
    family = conclusions[conclusions["claim"].isin([FAMILY_CONTRAST, FAMILY_INTERACTION])]
    # Two local models of no family would otherwise be compared as a family "none" of two.
    assert set(family["contrast"]) == {"gemma - llama: Agency - Communion"}
    assert (family["unit"] == "model").all() and (family["n_units"] == 10).all() and len(family) == 3 * 2
    assert family["note"].str.startswith("4 vs 6 models").all()
    for framing, estimate in TEN_ALONE.items():
        assert family.loc[family["framing"] == framing, "estimate"].to_numpy() == pytest.approx(estimate, abs=1e-4)
    within = conclusions[conclusions["claim"] == WITHIN_MODEL]
    assert within["scope"].nunique() == 12
    for model, sign in ((LOCAL_A, -1), (LOCAL_B, 1)):  # lower percentile = better: agency favoured is < 0
        rows = within[within["scope"] == model]
        assert set(rows["framing"]) == {"positive", "negative"} and (rows["unit"] == "word").all()
        assert (np.sign(rows["estimate"]) == sign).all() and (rows["p_value"] < 0.05).all()
    assert beside.figure.is_file() and beside.figure.with_suffix(".pdf").is_file()
    assert not any("not comparable" in note for note in beside.notes)


def test_mixed_models_and_family_tests_are_over_the_ten(beside: BesidePublished) -> None:
    conclusions = beside.report.analysis.conclusions
    mixed = conclusions[conclusions["test"].str.startswith("linear mixed model")]
    assert set(mixed["unit"]) == {"prompt", "model"}  # the published fit and the random slopes
    assert set(mixed.loc[mixed["unit"] == "prompt", "n_units"]) == {540}  # the ten's 10 x 54 cells
    assert set(mixed.loc[mixed["unit"] == "model", "n_units"]) == {10}
    tests = beside.report.analysis.tests
    assert NO_FAMILY not in {*tests["group_a"], *tests["group_b"]}


def test_report_section_beside_the_ten(beside: BesidePublished, tmp_path: Path) -> None:
    report = write_report(tmp_path / "report.html", [], {}, published={"big2-nouns": beside})
    document = report.read_text(encoding="utf-8")
    section = document.split("Beside the ten published reward models: big2-nouns", 1)[1]
    assert LOCAL_A in section and "Ray2333/GRM-gemma2-2B-rewardmodel-ft" in section
    assert "4 gemma, 6 llama" in section and section.count("data:image/png;base64,") == 1
    assert "The family analysis over the published models" in section
    assert "4 vs 6 models: the smallest attainable permutation p is 0.0048" in section
    assert "new reward models of the gemma and llama base families" in section
    assert "A description, not a test" in section
    plain = write_report(tmp_path / "plain.html", [], {}).read_text(encoding="utf-8")
    assert "Beside the ten" not in plain


def test_a_local_run_under_other_prompts_is_noted(tmp_path: Path) -> None:
    other = [Prompt("my_prompt", "Name one good thing.", "positive"), *load_prompts("value54")[:1]]
    run = write_local_run(tmp_path / "run", "local/other", 0.0, other)
    note = prompt_mismatch(run)
    assert note is not None and "1 of its 2 prompts" in note and "'my_prompt'" in note
