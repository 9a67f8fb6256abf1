"""The bundled published MFD 2.0 scores of ten RMs: import-scores and analyze values (virtue - vice per foundation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cli_runner import CliResult
from rewardlens.analysis.conclusions import FAMILY_CONTRAST, WITHIN_MODEL
from rewardlens.analysis.values import PUBLISHED_STRUCTURE, UNCORRELATED_SLOPES
from rewardlens.imports import bundled_scores
from rewardlens.lexicons import contrast_pairs, load_lexicon

# A subset of the 54 prompts keeps the test fast: two positive, two negative.
PROMPTS = ["best_ever_one", "greatest_world_single", "worst_ever_one", "terrible_time_please"]
FOUNDATIONS = ["Care", "Fairness", "Loyalty", "Authority", "Sanctity"]


def test_mfd_contrasts_are_virtue_minus_vice_per_foundation() -> None:
    pairs = contrast_pairs(load_lexicon("mfd2").categories)
    assert pairs == [(f"{f}_Virtue", f"{f}_Vice") for f in sorted(FOUNDATIONS)]
    assert contrast_pairs(["Communion", "Agency"]) == [("Agency", "Communion")]


def test_bundled_mfd_scores_import_and_analyse(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    files = bundled_scores("mfd2")
    assert len(files) == 10 and all(f.name.startswith("mfd2_rewards_") for f in files)
    runs = []
    for file in files:
        wide = pd.read_csv(file)
        assert wide.shape == (2040, 55)
        subset = tmp_path / file.name
        wide[["response", *PROMPTS]].to_csv(subset, index=False)
        run = tmp_path / "runs" / file.stem.removeprefix("mfd2_rewards_")
        result = run_cli("import-scores", str(subset), "--model", run.name, "--out", str(run))
        assert result.exit_code == 0, result.stderr
        runs.append(str(run))
    out = tmp_path / "out"
    result = run_cli("analyze", "values", *runs, "--lexicon", "mfd2", "--out", str(out), "--permutations", "200")
    assert result.exit_code == 0, result.stderr
    conclusions = pd.read_csv(out / "conclusions.csv")
    contrasts = {f"{f}_Virtue - {f}_Vice" for f in FOUNDATIONS}
    within = conclusions[conclusions["claim"] == WITHIN_MODEL]
    assert set(within["contrast"]) == contrasts and len(within) == 10 * 5 * 2
    across = conclusions[(conclusions["claim"] == FAMILY_CONTRAST) & (conclusions["unit"] == "model")]
    assert set(across["contrast"]) == {f"gemma - llama: {c}" for c in contrasts}
    assert len(across) == 5 * 2 * 2 and (across["n_units"] == 10).all()  # foundations x framings x tests
    mixed = pd.read_csv(out / "mixed_model.csv")
    assert set(mixed["categories"]) == contrasts
    assert {PUBLISHED_STRUCTURE, UNCORRELATED_SLOPES} <= set(mixed["structure"])
    published = conclusions[conclusions["unit"] == "prompt"]
    assert published["contrast"].str.split(":").str[0].isin(contrasts).all() and len(published) == 5 * 2
