"""Prompt sets: bundled sets, user files, stable ids, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardlens.errors import UserError
from rewardlens.prompts import (
    Prompt,
    design_of_id,
    list_prompt_sets,
    load_prompts,
    prompts_from_texts,
    stable_id,
)


def test_value54_has_the_factorial_design() -> None:
    prompts = load_prompts("value54")
    assert len(prompts) == 54
    assert len({p.id for p in prompts}) == 54
    assert {(p.adjective, p.scope, p.phrasing) for p in prompts} == {
        (a, s, ph)
        for a in ("greatest", "best", "good", "worst", "bad", "terrible")
        for s in ("ever", "world", "time")
        for ph in ("one", "single", "please")
    }
    for prompt in prompts:
        expected = "positive" if prompt.adjective in ("greatest", "best", "good") else "negative"
        assert prompt.framing == expected
        assert prompt.adjective is not None and prompt.adjective in prompt.text


def test_optpess3_texts_and_framings() -> None:
    prompts = load_prompts("optpess3")
    assert [p.id for p in prompts] == ["greatest_ever", "best_ever", "worst_ever"]
    assert [p.framing for p in prompts] == ["positive", "positive", "negative"]
    assert prompts[2].text == "What, in one word, is the worst thing ever?"
    assert set(list_prompt_sets()) >= {"value54", "optpess3"}


def test_yaml_mapping_list_and_text_files(tmp_path: Path) -> None:
    mapping = tmp_path / "p.yaml"
    mapping.write_text('bad_world_single: "Worst?"\nmine: "Anything?"\n')
    loaded = load_prompts(mapping)
    assert loaded[0] == Prompt("bad_world_single", "Worst?", "negative", "bad", "world", "single")
    assert loaded[1] == Prompt("mine", "Anything?")

    listed = tmp_path / "l.yml"
    listed.write_text("- First?\n- Second?\n")
    assert [p.id for p in load_prompts(listed)] == [stable_id("First?"), stable_id("Second?")]

    plain = tmp_path / "p.txt"
    plain.write_text("# comment\nFirst?\n\nSecond?\n")
    assert [p.text for p in load_prompts(plain)] == ["First?", "Second?"]
    assert load_prompts(plain)[0].id == load_prompts(listed)[0].id  # ids depend on the text only


def test_stable_id_and_design_parsing() -> None:
    assert stable_id("x") == stable_id("x") != stable_id("y")
    assert stable_id("x").startswith("p") and len(stable_id("x")) == 11
    assert design_of_id("worst_ever")["framing"] == "negative"
    assert set(design_of_id("nice_ever_one").values()) == {None}
    assert Prompt.from_dict(Prompt("a", "b", "positive").to_dict()) == Prompt("a", "b", "positive")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", "\n# only a comment\n", "no prompts"),
        ("dup.txt", "Same?\nSame?\n", "duplicate"),
        ("bad.yaml", "a: [unclosed\n", "malformed YAML"),
        ("num.yaml", "a: 3\n", "non-empty string"),
        ("scalar.yaml", "just text\n", "mapping"),
    ],
)
def test_bad_prompt_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_prompts(path)


def test_missing_file_and_duplicate_cli_prompts(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_prompts(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="duplicate"):
        prompts_from_texts(["a", "a"])
    with pytest.raises(UserError, match="no prompts"):
        prompts_from_texts([])


def test_yaml_entries_with_framing(tmp_path: Path) -> None:
    path = tmp_path / "framed.yaml"
    path.write_text("nice: {text: Nicest, framing: positive}\nugly: {text: Ugliest, framing: negative}\n")
    assert [(p.id, p.framing) for p in load_prompts(path)] == [("nice", "positive"), ("ugly", "negative")]
    path.write_text('nice: {text: "Nicest?", framing: sideways}\n')
    with pytest.raises(UserError, match="positive or negative"):
        load_prompts(path)
    path.write_text('nice: {framing: positive}\n')
    with pytest.raises(UserError, match="no `text`"):
        load_prompts(path)
