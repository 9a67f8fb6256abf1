"""Date-stamped templates render a fixed date, never today's; the date is part of a run's identity."""

from __future__ import annotations

import datetime as real_datetime
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rewardlens.errors import UserError
from rewardlens.jobs.sweep import run_sweep
from rewardlens.jobs.words import run_words
from rewardlens.lexicons import Lexicon
from rewardlens.models.templates import DEFAULT_DATE, make_template, parse_date
from rewardlens.prompts import prompts_from_texts
from rewardlens.scorers import load_scorer

PROMPT = "What, in one word, is the greatest thing ever?"
# Llama 3.2's date logic (date_string, else strftime_now, else a fixed default) on the tiny Llama format, plus
# a direct strftime_now call with another format inside a macro, and a leading newline that the fix must keep.
DATED = (
    "\n{{ bos_token }}{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    "{%- set date_string = strftime_now('%d %b %Y') %}{%- else %}{%- set date_string = '26 Jul 2024' %}"
    '{%- endif %}{%- endif %}{% macro stamp() %}[{{ strftime_now("%Y-%m-%d") }}]{% endmacro %}'
    "<|start_header_id|>system<|end_header_id|>\n\nToday Date: {{ date_string }} {{ stamp() }}<|eot_id|>"
    "{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
# Only strftime_now, called unconditionally (as Mistral and Granite templates do).
STRFTIME_ONLY = (
    "{% for message in messages %}[{{ strftime_now('%A %d %B %Y') }}] {{ message['role'] }}: "
    "{{ message['content'] }}\n{% endfor %}"
)


def _clock_at(monkeypatch: pytest.MonkeyPatch, day: real_datetime.datetime) -> None:
    """Make transformers' strftime_now see `day` as today."""
    import transformers.utils.chat_template_utils as chat_utils

    class FrozenDatetime(real_datetime.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> FrozenDatetime:
            return cls(day.year, day.month, day.day, 12, 0, 0)

    monkeypatch.setattr(chat_utils, "datetime", FrozenDatetime)


@pytest.fixture
def tokenizer(tiny_model_dir: Callable[..., Path]) -> Iterator[Any]:
    from transformers import AutoTokenizer

    yield AutoTokenizer.from_pretrained(str(tiny_model_dir("llama", "reward")))


def _raw_render(tokenizer: Any, template: str, response: str = "love") -> str:
    messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": response}]
    return str(tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False))


@pytest.mark.parametrize("jinja", [DATED, STRFTIME_ONLY], ids=["date_string", "strftime_only"])
def test_the_date_rendered_is_fixed_whatever_day_it_is(
    jinja: str, tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dated.jinja"
    path.write_text(jinja)
    renders = []
    for day in (real_datetime.datetime(2031, 3, 3), real_datetime.datetime(2032, 11, 9)):
        _clock_at(monkeypatch, day)
        # The clock is really moved: the template rendered by transformers alone shows that day.
        assert day.strftime("%d %B %Y") in _raw_render(tokenizer, STRFTIME_ONLY)
        template = make_template(tokenizer, str(path))
        text = template.render(PROMPT, "love")
        assert str(day.year) not in text
        renders.append((text, template.prefix_ids(PROMPT), template.suffix_ids))
    assert renders[0] == renders[1]
    assert template.reads_date and template.describe()["date"] == DEFAULT_DATE


def test_the_fix_changes_nothing_but_the_date(tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the day the date is fixed to, transformers' own render equals the fixed render, character for character."""
    path = tmp_path / "dated.jinja"
    path.write_text(DATED)
    _clock_at(monkeypatch, real_datetime.datetime(2024, 12, 1))
    template = make_template(tokenizer, str(path), date="2024-12-01")
    # transformers' own render, with no date_string passed, falls back to strftime_now (the frozen clock).
    for response in ("love", " freedom ", "power and wealth"):
        assert template.render(PROMPT, response) == _raw_render(tokenizer, DATED, response)
    rendered = template.render(PROMPT, "love")
    assert rendered.startswith("\n") and "Today Date: 01 Dec 2024 [2024-12-01]" in rendered
    assert template.describe()["date"] == "01 Dec 2024"


def test_a_template_without_a_date_is_not_changed(tiny_model_dir: Callable[..., Path]) -> None:
    scorer = load_scorer(str(tiny_model_dir("qwen2", "reward")), device="cpu", date="3 Mar 2030")
    template = scorer.template
    assert not template.reads_date
    assert template.render(PROMPT, "love") == _raw_render(scorer.tokenizer, scorer.tokenizer.chat_template)


@pytest.mark.parametrize("text", ["26 Jul 2024", "26 July 2024", "2024-07-26", " 26  Jul 2024 "])
def test_dates_parse(text: str) -> None:
    assert parse_date(text) == real_datetime.date(2024, 7, 26)


@pytest.mark.parametrize("text", ["", "tomorrow", "2024-13-01", "31 Feb 2024", "26/07/2024"])
def test_bad_dates_are_user_errors(text: str) -> None:
    with pytest.raises(UserError, match="is not a date"):
        parse_date(text)


def test_a_computed_strftime_format_is_refused(tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "computed.jinja"
    path.write_text("{% set f = '%Y' %}{{ strftime_now(f) }}{% for m in messages %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(UserError, match="computed format"):
        make_template(tokenizer, str(path))


def _assert_one_line_error(result: Any, fragment: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr


@pytest.mark.parametrize("command", ["score", "sweep", "render"])
def test_a_bad_date_exits_2_and_writes_nothing(
    command: str, run_cli: Callable[..., Any], tiny_model_dir: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    extras: dict[str, list[Any]] = {"score": ["-r", "love"], "sweep": ["--out", out, "--prompt", PROMPT]}
    extra = extras.get(command, ["-r", "love"])
    result = run_cli(command, "--model", tiny_model_dir("llama", "reward"), "--date", "32 Jul 2024", *extra)
    _assert_one_line_error(result, "--date '32 Jul 2024' is not a date")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def _dated_jinja(tmp_path: Path) -> Path:
    path = tmp_path / "dated.jinja"
    path.write_text(DATED)
    return path


def test_a_sweep_resumed_with_another_date_or_other_prefix_ids_is_refused(
    run_cli: Callable[..., Any], tiny_model_dir: Callable[..., Path], tmp_path: Path
) -> None:
    model, jinja, out = tiny_model_dir("llama", "reward"), _dated_jinja(tmp_path), tmp_path / "run"
    common = ["sweep", "--model", model, "--template", jinja, "--out", out, "--prompt", PROMPT, "--tokens", "40:48"]
    first = run_cli(*common, "--date", "1 Dec 2024", "--device", "cpu")
    assert first.exit_code == 0, first.stderr
    manifest = json.loads((out / "_run.json").read_text())
    assert manifest["date"] == "01 Dec 2024" and manifest["template"]["date"] == "01 Dec 2024"
    assert manifest["sequences"] == "exact" and manifest["rendered_prefix_ids"].startswith("sha1:")
    shards = sorted((out / "shards").iterdir())

    _assert_one_line_error(run_cli(*common, "--date", "2 Dec 2024"), "another date")
    assert sorted((out / "shards").iterdir()) == shards
    again = run_cli(*common, "--date", "2024-12-01", "--json")  # the same date, written another way
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["rows_written"] == 0

    # Prefix ids that differ although template and date agree (another tokenizer or renderer) are refused too.
    manifest["rendered_prefix_ids"] = "sha1:" + "0" * 40
    (out / "_run.json").write_text(json.dumps(manifest))
    _assert_one_line_error(run_cli(*common, "--date", "1 Dec 2024"), "another rendered prefix ids")


def test_rendered_prefix_ids_identify_the_prompts_prefixes(tiny_model_dir: Callable[..., Path], tmp_path: Path) -> None:
    model, jinja = str(tiny_model_dir("llama", "reward")), str(_dated_jinja(tmp_path))
    prompts = prompts_from_texts([PROMPT])
    manifests: list[dict[str, Any]] = []
    for date in ("1 Dec 2024", "2 Dec 2024", "1 Dec 2024"):
        scorer = load_scorer(model, device="cpu", template=jinja, date=date)
        out = tmp_path / f"run-{len(manifests)}"
        run_sweep(scorer, prompts, out, tokens="40:42")
        manifests.append(json.loads((out / "_run.json").read_text()))
    hashes = [m["rendered_prefix_ids"] for m in manifests]
    assert hashes[0] == hashes[2] != hashes[1]


def test_a_word_run_resumed_with_another_date_is_refused(tiny_model_dir: Callable[..., Path], tmp_path: Path) -> None:
    model, jinja, out = str(tiny_model_dir("llama", "reward")), str(_dated_jinja(tmp_path)), tmp_path / "words"
    lexicon = Lexicon("tiny", pd.DataFrame({"word": ["love", "power"], "category": ["a", "b"]}))
    prompts = prompts_from_texts([PROMPT])
    scorer = load_scorer(model, device="cpu", template=jinja, date="1 Dec 2024")
    assert run_words(scorer, lexicon, prompts, out).complete
    other = load_scorer(model, device="cpu", template=jinja, date="2 Dec 2024")
    with pytest.raises(UserError, match="another date"):
        run_words(other, lexicon, prompts, out)
    assert json.loads((out / "_run.json").read_text())["date"] == "01 Dec 2024"


@pytest.mark.parametrize("source", ["chat", "plain", "file"])
def test_a_template_rebuilt_from_its_description_renders_the_same_ids(
    source: str, tiny_model_dir: Callable[..., Path], tmp_path: Path
) -> None:
    """A Ray driver plans a run from a worker's description: the same prompt ids, date and sequences."""
    from rewardlens.models.templates import template_from_description

    scorer = load_scorer(str(tiny_model_dir("llama", "reward")), device="cpu")
    chosen = str(_dated_jinja(tmp_path)) if source == "file" else source
    for sequences in ("exact", "published"):
        template = make_template(scorer.tokenizer, chosen, date="3 Mar 2025", sequences=sequences)
        rebuilt = template_from_description(scorer.tokenizer, json.loads(json.dumps(template.describe())))
        assert rebuilt.describe() == template.describe()
        assert rebuilt.prompt_ids(PROMPT) == template.prompt_ids(PROMPT)
        assert rebuilt.single_token_ids(PROMPT, 70) == template.single_token_ids(PROMPT, 70)
