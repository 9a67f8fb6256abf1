"""Preference data: formats, validation naming the bad line, skipping and counting, seeded samples, options."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rewardlens.errors import UserError
from rewardlens.training.ablate import parse_data_options, plan_cells
from rewardlens.training.data import load_preference_data, parse_sizes, sample_order
from rewardlens.training.train import parse_lora


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def test_strings_messages_and_implicit_prompts(tmp_path: Path) -> None:
    records = [
        {"prompt": "Best thing?", "chosen": "love", "rejected": "power"},
        {"prompt": [{"role": "user", "content": "Best thing?"}],
         "chosen": [{"role": "assistant", "content": "family"}],
         "rejected": [{"role": "assistant", "content": "wealth"}]},
        {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "kindness"}],
         "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "success"}]},
    ]
    path = write_jsonl(tmp_path / "pairs.jsonl", records)
    data = load_preference_data(path)
    assert len(data.pairs) == 3
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    first_chosen, first_rejected = data.pairs[0].conversations()
    assert first_chosen == [{"role": "user", "content": "Best thing?"}, {"role": "assistant", "content": "love"}]
    assert first_rejected[-1]["content"] == "power"
    assert data.pairs[1].conversations() == (
        [{"role": "user", "content": "Best thing?"}, {"role": "assistant", "content": "family"}],
        [{"role": "user", "content": "Best thing?"}, {"role": "assistant", "content": "wealth"}],
    )
    assert data.pairs[2].conversations()[0][0] == {"role": "user", "content": "Hi"}


def test_a_saved_datasets_directory(tmp_path: Path) -> None:
    import datasets

    rows = {"prompt": ["a?", "b?"], "chosen": ["love", "trust"], "rejected": ["power", "wealth"]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "ds"))
    data = load_preference_data(tmp_path / "ds")
    assert [pair.chosen for pair in data.pairs] == ["love", "trust"]
    datasets.Dataset.from_dict({"prompt": ["a?"], "answer": ["x"]}).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(UserError, match="no column 'chosen'"):
        load_preference_data(tmp_path / "bad")


def test_bad_lines_are_named_or_skipped_and_counted(tmp_path: Path) -> None:
    good = {"prompt": "p", "chosen": "love", "rejected": "power"}
    path = tmp_path / "mixed.jsonl"
    lines = [json.dumps(good), "{not json", json.dumps({"prompt": "p", "chosen": "love"}),
             json.dumps({"prompt": "p", "chosen": "same", "rejected": "same"}), "", json.dumps(good)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 2 is not valid JSON"):
        load_preference_data(path)
    data = load_preference_data(path, skip_invalid=True)
    assert (len(data.pairs), data.skipped_invalid, data.skipped_identical, data.n_records) == (2, 2, 1, 5)

    write_jsonl(path, [good, {"prompt": "p", "chosen": "love"}])
    with pytest.raises(UserError, match="line 2: missing key 'rejected'"):
        load_preference_data(path)
    write_jsonl(path, [{"chosen": "love", "rejected": "power"}])
    with pytest.raises(UserError, match="line 1: string .* need a `prompt`"):
        load_preference_data(path)
    write_jsonl(path, [{"prompt": "p", "chosen": "x", "rejected": "x"}])
    with pytest.raises(UserError, match="no usable pair"):
        load_preference_data(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(UserError, match="no usable pair"):
        load_preference_data(path)
    with pytest.raises(UserError, match="no such file"):
        load_preference_data(tmp_path / "missing.jsonl")


def test_sample_order_is_seeded_and_nested() -> None:
    assert (sample_order(50, 3) == sample_order(50, 3)).all()
    assert not (sample_order(50, 3) == sample_order(50, 4)).all()
    assert sorted(sample_order(50, 3).tolist()) == list(range(50))


def test_option_parsers() -> None:
    assert parse_lora("32,64") == (32, 64)
    assert parse_lora(None) is None
    for bad in ("32", "32,", "a,b", "0,4", "4,-1", "1,2,3"):
        with pytest.raises(UserError, match="RANK,ALPHA"):
            parse_lora(bad)
    assert parse_sizes("500,100,500") == [100, 500]
    for bad in ("", "a", "10,-1", "0"):
        with pytest.raises(UserError, match="--sizes"):
            parse_sizes(bad)
    assert parse_data_options(["a=x.jsonl", "b=y"]) == {"a": "x.jsonl", "b": "y"}
    for bad in (["x.jsonl"], ["a=x", "a=y"], ["a b=x"], ["a__b=x"]):
        with pytest.raises(UserError, match="--data"):
            parse_data_options(bad)
    assert [cell.name for cell in plan_cells(["org/m-1", "/p/m-2"], ["d"], [5])] == ["m-1__d__n5", "m-2__d__n5"]
    with pytest.raises(UserError, match="share the name"):
        plan_cells(["a/m", "b/m"], ["d"], [5])
