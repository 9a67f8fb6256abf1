"""`audit --reference`: the implicit runs of audited models against one reference, in the audit's layout."""

from __future__ import annotations

import pytest

from rewardlens.prompts import load_prompts
from rewardlens.runs import load_run, read_manifest
from rewardlens.study.audit import run_audit


def test_implicit_for_audit_layout_values_and_resume(  # type: ignore[no-untyped-def]
    tiny_model_dir, second_llama_dir, tmp_path, monkeypatch
) -> None:
    words = tmp_path / "tiny.csv"
    words.write_text(
        "word,category\npower,Agency\nsuccess,Agency\nambition,Agency\nlove,Communion\nfamily,Communion\n"
        "kindness,Communion\n",
        encoding="utf-8",
    )
    policy, reward = tiny_model_dir("llama", "lm"), tiny_model_dir("llama", "reward")
    out = tmp_path / "audit"
    calls: list[tuple[str, int, int]] = []

    def phase(description: str, total: int, done: int):  # type: ignore[no-untyped-def]
        calls.append((description, total, done))
        return lambda n: None

    options = {"lexicons": [str(words)], "tokens": "40:44", "n_permutations": 20, "device": "cpu"}
    result = run_audit([str(policy), str(reward)], out, reference=str(second_llama_dir), phase=phase, **options)
    slug = policy.name
    assert result.reference_runs[str(policy)]["sweep"] == out / "models" / slug / "implicit-sweep"
    word_dir = out / "models" / slug / "implicit-words-tiny"
    assert result.reference_runs[str(policy)][str(words)] == word_dir
    assert str(reward) not in result.reference_runs
    assert any("reward model" in note for note in result.notes)
    assert read_manifest(word_dir)["complete"] and len(load_run(word_dir)) == 6 * 54
    sweep_ids = [prompt["id"] for prompt in read_manifest(out / "models" / slug / "implicit-sweep")["prompts"]]
    assert sweep_ids == [prompt.id for prompt in load_prompts("optpess3")]
    assert (result.value_dirs[f"implicit {words}"] / "summary.csv").is_file()
    implicit_calls = [c[1] for c in calls if ": implicit " in c[0]]
    assert implicit_calls == [3, 54, 54]  # the vocabulary on optpess3, then each lexicon on value54
    # Everything is complete: a second audit loads no language model.
    import rewardlens.study.run as study_run

    def no_loading(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a finished run was recomputed")

    monkeypatch.setattr(study_run, "loaded_language_model", no_loading)
    with pytest.raises(AssertionError):  # the reward model is still tried (it has no runs)
        run_audit([str(policy), str(reward)], out, reference=str(second_llama_dir), **options)
    again = run_audit([str(policy)], tmp_path / "audit", reference=str(second_llama_dir), **options)
    assert again.reference_runs == {str(policy): result.reference_runs[str(policy)]}
    # The report holds the implicit value panels once, however often the audit runs.
    report = (out / "report.html").read_text(encoding="utf-8")
    assert report.count(f"<h2>Implicit reward value bias: {words}</h2>") == 1 and "data:image/png;base64," in report
    assert report.index("<h1>") < report.index("Implicit reward value bias") < report.index("</body>")
