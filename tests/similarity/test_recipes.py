"""`rewardlens study rv2-training-recipes`: tables, recipes doing what they say, values = compare(), resuming."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from rewardlens.errors import UserError
from rewardlens.similarity import compare
from rewardlens.similarity.recipes import (
    KIND,
    RecipesConfig,
    RecipesResult,
    linear_modules,
    load_dataset,
    network_dir,
    parse_recipes,
    read_activations,
    run_recipes,
    train_network,
)
from rewardlens.study import list_recipes, load_study

SMALL: dict[str, Any] = {
    "name": "tiny-recipes",
    "kind": KIND,
    "hidden": [16, 16, 16],
    "seeds": 2,
    "epochs": 4,
    "batch_size": 64,
    "stimuli": [12, 40],
}


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def config() -> RecipesConfig:
    return parse_recipes(SMALL, "tiny")


@pytest.fixture(scope="module")
def finished(config: RecipesConfig, tmp_path_factory: pytest.TempPathFactory) -> RecipesResult:
    return run_recipes(config, tmp_path_factory.mktemp("recipes") / "out")


def test_tables_have_their_columns_and_every_network(finished: RecipesResult, config: RecipesConfig) -> None:
    accuracy = pd.read_csv(finished.out / "accuracy.csv")
    assert list(accuracy.columns[:3]) == ["recipe", "seed", "test_accuracy"]
    assert sorted(zip(accuracy.recipe, accuracy.seed, strict=True)) == sorted(config.networks)
    table = pd.read_csv(finished.out / "layer_similarity.csv")
    assert list(table.columns[:8]) == [
        "recipe_a", "seed_a", "layer_a", "recipe_b", "seed_b", "layer_b", "measure", "value"
    ]  # fmt: skip
    assert set(table.measure) == {"rv2", "linear-cka"} and set(table.stimuli) == {12, 40}
    layers = len(config.hidden) + 2
    models = len(config.networks) + 1  # and the targets, one layer
    # Every model against itself (full L x L) and every later model, per measure and number of stimuli.
    expected = len(config.networks) * layers**2 + 1
    expected += sum(
        layers * (layers if b < len(config.networks) else 1) for a in range(models) for b in range(a + 1, models)
    )
    assert len(table) == expected * 2 * 2
    assert table.value.notna().all()
    for name in ("penultimate.csv", "anchors.csv", "stimuli.csv"):
        assert len(pd.read_csv(finished.out / name)) > 0
    penultimate = pd.read_csv(finished.out / "penultimate.csv")
    assert set(penultimate.layer) == {config.penultimate}
    assert {"same recipe", "standard", "targets"} <= set(penultimate.against)


def test_untrained_is_near_chance_and_standard_is_clearly_above(finished: RecipesResult) -> None:
    accuracy = finished.accuracy.groupby("recipe").test_accuracy.mean()
    assert accuracy["untrained"] < 0.3  # ten balanced classes: chance is 0.1
    assert accuracy["standard"] > 0.7
    assert accuracy["freeze"] > 0.7


def test_random_keeps_its_first_layers_bitwise_at_their_initialisation(
    finished: RecipesResult, config: RecipesConfig
) -> None:
    for seed in range(config.seeds):
        folder = network_dir(finished.out, "random", seed)
        initial, final = torch.load(folder / "init.pt"), torch.load(folder / "final.pt")
        assert initial.keys() == final.keys()
        kept = config.linear_layers - config.random_trained_last_k
        for index in range(config.linear_layers):
            key = f"{2 * index}.weight"  # Linear modules sit at even positions (ReLUs between)
            same = torch.equal(initial[key], final[key]) and torch.equal(
                initial[f"{2 * index}.bias"], final[f"{2 * index}.bias"]
            )
            assert same == (index < kept), (seed, index)
        # Untrained: everything is the initialisation, which the same seed shares with the other recipes.
        untrained = torch.load(network_dir(finished.out, "untrained", seed) / "final.pt")
        assert all(torch.equal(untrained[key], initial[key]) for key in initial)


def test_freeze_freezes_the_layers_in_order(config: RecipesConfig) -> None:
    data = load_dataset(config)
    trained = train_network(config, "freeze", 0, data)
    steps, frozen = trained.record["steps"], trained.record["frozen_step"]
    assert frozen == sorted(frozen) and len(set(frozen)) == len(frozen)  # first layer first, one at a time
    assert frozen[0] == pytest.approx(config.freeze_first * steps, abs=1)
    assert frozen[-1] == steps  # the logits train to the end
    layers = linear_modules(trained.network)
    assert [layer.weight.requires_grad for layer in layers] == [False] * (len(layers) - 1) + [True]
    standard = train_network(config, "standard", 0, data)
    assert standard.record["frozen_step"] == [steps] * len(layers)


def test_every_value_is_compare_on_the_saved_activations(finished: RecipesResult, config: RecipesConfig) -> None:
    table = pd.read_csv(finished.out / "layer_similarity.csv", keep_default_na=True)
    labels = load_dataset(config).y_test[: max(config.stimuli)].numpy()
    arrays: dict[tuple[str, Any], list[np.ndarray]] = {("targets", None): [np.eye(10)[labels]]}
    for recipe, seed in config.networks:
        arrays[(recipe, seed)] = read_activations(network_dir(finished.out, recipe, seed))

    def layers(recipe: str, seed: float) -> list[np.ndarray]:
        return arrays[(recipe, None if recipe == "targets" else int(seed))]

    rng = np.random.default_rng(0)
    rows = table.iloc[rng.choice(len(table), size=400, replace=False)]
    for row in rows.itertuples(index=False):
        x = layers(row.recipe_a, row.seed_a)[row.layer_a][: row.stimuli]
        y = layers(row.recipe_b, row.seed_b)[row.layer_b][: row.stimuli]
        assert row.value == pytest.approx(compare(x, y, row.measure), rel=1e-9, abs=1e-12), row


def test_cli_writes_figures_and_a_rerun_resumes(
    run_cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, out = _write(tmp_path / "tiny.yaml", {**SMALL, "recipes": ["standard", "untrained"]}), tmp_path / "out"
    first = run_cli("study", study, "--out", out, "--json")
    assert first.exit_code == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["networks_trained"] == 4 and summary["blocks_computed"] > 0
    for name in ("matrices_rv2.png", "matrices_linear-cka.png", "penultimate.png", "anchors.png", "stimuli.png"):
        assert (out / name).stat().st_size > 0
    weights = {path: path.stat().st_mtime_ns for path in out.glob("networks/*/final.pt")}
    blocks = {path: path.stat().st_mtime_ns for path in out.glob("similarity/*/*/*.csv")}
    before = pd.read_csv(out / "layer_similarity.csv")

    # A block lost (as by a kill) is computed again; nothing is retrained.
    lost = sorted(blocks)[0]
    lost.unlink()
    import rewardlens.similarity.recipes as recipes

    def no_training(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a finished network was trained again")

    monkeypatch.setattr(recipes, "train_network", no_training)
    again = run_cli("study", study, "--out", out, "--json")
    assert again.exit_code == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["networks_trained"] == 0 and summary["blocks_computed"] == 1
    assert {path: path.stat().st_mtime_ns for path in out.glob("networks/*/final.pt")} == weights
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in blocks.items() if path != lost)
    pd.testing.assert_frame_equal(pd.read_csv(out / "layer_similarity.csv"), before)

    # Another training configuration in the same folder is refused in one line.
    changed = _write(tmp_path / "changed.yaml", {**SMALL, "recipes": ["standard", "untrained"], "epochs": 5})
    refused = run_cli("study", changed, "--out", out)
    assert refused.exit_code == 2 and "epochs" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"epoch": 3}, "unknown key 'epoch'"),
        ({"measures": ["rv3"]}, "rv3"),
        ({"recipes": ["standard", "lazy"]}, "lazy"),
        ({"random_trained_last_k": 4}, "random_trained_last_k"),
        ({"seeds": 1}, "seeds"),
        ({"hidden": [16, 0]}, "hidden[1]"),
        ({"lr": "fast"}, "lr"),
        ({"stimuli": [12, 5000]}, "stimuli"),
    ],
)
def test_a_bad_key_is_one_line_and_exit_2(
    run_cli: Callable[..., Any], tmp_path: Path, change: dict[str, Any], needle: str
) -> None:
    study = _write(tmp_path / "bad.yaml", {**SMALL, **change})
    result = run_cli("study", study, "--out", tmp_path / "out")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert not (tmp_path / "out" / "networks").exists()


def test_the_shipped_recipe_is_listed_checked_and_not_a_model_study(run_cli: Callable[..., Any]) -> None:
    assert "rv2-training-recipes" in list_recipes()
    checked = run_cli("study", "rv2-training-recipes", "--check")
    assert checked.exit_code == 0 and "valid" in checked.stdout, checked.stderr
    with pytest.raises(UserError, match="training-recipes"):
        load_study("rv2-training-recipes")
    refused = run_cli("study", "rv2-training-recipes", "--out", "x", "--ray", "local")
    assert refused.exit_code == 2


def test_permutation_p_values_and_intervals_at_the_largest_number_of_stimuli(tmp_path: Path) -> None:
    document = {**SMALL, "hidden": [8], "epochs": 1, "recipes": ["standard", "untrained"], "stimuli": [12, 20]}
    config = parse_recipes({**document, "permutations": 9, "bootstrap": 9}, "inference")
    table = run_recipes(config, tmp_path / "out").similarity
    largest, smaller = table[table.stimuli == 20], table[table.stimuli == 12]
    assert largest[["p_value", "ci_low", "ci_high"]].notna().all().all()
    assert smaller[["p_value", "ci_low", "ci_high"]].isna().all().all()
    assert ((largest.p_value >= 0.1) & (largest.p_value <= 1)).all()  # (1 + count) / (9 + 1)
    assert (largest.ci_low <= largest.ci_high).all()


def test_more_seeds_later_trains_only_the_new_networks_and_compares_them_all(tmp_path: Path) -> None:
    document = {**SMALL, "hidden": [8, 8], "epochs": 1, "recipes": ["standard", "untrained"], "stimuli": [12]}
    out = tmp_path / "out"
    first = run_recipes(parse_recipes(document, "grow"), out)
    assert first.trained == 4
    grown = run_recipes(parse_recipes({**document, "seeds": 3, "stimuli": [12, 30]}, "grow"), out)
    assert grown.trained == 2  # seed 2 of each recipe
    pairs = set(
        zip(
            grown.similarity.recipe_a + grown.similarity.seed_a.astype(str),
            grown.similarity.recipe_b + grown.similarity.seed_b.astype(str),
            strict=True,
        )
    )
    assert ("standard0", "untrained2") in pairs and ("standard2", "untrained2") in pairs
    assert set(grown.similarity.stimuli) == {12, 30}
