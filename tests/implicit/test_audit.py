"""`implicit_for_audit`: the implicit runs of audited models against one reference, in the audit's layout."""

from __future__ import annotations

import pytest

from rewardlens.implicit import implicit_for_audit
from rewardlens.prompts import load_prompts
from rewardlens.runs import load_run, read_manifest


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

    out.mkdir()
    (out / "report.html").write_text("<html><body><h1>audit</h1></body></html>", encoding="utf-8")
    result = implicit_for_audit(
        [str(policy), str(reward)], str(second_llama_dir), out, lexicons=[str(words)], n_permutations=20,
        phase=phase, device="cpu",
    )
    slug = policy.name
    assert result.vocab_dirs == {str(policy): out / "models" / slug / "implicit-sweep"}
    word_dir = out / "models" / slug / "implicit-words-tiny"
    assert result.word_dirs[str(policy)] == {str(words): word_dir}
    assert any("reward model" in note for note in result.notes)
    assert read_manifest(word_dir)["complete"] and len(load_run(word_dir)) == 6 * 54
    sweep_ids = [prompt["id"] for prompt in read_manifest(out / "models" / slug / "implicit-sweep")["prompts"]]
    assert sweep_ids == [prompt.id for prompt in load_prompts("optpess3")]
    assert (result.value_dirs[str(words)] / "summary.csv").is_file()
    assert [c[1] for c in calls] == [3, 54]
    # Everything is complete: a second call loads no model.
    import rewardlens.implicit as implicit

    def no_loading(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a finished run was recomputed")

    monkeypatch.setattr(implicit, "_loaded_language_model", no_loading)
    with pytest.raises(AssertionError):  # the reward model is still tried (it has no runs)
        implicit_for_audit([str(policy), str(reward)], str(second_llama_dir), out, lexicons=[str(words)])
    again = implicit_for_audit([str(policy)], str(second_llama_dir), out, lexicons=[str(words)], n_permutations=20)
    assert again.vocab_dirs == result.vocab_dirs
    # The audit's report gains the implicit value panels once, however often the step runs.
    report = (out / "report.html").read_text(encoding="utf-8")
    assert report.count("<h2>Implicit reward value bias: ") == 1 and "data:image/png;base64," in report
    assert report.index("<h1>audit</h1>") < report.index("Implicit reward value bias") < report.index("</body>")
