"""The mixed models of `analyze values` cross-checked against R (lme4 and nlme) on the published Big Two data.

Both sides fit `median_rank ~ family * category * framing` by REML on the same rows (median rank per
model x category x prompt of the ten published RMs): the random intercept per model (as published; lme4
and nlme) and the uncorrelated by-model random slopes for category, framing and their interaction
(lme4's `||` on the treatment-coded dummies, which is what the Python side's variance components are).
Skipped, with the reason, when `Rscript` or one of the R packages is not installed
(Debian: r-base-core r-cran-lme4 r-cran-nlme r-cran-lmertest).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from rewardlens.analysis.family import assign_families
from rewardlens.analysis.values import (
    PUBLISHED_STRUCTURE,
    UNCORRELATED_SLOPES,
    fit_mixed_model,
    fit_random_slopes,
    prompt_medians,
    rank_lexicon_words,
)
from rewardlens.imports import load_scored_inputs
from rewardlens.lexicons import load_lexicon

ESTIMATE_TOLERANCE = 1e-3  # absolute, in median ranks
SE_TOLERANCE = 0.02  # relative

R_SCRIPT = r"""
suppressMessages({library(lme4); library(nlme)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
d$family <- factor(d$family); d$category <- factor(d$category); d$framing <- factor(d$framing)
# The treatment-coded dummies of category * framing (reference levels first alphabetically, as patsy's).
d$s0 <- as.numeric(d$category == levels(d$category)[2])
d$s1 <- as.numeric(d$framing == levels(d$framing)[2])
d$s2 <- d$s0 * d$s1
fixed <- median_rank ~ family * category * framing
ri <- lmer(median_rank ~ family * category * framing + (1 | model), data = d, REML = TRUE)
us <- lmer(median_rank ~ family * category * framing + (1 + s0 + s1 + s2 || model), data = d, REML = TRUE)
nl <- lme(fixed, random = ~ 1 | model, data = d, method = "REML")
table <- function(structure, estimate, covariance) {
  data.frame(structure = structure, term = names(estimate), estimate = unname(estimate),
             se = sqrt(diag(as.matrix(covariance))))
}
out <- rbind(table("lme4 random intercept", fixef(ri), vcov(ri)),
             table("lme4 uncorrelated slopes", fixef(us), vcov(us)),
             table("nlme random intercept", fixef(nl), vcov(nl)))
write.csv(out, args[2], row.names = FALSE)
"""


def r_unavailable() -> str | None:
    """Why R cannot run the cross-check, or None."""
    if shutil.which("Rscript") is None:
        return "Rscript is not installed (Debian: r-base-core r-cran-lme4 r-cran-nlme r-cran-lmertest)"
    probe = subprocess.run(
        ["Rscript", "-e", "suppressMessages({library(lme4); library(nlme)})"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if probe.returncode != 0:
        return f"R's lme4 or nlme is not installed: {probe.stderr.strip().splitlines()[-1:]}"
    return None


def r_term(term: str) -> str:
    """A patsy term name as R names it: `family[T.llama]:category[T.Communion]` -> `familyllama:categoryCommunion`."""
    return "(Intercept)" if term == "Intercept" else re.sub(r"\[T\.(.*?)\]", r"\1", term)


@pytest.fixture(scope="module")
def big2_rows(published_dir: Path) -> pd.DataFrame:
    scored = load_scored_inputs(sorted(published_dir.glob("*.csv")))
    families = assign_families({item.model: item.aliases for item in scored}, {})
    frame = pd.concat([item.frame for item in scored], ignore_index=True)
    ranked = rank_lexicon_words(frame, load_lexicon("big2-nouns"), families, "common")
    return prompt_medians(ranked)


@pytest.fixture(scope="module")
def r_fits(big2_rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    reason = r_unavailable()
    if reason:
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("r")
    rows, script, out = directory / "rows.csv", directory / "fit.R", directory / "fits.csv"
    big2_rows.to_csv(rows, index=False)
    script.write_text(R_SCRIPT)
    done = subprocess.run(
        ["Rscript", str(script), str(rows), str(out)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return pd.read_csv(out)


@pytest.fixture(scope="module")
def python_fits(big2_rows: pd.DataFrame) -> pd.DataFrame:
    rows = big2_rows
    published, _ = fit_mixed_model(rows)
    slopes, _ = fit_random_slopes(rows)
    assert published is not None
    table = pd.concat([published, *slopes], ignore_index=True)
    table = table[~table["term"].str.endswith(" Var")]  # the published table lists the group variance too
    return table.assign(term=table["term"].map(r_term))


def assert_like_for_like(python: pd.DataFrame, r: pd.DataFrame) -> None:
    joined = python[["term", "estimate", "se"]].merge(
        r[["term", "estimate", "se"]], on="term", how="outer", suffixes=("", "_r")
    )
    assert not joined.isna().any().any(), joined  # the same 8 fixed effects on both sides
    assert len(joined) == 8
    assert (joined["estimate"] - joined["estimate_r"]).abs().max() < ESTIMATE_TOLERANCE, joined
    assert ((joined["se"] / joined["se_r"] - 1).abs() < SE_TOLERANCE).all(), joined


def test_random_intercept_matches_lme4_and_nlme(python_fits: pd.DataFrame, r_fits: pd.DataFrame) -> None:
    python = python_fits
    published = python[python["structure"] == PUBLISHED_STRUCTURE]
    for structure in ("lme4 random intercept", "nlme random intercept"):
        assert_like_for_like(published, r_fits[r_fits["structure"] == structure])
    three_way = published.set_index("term").loc["familyllama:categoryCommunion:framingpositive"]
    assert three_way["estimate"] == pytest.approx(19.8, abs=0.1) and three_way["se"] == pytest.approx(2.5, abs=0.05)


def test_uncorrelated_random_slopes_match_lme4(python_fits: pd.DataFrame, r_fits: pd.DataFrame) -> None:
    python = python_fits
    slopes = python[python["structure"] == UNCORRELATED_SLOPES]
    assert_like_for_like(slopes, r_fits[r_fits["structure"] == "lme4 uncorrelated slopes"])
    three_way = slopes.set_index("term").loc["familyllama:categoryCommunion:framingpositive"]
    assert three_way["se"] == pytest.approx(9.12, abs=0.05)  # vs 2.5 under the published structure
