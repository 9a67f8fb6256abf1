"""The fixed date in the jobs built on the scorers: studies and audits (here and in a Ray worker), implicit
rewards, and the training data. Each run records the date it rendered, never today's (the clock is moved
to a day in 2031, which must appear nowhere)."""

from __future__ import annotations

import datetime as real_datetime
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_dates import DATED, PROMPT, _clock_at

from rewardlens.errors import UserError
from rewardlens.jobs.sweep import template_identity
from rewardlens.models.templates import make_template
from rewardlens.prompts import load_prompts, prompts_from_texts
from rewardlens.runs import read_manifest, shard_files
from rewardlens.scorers import load_scorer
from rewardlens.study import load_study, parse_study, run_study
from rewardlens.study.audit import audit_study, run_audit

TODAY = real_datetime.datetime(2031, 3, 3)
TWO_PROMPTS = (
    "best_ever_one: What, in one word, is the best thing ever?\n"
    "worst_world_please: What is the worst thing in the world? Please answer in one word only.\n"
)
LEXICON = "word,category\nlove,Communion\npower,Agency\nfamily,Communion\nsuccess,Agency\n"


@pytest.fixture
def today(monkeypatch: pytest.MonkeyPatch) -> real_datetime.datetime:
    _clock_at(monkeypatch, TODAY)
    return TODAY


@pytest.fixture
def dated(tmp_path: Path) -> Path:
    path = tmp_path / "dated.jinja"
    path.write_text(DATED)
    return path


def _files(tmp_path: Path) -> tuple[Path, Path]:
    prompts, lexicon = tmp_path / "prompts.yaml", tmp_path / "lexicon.csv"
    prompts.write_text(TWO_PROMPTS)
    lexicon.write_text(LEXICON)
    return prompts, lexicon


def _prefix_hash(model: Path, template: Path, date: str, prompts: Any, kind: str = "auto") -> str:
    scorer = load_scorer(str(model), device="cpu", template=str(template), date=date, kind=kind)
    return str(template_identity(scorer, prompts)["rendered_prefix_ids"])


def _assert_dated(run: Path, date: str) -> None:
    """_run.json records `date` as the run's and its template's, and today's date is nowhere in it."""
    manifest = read_manifest(run)
    assert manifest["complete"], run
    assert manifest["date"] == date, (run, manifest["date"])
    assert str(TODAY.year) not in (run / "_run.json").read_text(), run


def _assert_one_line_error(result: Any, fragment: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr


# -- studies ---------------------------------------------------------------------------------------------------
def test_a_study_file_fixes_each_models_date_and_sequences(tiny_model_dir: Callable[..., Path]) -> None:
    model = str(tiny_model_dir("llama", "reward"))
    document = {
        # Unquoted, YAML reads 2024-12-01 as a date: it is accepted as the same day.
        "defaults": yaml.safe_load("{date: 2024-12-01, sequences: published}"),
        "models": [{"model": model, "name": "a"}, {"model": model, "name": "b", "date": "3 March 2025"}],
        "sweep": {"prompts": "optpess3"},
        "implicit": {"pairs": [{"policy": model, "reference": model}]},
    }
    study = parse_study(document)
    assert [(m.date, m.sequences) for m in study.models] == [("01 Dec 2024", "published"), ("03 Mar 2025", "published")]
    assert study.models[1].load_options().date == "03 Mar 2025"
    assert study.models[1].load_options().sequences == "published"
    assert study.implicit_options.date == "01 Dec 2024"  # the pairs render the defaults' date
    assert parse_study(yaml.safe_load(study.to_yaml())).models == study.models
    assert parse_study({**document, "defaults": {}}).models[0].date == "26 Jul 2024"  # Llama 3.1's own default


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models": [{"model": "MODEL", "date": "32 Jul 2024"}]}, "models[0].date: --date '32 Jul 2024' is not a date"),
        ({"models": [{"model": "MODEL", "date": 20241201}]}, "models[0].date must be a date"),
        ({"defaults": {"date": "tomorrow"}}, "defaults.date: --date 'tomorrow' is not a date"),
        ({"models": [{"model": "MODEL", "sequences": "retokenized"}]}, "models[0].sequences is 'retokenized'"),
    ],
)
def test_a_bad_date_or_sequences_in_a_study_exits_2_before_any_job(
    change: dict[str, Any],
    message: str,
    tiny_model_dir: Callable[..., Path],
    run_cli: Callable[..., Any],
    tmp_path: Path,
) -> None:
    model = str(tiny_model_dir("llama", "reward"))
    document: dict[str, Any] = {"models": [{"model": model}], "sweep": {"prompts": "optpess3"}, **change}
    document = json.loads(json.dumps(document).replace('"MODEL"', json.dumps(model)))
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(document))
    _assert_one_line_error(run_cli("study", path, "--out", tmp_path / "out"), message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_a_study_renders_its_date_and_refuses_a_finished_run_of_another(
    today: real_datetime.datetime, dated: Path, tiny_model_dir: Callable[..., Path], tmp_path: Path
) -> None:
    model = tiny_model_dir("llama", "reward")
    prompts, lexicon = _files(tmp_path)
    document = {
        "models": [{"model": str(model), "name": "llama", "template": str(dated), "date": "1 Dec 2024"}],
        "defaults": {"device": "cpu", "dtype": "float32"},
        "sweep": {"prompts": str(prompts), "tokens": "40:44"},
        "words": {"prompts": str(prompts), "lexicons": [str(lexicon)]},
    }
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(document))
    out = tmp_path / "out"
    result = run_study(load_study(study_file), out)
    runs = result.models[0]
    for run in (runs.sweep_dir, *runs.word_dirs.values()):
        _assert_dated(run, "01 Dec 2024")
    # The prompts' prefix ids are those of the fixed date, not today's (the template reads both forms of it).
    chosen = prompts_from_texts(["What, in one word, is the best thing ever?"])
    fixed = read_manifest(runs.sweep_dir)["rendered_prefix_ids"]
    both = load_prompts(str(prompts))
    assert fixed == _prefix_hash(model, dated, "1 Dec 2024", both) != _prefix_hash(model, dated, "3 Mar 2031", both)
    assert _prefix_hash(model, dated, "1 Dec 2024", chosen) != fixed  # the hash covers every prompt

    # Every job is finished, so none would load the model; another date is refused all the same, before
    # anything is written (study.yaml included).
    document["models"][0]["date"] = "2 Dec 2024"  # type: ignore[index]
    study_file.write_text(yaml.safe_dump(document))
    written = (out / "study.yaml").read_text()
    with pytest.raises(UserError, match=re.escape("sweep was scored with date '01 Dec 2024', not '02 Dec 2024'")):
        run_study(load_study(study_file), out)
    assert (out / "study.yaml").read_text() == written
    document["models"][0]["date"] = "2024-12-01"  # type: ignore[index]  # the same day written another way
    study_file.write_text(yaml.safe_dump(document))
    assert run_study(load_study(study_file), out).skipped_jobs == 2


