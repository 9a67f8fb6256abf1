"""`similarity arrays|measures|layers` and `bench similarity`: outputs, tiny models, bad input -> exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from similarity_naive import NAIVE

from rewardlens.bench.similarity import run_similarity_bench
from rewardlens.similarity import MEASURES, compare
from rewardlens.similarity.activations import encode_stimulus, layer_activations
from rewardlens.similarity.layers import layer_similarity

STIMULI = [
    "love",
    "family",
    "freedom and honesty",
    "kindness",
    "power",
    "success in the world",
    "wealth",
    "peace",
]


@pytest.fixture
def arrays(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    y = x @ rng.normal(size=(6, 4)) + rng.normal(size=(40, 4))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return tmp_path / "x.npy", tmp_path / "y.npy", x, y


def test_arrays_prints_json_with_inference(run_cli, arrays) -> None:
    x_path, y_path, x, y = arrays
    result = run_cli(
        "similarity",
        "arrays",
        x_path,
        y_path,
        "--measure",
        "rv2",
        "--permutations",
        "19",
        "--bootstrap",
        "19",
        "--seed",
        "3",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["measure"] == "rv2"
    assert printed["value"] == pytest.approx(NAIVE["rv2"](x, y), abs=1e-12)
    assert printed["p_value"] == pytest.approx(1 / 20)
    assert printed["ci_low"] < printed["value"] < printed["ci_high"]
    assert printed["seed"] == 3 and printed["permutations"] == 19 and printed["bootstrap"] == 19


def test_arrays_passes_measure_options(run_cli, arrays) -> None:
    x_path, y_path, x, y = arrays
    result = run_cli(
        "similarity",
        "arrays",
        x_path,
        y_path,
        "-m",
        "rsa",
        "-o",
        "rdm=euclidean",
        "-o",
        "compare=pearson",
        "--no-center",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["options"] == {"center": False, "rdm": "euclidean", "compare": "pearson"}
    assert printed["value"] == pytest.approx(NAIVE["rsa"](x, y, "euclidean", "pearson", center=False), abs=1e-12)


def test_arrays_table_and_measures_listing(run_cli, arrays) -> None:
    x_path, y_path, _, _ = arrays
    assert run_cli("similarity", "arrays", x_path, y_path).exit_code == 0
    listing = run_cli("similarity", "measures", "--json")
    assert listing.exit_code == 0
    assert [entry["name"] for entry in json.loads(listing.stdout)] == list(MEASURES)


def _bad_inputs(tmp_path: Path) -> dict[str, list[object]]:
    rng = np.random.default_rng(1)
    good = tmp_path / "good.npy"
    np.save(good, rng.normal(size=(10, 3)))
    np.save(tmp_path / "short.npy", rng.normal(size=(9, 3)))
    with_nan = rng.normal(size=(10, 3))
    with_nan[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", with_nan)
    with_inf = rng.normal(size=(10, 3))
    with_inf[0, 0] = np.inf
    np.save(tmp_path / "inf.npy", with_inf)
    np.save(tmp_path / "text.npy", np.array([["a", "b"]] * 10))
    np.save(tmp_path / "objects.npy", np.array([[{}, 1]] * 10, dtype=object))
    np.save(tmp_path / "cube.npy", rng.normal(size=(10, 3, 2)))
    np.save(tmp_path / "flat.npy", rng.normal(size=10))
    np.save(tmp_path / "constant.npy", np.ones((10, 3)))
    np.save(tmp_path / "tiny.npy", rng.normal(size=(3, 3)))
    (tmp_path / "garbage.npy").write_text("not an array")
    arrays = ["similarity", "arrays"]
    return {
        "different rows": [*arrays, good, tmp_path / "short.npy"],
        "nan": [*arrays, tmp_path / "nan.npy", good],
        "inf": [*arrays, good, tmp_path / "inf.npy"],
        "non-numeric": [*arrays, tmp_path / "text.npy", good],
        "objects": [*arrays, tmp_path / "objects.npy", good],
        "not 2-D": [*arrays, tmp_path / "cube.npy", good],
        "1-D": [*arrays, good, tmp_path / "flat.npy"],
        "not npy": [*arrays, tmp_path / "garbage.npy", good],
        "missing": [*arrays, tmp_path / "absent.npy", good],
        "unknown measure": [*arrays, good, good, "--measure", "cosine-of-vibes"],
        "unknown option": [*arrays, good, good, "-o", "bandwidth=3"],
        "bad option value": [*arrays, good, good, "-m", "rbf-cka", "-o", "threshold=-1"],
        "constant columns": [*arrays, tmp_path / "constant.npy", good],
        "n too small": [*arrays, tmp_path / "tiny.npy", tmp_path / "tiny.npy", "-m", "debiased-cka"],
        "permutations < 1": [*arrays, good, good, "--permutations", "-3"],
        "bench": ["bench", "similarity", "--n", "2"],
    }


@pytest.mark.parametrize(
    "case",
    [
        "different rows",
        "nan",
        "inf",
        "non-numeric",
        "objects",
        "not 2-D",
        "1-D",
        "not npy",
        "missing",
        "unknown measure",
        "unknown option",
        "bad option value",
        "constant columns",
        "n too small",
        "permutations < 1",
        "bench",
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_cli, tmp_path: Path, case: str) -> None:
    result = run_cli(*_bad_inputs(tmp_path)[case])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr


# -- bench -------------------------------------------------------------------------------------------


def test_bench_agrees_with_the_reference_libraries() -> None:
    pytest.importorskip("hoggorm")
    pytest.importorskip("rsatoolbox")
    result = run_similarity_bench(n=120, d=30, repeats=1, reference_repeats=1)
    assert result["max_abs_diff"] <= 1e-10
    for key in (
        "rv2_s",
        "linear_cka_s",
        "hoggorm_rv2_s",
        "rsatoolbox_linear_cka_s",
        "speedup_vs_hoggorm",
        "speedup_vs_rsatoolbox",
    ):
        assert result[key] > 0, key


def test_bench_says_when_a_library_is_missing(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hoggorm", None)  # import hoggorm -> ImportError
    result = run_cli("bench", "similarity", "--n", "60", "--d", "8", "--repeats", "1", "--reference-repeats", "1")
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["hoggorm"].startswith("not installed")
    assert "speedup_vs_hoggorm" not in printed


# -- layers ------------------------------------------------------------------------------------------


def test_layer_table_equals_pairwise_compare() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(size=(20, 8))
    model_a = [base, base @ rng.normal(size=(8, 8)), rng.normal(size=(20, 8))]
    model_b = [base + 0.1 * rng.normal(size=base.shape), np.ones((20, 5))]  # second layer constant
    frame = layer_similarity({"a": model_a, "b": model_b}, ["rv2", "rsa"], options={"rdm": "euclidean"})
    assert len(frame) == 2 * (3 * 3 + 3 * 2 + 2 * 2)
    by_key = frame.set_index(["model_a", "layer_a", "model_b", "layer_b", "measure"])["value"]
    assert by_key[("a", 1, "b", 0, "rv2")] == pytest.approx(compare(model_a[1], model_b[0], "rv2"), abs=1e-12)
    assert by_key[("a", 2, "a", 0, "rsa")] == pytest.approx(
        compare(model_a[2], model_a[0], "rsa", rdm="euclidean"), abs=1e-12
    )
    assert by_key[("a", 0, "a", 2, "rv2")] == by_key[("a", 2, "a", 0, "rv2")]  # mirrored
    assert np.isnan(by_key[("a", 0, "b", 1, "rv2")])
    assert frame.attrs["constant_layers"] == {"a": [], "b": [1]}


def test_layer_table_with_inference_columns() -> None:
    rng = np.random.default_rng(3)
    layers = [rng.normal(size=(15, 4)) for _ in range(2)]
    frame = layer_similarity({"m": layers}, ["linear-cka"], permutations=9, bootstrap=9, seed=1)
    assert {"p_value", "ci_low", "ci_high"} <= set(frame.columns)
    assert frame.p_value.between(0.1, 1).all()


@pytest.fixture(scope="module")
def tiny_models(tiny_model_dir) -> tuple[Path, Path]:
    return tiny_model_dir("llama", "reward"), tiny_model_dir("gemma2", "lm")


@pytest.mark.parametrize("which", [0, 1], ids=["llama-reward", "gemma2-lm"])
def test_padded_batches_give_the_hidden_states_of_single_sequences(tiny_models, which: int) -> None:
    """Shared prefix KV + right-padded batches == one plain forward pass per stimulus (Gemma-2's
    sliding-window layers included)."""
    from rewardlens.models.heads import backbone_of
    from rewardlens.models.loading import load_model
    from rewardlens.models.templates import make_template

    loaded = load_model(str(tiny_models[which]), device="cpu", dtype="float32")
    template = make_template(loaded.tokenizer, None)
    prompt = "What is the best thing ever?"
    for pool in ("last", "mean"):
        batched = layer_activations(
            loaded.model, loaded.tokenizer, STIMULI, template=template, prompt=prompt, pool=pool, batch_size=3
        )
        assert len(batched) == loaded.model.config.num_hidden_layers + 1
        for row in (2, 5):  # the longer stimuli, padded beside shorter ones
            encoded = encode_stimulus(loaded.tokenizer, template, prompt, STIMULI[row])
            with torch.inference_mode():
                states = backbone_of(loaded.model)(
                    input_ids=torch.tensor([encoded.ids]), output_hidden_states=True
                ).hidden_states
            for layer, hidden in enumerate(states):
                span = hidden[0, -1] if pool == "last" else hidden[0, encoded.start : encoded.stop].mean(0)
                np.testing.assert_allclose(batched[layer][row], span.numpy(), atol=1e-5)


def test_response_span_is_the_stimulus(tiny_models) -> None:
    from rewardlens.models.loading import load_model
    from rewardlens.models.templates import make_template

    loaded = load_model(str(tiny_models[0]), device="cpu", dtype="float32")
    template = make_template(loaded.tokenizer, None)
    encoded = encode_stimulus(loaded.tokenizer, template, "Name a value.", "freedom and honesty")
    assert loaded.tokenizer.decode(encoded.ids[encoded.start : encoded.stop]).strip() == "freedom and honesty"
    raw = encode_stimulus(loaded.tokenizer, None, None, "freedom and honesty")
    assert loaded.tokenizer.decode(raw.ids[raw.start : raw.stop]).strip() == "freedom and honesty"


def test_layers_command_on_two_tiny_models(run_cli, tiny_models, tmp_path: Path) -> None:
    stimuli = tmp_path / "stimuli.txt"
    stimuli.write_text("\n".join(STIMULI) + "\n")
    out = tmp_path / "out"
    result = run_cli(
        "similarity",
        "layers",
        "--model",
        tiny_models[0],
        "--model",
        tiny_models[1],
        "--stimuli",
        stimuli,
        "--prompt",
        "Name a value.",
        "--measure",
        "rv2,linear-cka",
        "--out",
        out,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.stderr
    frame = pd.read_csv(out / "similarity.csv")
    assert list(frame.columns) == ["model_a", "layer_a", "model_b", "layer_b", "measure", "value"]
    labels = list(dict.fromkeys(frame.model_a))
    counts = {label: frame[frame.model_a == label].layer_a.max() + 1 for label in labels}
    expected_pairs = sum(counts[a] * counts[b] for i, a in enumerate(labels) for b in labels[i:])
    assert len(frame) == 2 * expected_pairs
    # Every block layer is perfectly similar to itself; the embedding layer at the last token (the
    # template's fixed suffix) is the same for every stimulus, so its rows are NaN.
    same = frame[(frame.model_a == frame.model_b) & (frame.layer_a == frame.layer_b) & (frame.layer_a > 0)]
    np.testing.assert_allclose(same.value, 1.0, atol=1e-9)
    assert frame[(frame.layer_a == 0) & (frame.model_a == labels[0])].value.isna().all()
    assert len(list(out.glob("heatmap_*.png"))) == 3


def test_layers_command_raw_text_mean_pooling_with_inference(run_cli, tiny_models, tmp_path: Path) -> None:
    stimuli = tmp_path / "stimuli.txt"
    stimuli.write_text("\n".join(STIMULI))
    out = tmp_path / "out"
    result = run_cli(
        "similarity",
        "layers",
        "--model",
        tiny_models[0],
        "--stimuli",
        stimuli,
        "--template",
        "none",
        "--pool",
        "mean",
        "--measure",
        "rsa",
        "--permutations",
        "9",
        "--out",
        out,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.stderr
    frame = pd.read_csv(out / "similarity.csv")
    assert frame.value.notna().all() and frame.p_value.between(0.1, 1).all()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--measure", "nope"], "unknown measure"),
        (["--measure", "rv2", "-o", "rdm=euclidean"], "not an option"),
        (["--pool", "max"], "pooling"),
        ([], "--prompt is required"),
    ],
)
def test_layers_bad_input(run_cli, tiny_models, tmp_path: Path, extra: list[str], message: str) -> None:
    stimuli = tmp_path / "stimuli.txt"
    stimuli.write_text("\n".join(STIMULI))
    args = ["similarity", "layers", "--model", tiny_models[0], "--stimuli", stimuli, "--out", tmp_path / "o"]
    if "--prompt is required" not in message:
        args += ["--prompt", "Name a value."]
    result = run_cli(*args, *extra)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_stimuli_from_a_text_file_or_a_lexicon(tmp_path: Path) -> None:
    from rewardlens.similarity.layers import load_stimuli, model_labels

    listing = tmp_path / "words.txt"
    listing.write_text("kind\n\n  brave \nkind\ncruel\n")
    assert load_stimuli(str(listing)) == ["kind", "brave", "cruel"]
    nouns = load_stimuli("big2-nouns")
    assert len(nouns) == len(set(nouns)) > 200
    assert model_labels(["/models/rm/", "/other/rm", "base"]) == ["rm", "rm#2", "base"]


def test_layers_command_compares_the_checkpoints_of_an_ablation(run_cli, tiny_model_dir, tmp_path: Path) -> None:
    """`--ablation DIR`: every checkpoint of a trained `ablate` cell joins the models, labelled cell/step."""
    words = ["love", "family", "power", "success", "trust", "wealth"]
    pairs = [
        {"prompt": "What is the best thing?", "chosen": f"hello {good}", "rejected": f"hello {bad}"}
        for good, bad in zip(words[::2], words[1::2], strict=True)
    ] * 2
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(pair) + "\n" for pair in pairs), encoding="utf-8")
    lexicon = tmp_path / "lexicon.csv"
    lexicon.write_text("word,category\n" + "".join(f"{w},{'A' if i % 2 else 'B'}\n" for i, w in enumerate(words)))
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("best: {text: 'What is the best thing?', framing: positive}\n", encoding="utf-8")
    ablation = tmp_path / "grid"
    trained = run_cli(
        "ablate", "--base", tiny_model_dir("llama", "lm"), "--data", f"d={data}", "--sizes", "6",
        "--out", ablation, "--epochs", 1, "--batch-size", 3, "--max-length", 64, "--checkpoint-every", 1,
        "--lexicon", lexicon, "--prompts", prompts, "--device", "cpu",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    stimuli = tmp_path / "stimuli.txt"
    stimuli.write_text("\n".join(STIMULI) + "\n")
    out = tmp_path / "layers"
    result = run_cli(
        "similarity", "layers", "--ablation", ablation, "--stimuli", stimuli, "--template", "none",
        "--pool", "mean", "--measure", "rv2", "--out", out, "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    frame = pd.read_csv(out / "similarity.csv")
    labels = list(dict.fromkeys([*frame.model_a, *frame.model_b]))
    assert labels and all(label.startswith("llama") and "/step-" in label for label in labels), labels
    assert len(labels) == 2  # the checkpoint after each of the two steps
    same = frame[(frame.model_a == frame.model_b) & (frame.layer_a == frame.layer_b)]
    np.testing.assert_allclose(same.value, 1.0, atol=1e-9)
    # A folder that is no ablation is refused in one line.
    again = run_cli(
        "similarity", "layers", "--ablation", tmp_path / "missing", "--stimuli", stimuli, "--template", "none",
        "--out", out,
    )  # fmt: skip
    assert again.exit_code == 2 and len(again.stderr.strip().splitlines()) == 1
