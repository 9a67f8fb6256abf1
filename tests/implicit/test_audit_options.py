"""No loading option is dropped on the way: every option of `audit --reference` reaches the audited model
(its sweep and words, and as the policy) and the reference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rewardlens.scorers.language as implicit_models
import rewardlens.scorers.model as scorers
import rewardlens.study.run as study_run
from rewardlens.config import ModelOptions
from rewardlens.prompts import load_prompts
from rewardlens.runs import read_manifest

TEMPLATE = "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
TEMPLATE += "{% if add_generation_prompt %}<assistant>{% endif %}"


def test_every_option_of_audit_reference_reaches_both_models(
    tiny_model_dir: Callable[..., Path],
    second_llama_dir: Path,
    run_cli: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = tiny_model_dir("llama", "lm")
    template = tmp_path / "policy.jinja"
    template.write_text(TEMPLATE, encoding="utf-8")
    words = tmp_path / "tiny.csv"
    words.write_text("word,category\npower,Agency\nlove,Communion\n", encoding="utf-8")
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(
        "best: {text: 'What is best?', framing: positive}\nworst: {text: 'What is worst?', framing: negative}\n",
        encoding="utf-8",
    )
    given = ModelOptions(
        revision="v1",
        dtype="float32",
        device="cpu",
        device_map="auto",
        trust_remote_code=True,
        kind="lm",
        template=str(template),
        date="1 Dec 2024",
        sequences="published",
        include_end=True,
    )
    # Every option differs from its default (the benchmarks' random head is not a command-line option).
    defaults = ModelOptions()
    chosen = [name for name in ModelOptions.names() if name != "random_score_head_seed"]
    assert all(getattr(given, name) != getattr(defaults, name) for name in chosen)

    loads: list[tuple[str, dict[str, Any]]] = []

    def spy(module: Any) -> None:
        real = module.load_model

        def load_model(spec: str, **options: Any) -> Any:
            loads.append((spec, options))
            # A local tiny model has no revisions and no GPUs to map: record what arrived, load it plainly.
            return real(spec, **{**options, "revision": None, "device_map": None})

        monkeypatch.setattr(module, "load_model", load_model)

    spy(scorers)
    spy(implicit_models)
    # Two framed prompts stand in for both prompt sets (optpess3, value54), to stay quick.
    monkeypatch.setattr(study_run, "load_prompts", lambda spec: load_prompts(str(prompts)))
    args = ["audit", "--model", policy, "--reference", second_llama_dir, "--out", tmp_path / "audit"]
    args += ["--lexicon", words, "--tokens", "40:44", "--permutations", 10, "--alone"]
    args += ["--revision", "v1", "--dtype", "float32", "--device", "cpu", "--device-map", "auto"]
    args += ["--trust-remote-code", "--kind", "lm", "--template", template, "--date", "2024-12-01"]
    args += ["--sequences", "published", "--include-end"]
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr

    loading = {key: getattr(given, key) for key in ("revision", "dtype", "device", "trust_remote_code", "kind")}
    loading.update(device_map="auto", random_score_head_seed=None)
    assert {spec for spec, _ in loads} == {str(policy), str(second_llama_dir)}
    assert any(spec == str(second_llama_dir) for spec, _ in loads)  # the reference was loaded ...
    for spec, options in loads:
        assert options == loading, spec  # ... and every model with every loading option
    runs = tmp_path / "audit" / "models" / policy.name
    implicit = read_manifest(runs / "implicit-words-tiny")
    for role, scorer in (("policy", implicit["policy"]), ("reference", implicit["reference"])):
        assert scorer["template"]["date"] == "01 Dec 2024", role
        assert scorer["template"]["sequences"] == "published", role
        assert scorer["include_end"] is True, role
        assert scorer["dtype"] == "float32" and scorer["device"] == "cpu", role
    assert implicit["policy"]["template"]["source"] == str(template)
    assert implicit["reference"]["template"]["source"] == "plain-nospace"  # the reference's own template
    sweep = read_manifest(runs / "sweep")["scorer"]
    assert sweep["include_end"] is True and sweep["template"]["source"] == str(template)
