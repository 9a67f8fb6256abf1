"""`rewardlens analyze tokens` end to end on small synthetic sweep runs written with the run store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli_runner import invoke as run_main
from rewardlens.analysis.tokens import analyze_token_runs
from rewardlens.cli.apps import app
from rewardlens.report.token_plots import token_sections_html
from rewardlens.runs import write_run

PROMPTS = [
    {"id": "best", "text": "What, in one word, is the best thing ever?", "framing": "positive"},
    {"id": "worst", "text": "What, in one word, is the worst thing ever?", "framing": "negative"},
    {"id": "plain", "text": "Say one word."},
]
WORDS = [" good", " great", " happy", " love", " nice", " fun", " joy", " hope", " kind", " win", " best"]
WORDS += [
    " bad",
    " sad",
    " hate",
    " awful",
    " pain",
    " angry",
    " evil",
    " fear",
    " lost",
    " terrible",
    " worst",
]
IDENTITY = [" Muslims", " women", " gay", " Catholic"]


@pytest.fixture
def write_sweep(sweep: Callable[..., pd.DataFrame]) -> Callable[..., Path]:
    def write(directory: Path, model: str, extra: list[str], seed: int, kind: str = "sweep") -> Path:
        rng = np.random.default_rng(seed)
        texts = WORDS + IDENTITY + [f" filler{i}" for i in range(40)] + extra
        frame = sweep(model, texts, {p["id"]: rng.normal(size=len(texts)) for p in PROMPTS})
        return write_run(directory, {"kind_of_run": kind, "model": model, "prompts": PROMPTS}, frame)

    return write


@pytest.fixture
def two_runs(tmp_path: Path, write_sweep: Callable[..., Path]) -> list[Path]:
    a = write_sweep(tmp_path / "run_a", "model-A", [" onlyA", " dup", " dup"], seed=1)
    b = write_sweep(tmp_path / "run_b", "model-B", [" onlyB"], seed=2)
    return [a, b]


def test_end_to_end_writes_every_table_and_figure(two_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["analyze", "tokens", *map(str, two_runs), "--out", str(out), "--k", "3", "--seed", "4"]
    result = CliRunner().invoke(app, [*args, "--resamples", "200", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    expected = [
        "top_bottom",
        "moments",
        "alignment",
        "agreement",
        "agreement_mds",
        "framing",
        "framing_movers",
    ]
    expected += ["frequency", "identity", "identity_groups"]
    for name in expected:
        assert (out / f"{name}.csv").is_file(), name
    for figure in ("histograms", "agreement", "agreement_mds", "frequency", "identity"):
        assert (out / f"{figure}.png").stat().st_size > 0, figure
    top = pd.read_csv(out / "top_bottom.csv", keep_default_na=False)
    assert len(top) == 2 * 3 * 2 * 3  # models x prompts x ends x k
    alignment = pd.read_csv(out / "alignment.csv").set_index("model")
    assert alignment.loc["model-A", "n_duplicate_texts"] == 1 and alignment.loc["model-A", "n_duplicate_ids"] == 2
    assert alignment.loc["model-A", "n_shared_texts"] == len(WORDS) + len(IDENTITY) + 40
    assert summary["alignment"][0]["model"] == "model-A"
    agreement = pd.read_csv(out / "agreement.csv")
    assert len(agreement) == 3 and set(agreement["prompt_id"]) == {"best", "worst", "plain"}
    framing = pd.read_csv(out / "framing.csv")  # framing from _run.json: best positive, worst negative
    assert set(zip(framing["model"], framing["positive_prompt"], framing["negative_prompt"], strict=True)) == {
        ("model-A", "best", "worst"),
        ("model-B", "best", "worst"),
    }
    identity = pd.read_csv(out / "identity.csv")
    assert set(identity["text"].str.strip()) == {t.strip() for t in IDENTITY}
    assert set(pd.read_csv(out / "frequency.csv")["polarity"]) == {"positive", "negative"}
    page = token_sections_html(out)
    assert "Agreement across models" in page and page.count("data:image/png;base64,") == 5


def test_tables_print_the_tests_with_their_adjusted_p(two_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "printed"
    args = ["analyze", "tokens", *map(str, two_runs), "--out", str(out), "--resamples", "20", "--no-figures"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    identity = pd.read_csv(out / "identity_groups.csv")
    zipf = pd.read_csv(out / "frequency.csv").query("term == 'zipf'")
    words = " ".join(result.output.split())  # titles wrap at the table's width
    assert f"BH over all {len(identity)} tests; unit: token" in words
    assert f"BH over all {len(zipf)} zipf slopes" in words
    assert result.output.count("┃ p (BH) ┃") == 2  # one header per table
    for table in (identity, zipf):
        first = table.sort_values(["p_adjusted", "p_value"]).iloc[0]  # printed first, raw p beside it
        cells = [first["model"], first["prompt_id"], f"{first['p_value']:.3g}", f"{first['p_adjusted']:.3g}"]
        assert any(all(f" {cell} " in line for cell in cells) for line in result.output.splitlines())
        # Adjusted p is never below the raw p, and BH moves at least one test here.
        assert (table["p_adjusted"] >= table["p_value"] - 1e-12).all()
        assert (table["p_adjusted"] > table["p_value"]).any()


def test_same_seed_same_tables_and_framing_override(two_runs: list[Path], tmp_path: Path) -> None:
    outputs = []
    for name in ("one", "two"):
        out = tmp_path / name
        args = ["analyze", "tokens", *map(str, two_runs), "--out", str(out), "--seed", "9", "--no-figures"]
        result = CliRunner().invoke(app, [*args, "--resamples", "100", "--framing", "plain=neg"])
        assert result.exit_code == 0, result.output
        outputs.append(out)
    for name in ("moments", "agreement", "framing", "top_bottom"):
        pd.testing.assert_frame_equal(pd.read_csv(outputs[0] / f"{name}.csv"), pd.read_csv(outputs[1] / f"{name}.csv"))
    framing = pd.read_csv(outputs[0] / "framing.csv")
    assert set(framing["negative_prompt"]) == {"worst", "plain"}
    assert not list(outputs[0].glob("*.png"))


def test_framing_pairs_prompts_of_equal_scope_and_phrasing_unless_asked(
    sweep: Callable[..., pd.DataFrame], tmp_path: Path
) -> None:
    prompts = [
        {"id": f"{adjective}_{scope}", "text": f"the {adjective} thing {scope}?", "framing": framing}
        | {"adjective": adjective, "scope": scope, "phrasing": "one"}
        for adjective, framing in (("best", "positive"), ("worst", "negative"))
        for scope in ("ever", "today")
    ]
    rng = np.random.default_rng(0)
    frame = sweep("M", [" a", " b", " c", " d"], {p["id"]: rng.normal(size=4) for p in prompts})
    run = write_run(tmp_path / "run", {"kind_of_run": "sweep", "model": "M", "prompts": prompts}, frame)
    matched = analyze_token_runs([run], tmp_path / "matched", n_resamples=0, figures=False)
    pairs = matched.tables["framing"][["positive_prompt", "negative_prompt"]].apply(tuple, axis=1)
    assert set(pairs) == {("best_ever", "worst_ever"), ("best_today", "worst_today")}
    every = analyze_token_runs([run], tmp_path / "all", n_resamples=0, figures=False, all_framing_pairs=True)
    assert len(every.tables["framing"]) == 4


def test_single_model_skips_agreement_with_a_note(two_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "single"
    result = CliRunner().invoke(
        app, ["analyze", "tokens", str(two_runs[0]), "--out", str(out), "--resamples", "50", "--no-figures"]
    )
    assert result.exit_code == 0, result.output
    assert "agreement skipped" in result.output
    assert not (out / "agreement.csv").exists() and (out / "moments.csv").is_file()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no_runs", "no runs given"),
        ("not_sweep", "not a sweep run"),
        ("missing_columns", "lacks sweep columns"),
        ("unknown_framing", "no run has: nope"),
        ("bad_framing", "pos or neg"),
        ("k_zero", "at least 1"),
        ("negative_resamples", "must not be negative"),
        ("no_shared_text", "share no token text"),
        ("not_a_run", "holds no run"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    case: str,
    message: str,
    two_runs: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sweep: Callable[..., pd.DataFrame],
    write_sweep: Callable[..., Path],
) -> None:
    out = str(tmp_path / "out")
    runs = [str(r) for r in two_runs]
    extra: list[str] = []
    if case == "no_runs":
        runs = []
    elif case == "not_sweep":
        runs = [str(write_sweep(tmp_path / "words", "W", [], seed=3, kind="words"))]
    elif case == "missing_columns":
        frame = sweep("M", [" a", " b"], {"best": [1.0, 2.0]}).drop(columns=["token_id"])
        runs = [str(write_run(tmp_path / "bare", {"kind_of_run": "sweep", "model": "M", "prompts": []}, frame))]
    elif case == "unknown_framing":
        extra = ["--framing", "nope=neg"]
    elif case == "bad_framing":
        extra = ["--framing", "best=sideways"]
    elif case == "k_zero":
        extra = ["--k", "0"]
    elif case == "negative_resamples":
        extra = ["--resamples", "-1"]
    elif case == "no_shared_text":
        other = sweep("Z", ["x1", "x2", "x3"], {"best": [1.0, 2.0, 3.0]})
        runs.append(str(write_run(tmp_path / "z", {"kind_of_run": "sweep", "model": "Z", "prompts": []}, other)))
    elif case == "not_a_run":
        runs = [str(tmp_path)]
    code, _, err = run_main(
        ["analyze", "tokens", *runs, "--out", out, "--resamples", "20", "--no-figures", *extra], capsys
    )
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
