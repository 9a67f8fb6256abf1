"""Study files: validation before any job, a two-model study end to end and resumed, the shipped recipes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from rewardlens.runs import load_run, read_manifest, shard_files
from rewardlens.study import list_recipes, load_study, run_study

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "src" / "rewardlens" / "data" / "recipes"
PUBLISHED = (
    REPO / "tests" / "data" / "published" / "big2_scores_10_rms",
    REPO / ".." / "shared" / "data" / "published" / "big2_scores_10_rms",
)


def _write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture
def tiny_study(tmp_path: Path, tiny_model_dir: Callable[..., Path], small_lexicon: Path, four_prompts: Path) -> Path:
    return _write(
        tmp_path / "study.yaml",
        {
            "name": "tiny",
            "defaults": {"dtype": "float32", "device": "cpu"},
            "models": [
                {"model": str(tiny_model_dir("llama", "reward")), "name": "llama"},
                {"model": str(tiny_model_dir("gemma2", "reward")), "name": "gemma", "batch_size": 16},
            ],
            "sweep": {"prompts": "optpess3", "tokens": "0:40", "shard_size": 16},
            "words": {"prompts": four_prompts.name, "lexicons": [small_lexicon.name]},  # relative to the file
            "analyses": ["values", "tokens"],
            "permutations": 50,
        },
    )


def test_study_runs_end_to_end_and_resumes(tmp_path: Path, tiny_study: Path, run_cli: Callable[..., object]) -> None:
    study = load_study(tiny_study)
    out = tmp_path / "out"
    phases: list[str] = []

    def phase(description: str, total: int, done: int) -> Callable[[int], None]:
        phases.append(description)
        return lambda n: None

    result = run_study(study, out, phase=phase)
    assert [m.name for m in result.models] == ["llama", "gemma"] and all(m.loaded for m in result.models)
    for runs in result.models:
        sweep = load_run(runs.sweep_dir)
        assert len(sweep) == read_manifest(runs.sweep_dir)["rows_expected"] and sweep["token_id"].max() < 40
        assert sweep.groupby("prompt_id").size().tolist() == [len(sweep) // 3] * 3
        (words_dir,) = runs.word_dirs.values()
        words = load_run(words_dir)
        assert len(words) == 4 * 9 and read_manifest(words_dir)["model_spec"] == runs.spec
    assert read_manifest(result.models[1].sweep_dir)["batch_size"] == 16  # the model's own batch size
    (values_dir,) = result.value_dirs.values()
    assert (values_dir / "summary.csv").is_file() and (values_dir / "values.png").is_file()
    assert result.tokens_dir is not None and any(result.tokens_dir.iterdir())
    html = result.report.read_text() if result.report else ""
    assert "Optimal and pessimal tokens: " in html and html.count("Optimal and pessimal tokens: ") == 2
    assert (out / "study.yaml").is_file() and load_study(out / "study.yaml").models == study.models
    assert not (out / "shards").exists()  # OUT holds runs; it is not a run itself
    assert any("vocabulary sweep" in p for p in phases)

    # Interrupted: one model's word run is gone. Resuming loads only that model and rescores only that run.
    gemma = result.models[1]
    kept = {p: p.stat().st_mtime_ns for p in shard_files(gemma.sweep_dir)}
    (words_dir,) = gemma.word_dirs.values()
    before = load_run(words_dir)
    for shard in shard_files(words_dir):
        shard.unlink()
    (words_dir / "_run.json").unlink()
    again = run_cli("study", tiny_study, "--out", out, "--json")
    assert again.exit_code == 0, again.stderr  # type: ignore[attr-defined]
    summary = json.loads(again.stdout)  # type: ignore[attr-defined]
    assert summary["models"] == [{"name": "llama", "loaded": False}, {"name": "gemma", "loaded": True}]
    assert summary["jobs_skipped"] == 3
    assert {p: p.stat().st_mtime_ns for p in shard_files(gemma.sweep_dir)} == kept
    assert load_run(words_dir).equals(before)

    # Complete: nothing is loaded.
    third = run_study(study, out)
    assert not any(m.loaded for m in third.models) and third.skipped_jobs == 4


def test_shipped_recipes_parse_and_name_their_loading_options(run_cli: Callable[..., object]) -> None:
    shipped = list_recipes()
    assert set(shipped) == {"optimal-pessimal-10rm", "value-biases-10rm", "rv2-training-recipes"}
    recipes = {name: text for name, text in shipped.items() if name != "rv2-training-recipes"}  # model studies
    published = next((d for d in PUBLISHED if d.is_dir() and any(d.glob("*.csv"))), None)
    for name in recipes:
        study = load_study(name)
        raw = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
        assert len(study.models) == 10
        for entry, model in zip(raw["models"], study.models, strict=True):
            assert {"model", "revision", "dtype", "trust_remote_code"} <= set(entry), entry
            assert model.dtype == "bfloat16" and model.revision == "main"
        remote = {m.spec for m in study.models if m.trust_remote_code}
        # The gated heads (ArmoRM, QRM) have native readers; only URM's forward is the checkpoint's own code.
        assert remote == {"LxzGordon/URM-LLaMa-3.1-8B"}
        if published is not None:  # the ten RMs whose published scores ship with the repository
            files = {p.stem.removeprefix("big2_rewards_") for p in published.glob("*.csv")}
            assert {m.spec.replace("/", "_") for m in study.models} == files
    optimal, values = load_study("optimal-pessimal-10rm"), load_study("value-biases-10rm")
    assert optimal.sweep is not None and optimal.sweep.prompts == "optpess3" and optimal.words is None
    assert values.words is not None and values.words.prompts == "value54"
    assert values.words.lexicons == ("big2-nouns", "mfd2") and values.sweep is None
    listed = run_cli("study", "--list", "--json")
    assert json.loads(listed.stdout).keys() == shipped.keys()


BAD_STUDIES = {
    "unknown key": ({"colour": "red"}, "unknown key 'colour'"),
    "unknown model key": ({"models": [{"model": "MODEL", "dtyp": "float32"}]}, "unknown key 'models[0].dtyp'"),
    "missing model": ({"models": [{"dtype": "float32"}]}, "models[0] names no model"),
    "model path that does not exist": ({"models": [{"model": "./no-such-model"}]}, "does not exist"),
    "no models": ({"models": []}, "no models"),
    "unknown prompt set": ({"sweep": {"prompts": "no-such-set"}}, "sweep.prompts"),
    "unknown lexicon": ({"words": {"lexicons": ["no-such-lexicon"]}}, "words.lexicons[0]"),
    "bad dtype": ({"models": [{"model": "MODEL", "dtype": "float8"}]}, "models[0].dtype"),
    "implicit pair without reference": (
        {"implicit": {"pairs": [{"policy": "MODEL"}]}},
        "implicit.pairs[0] names no reference model",
    ),
}


@pytest.mark.parametrize("case", BAD_STUDIES)
def test_bad_study_files_fail_before_any_job(
    case: str, tmp_path: Path, tiny_model_dir: Callable[..., Path], run_cli: Callable[..., object]
) -> None:
    change, message = BAD_STUDIES[case]
    model = str(tiny_model_dir("llama", "reward"))
    document: dict[str, object] = {"models": [{"model": model}], "sweep": {"prompts": "optpess3"}, **change}
    document = json.loads(json.dumps(document).replace('"MODEL"', json.dumps(model)))
    study = _write(tmp_path / "bad.yaml", document)
    out = tmp_path / "out"
    result = run_cli("study", study, "--out", out)
    assert result.exit_code == 2, (case, result.stderr)  # type: ignore[attr-defined]
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert stderr.startswith("error: ") and len(stderr.splitlines()) == 1 and message in stderr, stderr
    assert not out.exists()  # said before any job started


def test_bad_options_exit_2(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], run_cli: Callable[..., object]
) -> None:
    import ray

    assert not ray.is_initialized()
    model = str(tiny_model_dir("llama", "reward"))
    cases = {
        ("study", "optimal-pessimal-10rm", "--out", tmp_path / "a", "--workers", 0): "--workers must be at least 1",
        ("sweep", "--model", model, "--prompts", "optpess3", "--out", tmp_path / "b", "--ray", "--workers", "0"): (
            "--workers must be at least 1"
        ),
        ("sweep", "--model", model, "--prompts", "optpess3", "--out", tmp_path / "c", "--ray", "127.0.0.1:1"): (
            "cannot reach the Ray cluster at 127.0.0.1:1"
        ),
        ("words", "--model", model, "--out", tmp_path / "d", "--ray", "ray://127.0.0.1:1"): "cannot reach",
        ("study", "no-such-recipe", "--out", tmp_path / "e"): "not a shipped recipe",
        ("study", "value-biases-10rm", "--out", tmp_path / "f", "--ray", "127.0.0.1:1"): "cannot reach",
        ("study", "optimal-pessimal-10rm"): "--out",
    }
    for args, message in cases.items():
        result = run_cli(*args)
        stderr = result.stderr.strip()  # type: ignore[attr-defined]
        assert result.exit_code == 2 and message in stderr and len(stderr.splitlines()) == 1, (args, stderr)
    assert not ray.is_initialized()  # an unreachable address was refused before Ray was started
    assert not any(tmp_path.iterdir())  # ... and before any directory was made


def test_implicit_only_study_runs_and_resumes(
    tmp_path: Path, tiny_model_dir: Callable[..., Path], four_prompts: Path
) -> None:
    policy, reference = tiny_model_dir("llama", "lm"), tiny_model_dir("qwen2", "lm")
    path = _write(
        tmp_path / "implicit.yaml",
        {
            "defaults": {"dtype": "float32", "device": "cpu"},
            "implicit": {
                "prompts": str(four_prompts),
                "responses": "vocab",
                "pairs": [{"policy": str(policy), "reference": str(reference), "name": "pair"}],
            },
        },
    )
    study = load_study(path)
    result = run_study(study, tmp_path / "out")
    run = result.implicit_dirs["pair"]
    manifest = read_manifest(run)
    assert manifest["complete"] and manifest["kind_of_run"] == "implicit"
    rows = load_run(run)
    assert set(rows["prompt_id"]) == {"best_ever_one", "worst_ever_one", "good_world_please", "bad_world_please"}
    assert {"logp_policy", "logp_reference"} <= set(rows.columns)
    again = run_study(load_study(tmp_path / "out" / "study.yaml"), tmp_path / "out")
    assert again.skipped_jobs == 1