def test_an_audit_on_ray_loads_each_worker_with_its_date(
    today: real_datetime.datetime, dated: Path, tiny_model_dir: Callable[..., Path]
) -> None:
    """`audit --ray` runs `audit_study`; each Ray actor loads its scorer from the model's load options."""
    from rewardlens.jobs.ray_pool import _Worker

    model = str(tiny_model_dir("llama", "reward"))
    plan = audit_study(
        [model], device="cpu", template=str(dated), date="2024-12-01", sequences="published", kind="reward"
    )
    (entry,) = plan.models
    facts = _Worker(entry.spec, entry.load_options(), threads=1).load()  # what the actor runs, without Ray
    described = facts.describe()["template"]
    assert described["date"] == "01 Dec 2024" and described["reads_date"] and described["sequences"] == "published"
    with pytest.raises(UserError, match="is not a date"):
        audit_study([model], date="32 Jul 2024")


# -- audit -----------------------------------------------------------------------------------------------------
def test_audit_date_reaches_its_runs(
    today: real_datetime.datetime,
    dated: Path,
    tiny_model_dir: Callable[..., Path],
    run_cli: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rewardlens.study.audit as audit

    prompts, _ = _files(tmp_path)
    real_run_audit = audit.run_audit
    # Two word prompts instead of value54 (the command has no option for them); everything else as given.
    monkeypatch.setattr(audit, "run_audit", lambda *a, **k: real_run_audit(*a, **k, word_prompts=str(prompts)))
    model, out = tiny_model_dir("llama", "reward"), tmp_path / "audit"
    common = ["audit", "--model", model, "--template", dated, "--tokens", "40:44", "--permutations", 10]
    result = run_cli(*common, "--out", out, "--device", "cpu", "--date", "1 Dec 2024", "--sequences", "published")
    assert result.exit_code == 0, result.stderr
    runs = out / "models" / model.name
    for run in (runs / "sweep", runs / "words-big2-nouns"):
        _assert_dated(run, "01 Dec 2024")
        assert read_manifest(run)["sequences"] == "published"


@pytest.mark.parametrize("command", ["audit", "implicit"])
def test_a_bad_date_on_audit_or_implicit_exits_2_and_writes_nothing(
    command: str, tiny_model_dir: Callable[..., Path], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    if command == "audit":
        args = ["audit", "--model", tiny_model_dir("llama", "reward"), "--out", out]
    else:
        lm = tiny_model_dir("llama", "lm")
        args = ["implicit", "--policy", lm, "--reference", lm, "--prompt", PROMPT, "--vocab", "--out", out]
    _assert_one_line_error(run_cli(*args, "--date", "31 Feb 2024"), "--date '31 Feb 2024' is not a date")
    assert list(tmp_path.iterdir()) == []


# -- implicit rewards ------------------------------------------------------------------------------------------
def test_implicit_date_is_rendered_recorded_and_part_of_the_identity(
    today: real_datetime.datetime,
    dated: Path,
    tiny_model_dir: Callable[..., Path],
    run_cli: Callable[..., Any],
    tmp_path: Path,
) -> None:
    policy, reference, out = tiny_model_dir("llama", "lm"), tiny_model_dir("qwen2", "lm"), tmp_path / "run"
    common = ["implicit", "--policy", policy, "--reference", reference, "--policy-template", dated]
    common += ["--prompt", PROMPT, "--vocab", "--out", out, "--device", "cpu", "--json"]
    first = run_cli(*common, "--date", "1 Dec 2024")
    assert first.exit_code == 0, first.stderr
    _assert_dated(out, "01 Dec 2024")
    manifest = read_manifest(out)
    assert manifest["templates"]["policy"]["date"] == "01 Dec 2024" and manifest["templates"]["policy"]["reads_date"]
    prompts = prompts_from_texts([PROMPT])
    hashes = manifest["rendered_prefix_ids"]
    assert hashes["policy"] == _prefix_hash(policy, dated, "1 Dec 2024", prompts, kind="lm")
    assert hashes["policy"] != _prefix_hash(policy, dated, "3 Mar 2031", prompts, kind="lm")
    plain = load_scorer(str(reference), device="cpu", template="plain-nospace")
    assert hashes["reference"] == template_identity(plain, prompts)["rendered_prefix_ids"]

    shards = {p: p.stat().st_mtime_ns for p in shard_files(out)}
    _assert_one_line_error(run_cli(*common, "--date", "2 Dec 2024"), 'another date ("01 Dec 2024", not "02 Dec 2024")')
    again = run_cli(*common, "--date", "2024-12-01")  # the same day written another way resumes
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["rows_written"] == 0
    assert {p: p.stat().st_mtime_ns for p in shard_files(out)} == shards


def test_implicit_refuses_two_loaded_models_of_different_dates(
    dated: Path, tiny_model_dir: Callable[..., Path], tmp_path: Path
) -> None:
    from rewardlens.implicit import load_language_model, run_implicit

    lm = str(tiny_model_dir("llama", "lm"))
    policy = load_language_model(lm, "policy", template=str(dated), date="1 Dec 2024", device="cpu")
    reference = load_language_model(lm, "reference", template="plain-nospace", date="2 Dec 2024", device="cpu")
    with pytest.raises(UserError, match="renders the date 01 Dec 2024 and the reference's 02 Dec 2024"):
        run_implicit(policy, reference, prompts_from_texts([PROMPT]), tmp_path / "run", vocab=True)
    assert not (tmp_path / "run").exists()


def test_implicit_for_an_audit_renders_the_audits_date(
    today: real_datetime.datetime, dated: Path, tiny_model_dir: Callable[..., Path], tmp_path: Path
) -> None:
    policy, reference, out = tiny_model_dir("llama", "lm"), str(tiny_model_dir("qwen2", "lm")), tmp_path / "audit"
    prompts, _ = _files(tmp_path)
    options: dict[str, Any] = {
        "template": str(dated), "device": "cpu", "tokens": "40:44", "word_prompts": str(prompts), "n_permutations": 10
    }
    result = run_audit([str(policy)], out, reference=reference, date="1 Dec 2024", **options)
    run = result.reference_runs[str(policy)]["sweep"]
    _assert_dated(run, "01 Dec 2024")
    # Finished, it would be skipped without loading a model: another date is refused instead.
    with pytest.raises(UserError, match="sweep was scored with date '01 Dec 2024', not '02 Dec 2024'"):
        run_audit([str(policy)], out, reference=reference, date="2 Dec 2024", **options)
    assert read_manifest(run)["date"] == "01 Dec 2024"


# -- training --------------------------------------------------------------------------------------------------
def test_training_renders_multi_turn_pairs_with_the_fixed_date(
    today: real_datetime.datetime, dated: Path, tiny_model_dir: Callable[..., Path]
) -> None:
    from transformers import AutoTokenizer

    from rewardlens.training.train import TrainingConfig, conversation_ids

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir("llama", "reward")))
    template = make_template(tokenizer, str(dated), date=TrainingConfig(date="1 Dec 2024").date)
    messages = [
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": "love"},
        {"role": "user", "content": "Why?"},
        {"role": "assistant", "content": "It matters."},
    ]
    ids = conversation_ids(template, messages)
    text = tokenizer.decode(ids)
    assert "Today Date: 01 Dec 2024 [2024-12-01]" in text and str(TODAY.year) not in text
    # The two-turn pair is rendered as the scorers render it: the same template, the same date.
    single = conversation_ids(template, messages[:2])
    assert "Today Date: 01 Dec 2024 [2024-12-01]" in tokenizer.decode(single)
    with pytest.raises(UserError, match="is not a date"):
        TrainingConfig(date="32 Jul 2024")
