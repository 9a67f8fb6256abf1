"""The report's value section: the conclusions in words and as a table, each naming its unit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rewardlens.analysis.conclusions import CONCLUSION_COLUMNS, FAMILY_CONTRAST
from rewardlens.report.audit_html import conclusions_in_words, value_dir_html, write_report
from rewardlens.values import ValueReport, analyze_value_files


@pytest.fixture(scope="module")
def published_report(tmp_path_factory: pytest.TempPathFactory, published_dir: Path) -> ValueReport:
    out = tmp_path_factory.mktemp("published")
    return analyze_value_files(sorted(published_dir.glob("*.csv")), "big2-nouns", out, n_permutations=500, seed=0)


def test_published_conclusions_in_words_name_units_and_what_they_license(published_report: ValueReport) -> None:
    sentences = conclusions_in_words(published_report.analysis.conclusions)
    within, *across, published, slopes = sentences
    assert within.startswith("Within each model (unit: word;") and "of 10 models under positive framing" in within
    assert len(across) == 3  # two framings and their interaction, by exact permutation (Welch only in the table)
    for sentence in across:
        assert sentence.startswith(
            "Across models (unit: model, 4 vs 6 models, exact permutation over 210 relabellings)"
        )
        assert "not significant (p = 0." in sentence and "not established for new reward models" in sentence
    assert published.startswith("The published random-intercept model (unit: prompt, treats each model's 54 prompts")
    assert "540 model x prompt cells) gives p = " in published and "not evidence about new reward models" in published
    p_published = float(published.split("gives p = ")[1].split(" ")[0])
    assert p_published < 1e-6
    assert slopes.startswith("The same fixed effects with random slopes by model")
    assert "(unit: model, 10 models)" in slopes


def test_report_shows_the_conclusions_table_not_the_model_x_prompt_tests(
    tmp_path: Path, published_report: ValueReport
) -> None:
    html = write_report(tmp_path / "report.html", [], {"big2-nouns": published_report}).read_text()
    section = html.split("Conclusions, each at the unit it is tested at", 1)[1]
    header = "".join(
        f"<th>{name}</th>"
        for name in ("claim", "scope", "framing", "estimate [95% CI]", "unit", "n_units", "test", "p", "p_adjusted")
    )
    assert header in section and "<th>generalizes_to</th><th>note</th>" in section
    assert "<td>model</td><td class='num'>10</td>" in section and "<td>prompt</td><td class='num'>540</td>" in section
    assert "exact permutation over 210 relabellings" in section
    # Families first: the first row of the table is a family claim at unit model.
    first_row = section.split("<tbody><tr>", 1)[1].split("</tr>", 1)[0]
    assert first_row.startswith(f"<td>{FAMILY_CONTRAST}</td><td>all</td>")
    assert "Permutation tests" not in html and "p_bonferroni" not in html


def _row(**values: object) -> dict[str, object]:
    base: dict[str, object] = {name: "" for name in CONCLUSION_COLUMNS}
    base.update(estimate=1.0, ci_low=0.0, ci_high=2.0, n_units=4, p_value=1 / 3, p_adjusted=1 / 3)
    return base | values


def test_two_models_per_family_is_said_to_be_untestable_and_text_is_escaped(tmp_path: Path) -> None:
    note = "2 vs 2 models: the smallest attainable permutation p is 0.33; no family-level test here can reach p < 0.05"
    table = pd.DataFrame(
        [
            _row(
                claim=FAMILY_CONTRAST, scope="all", framing="positive", contrast="a - b: Agency - Communion",
                unit="model",
                test="permutation of family labels across models (Welch t; exact over all 6 relabellings)",
                generalizes_to="new reward models of the a and b base families", note=note,
            ),
            _row(
                claim="category contrast within a model", scope="<script>alert(1)</script>", framing="positive",
                contrast="Agency - Communion", unit="word", n_units=20, p_value=1e-4, p_adjusted=4e-4, estimate=-9.0,
                test="permutation of category labels across words", generalizes_to="new words", note=float("nan"),
            ),
        ]
    )
    (across,) = [s for s in conclusions_in_words(table) if s.startswith("Across")]
    assert "unit: model, 2 vs 2 models, exact permutation over 6 relabellings" in across
    assert "not testable at this unit (the smallest attainable permutation p is 0.33; p = 0.33)" in across
    table.to_csv(tmp_path / "conclusions.csv", index=False)
    html = value_dir_html("Implicit reward value bias: big2-nouns", tmp_path)  # implicit sections read the CSV
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "differs in 1 of 1 models under positive framing (Agency ranked better in 1, Communion in 0)" in html
    assert "<td>nan</td>" not in html
