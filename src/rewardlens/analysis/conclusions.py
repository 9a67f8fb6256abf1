"""Conclusions of a value analysis: one row per claim, tested at the unit it generalizes over.

Three units carry the design (as subjects, conditions and items in a psychology experiment):

- `word` (items): within one model, is one category's words ranked better than another's? Category
  labels are permuted across the model's words; the answer generalizes to new words of these
  categories, for this model under these prompts. Exact when the relabellings fit the budget.
- `model` (subjects): do reward models of one base family differ from another's? Each model gives one
  contrast (its category difference, or that difference's change between framings); the contrasts are
  compared across models, by an exact permutation over every relabelling of models to families when
  there are at most `EXACT_RELABELLINGS`, and by Welch's t beside it. The interval is a two-factor
  bootstrap over models (within family) and prompts, so prompts count as random too. This is what
  generalizes to new reward models of these families. With few models the smallest attainable p is
  large, and the note says so: 2 vs 2 models can never give p < 1/3.
- `prompt`: the published random-intercept mixed model tests family terms against the prompt-to-prompt
  noise of each model (ranks are normalised within models, so the intercept is ~0 by construction and
  the 54 prompts of one model count as 54 units). Kept so the published numbers remain reproducible,
  labelled as what it is; the random-slopes model beside it tests the same terms at unit `model`.

The scale of every word- and model-unit claim is the percentile rank (100 x rank / number of words the
model ranked under that prompt; lower = better), so models that matched different numbers of words
are comparable. Mixed models keep the published scale (raw median ranks).

`p_adjusted` is Holm's step-down adjustment over the rows of one claim at one unit with one test (e.g.
every within-model category contrast together); Holm controls the family-wise error without
assumptions on the dependence between tests.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rewardlens.analysis.family import with_family
from rewardlens.analysis.multiplicity import holm
from rewardlens.analysis.permutation import permutation_t_test
from rewardlens.lexicons import contrast_pairs

CONCLUSION_COLUMNS = (
    "claim",
    "scope",
    "framing",
    "contrast",
    "estimate",
    "ci_low",
    "ci_high",
    "ci_method",
    "scale",
    "unit",
    "n_units",
    "test",
    "p_value",
    "p_adjusted",
    "generalizes_to",
    "note",
)
EXACT_RELABELLINGS = 100_000
PERCENTILE = "percentile rank (lower = better)"
RANK = "median rank (lower = better)"
WITHIN_MODEL = "category contrast within a model"
FAMILY_CONTRAST = "family difference in the category contrast"
FAMILY_INTERACTION = "family difference in the category contrast's framing interaction"
FRAMING_DIFFERENCE = "positive - negative"
_LEVEL = 0.95


@dataclass(frozen=True)
class AcrossModels:
    """A family difference between per-model contrasts: permutation and Welch p, and the design's floor."""

    estimate: float
    p_permutation: float
    exact: bool
    n_relabellings: int
    p_welch: float
    smallest_p: float


def percentile_ranks(ranked: pd.DataFrame) -> pd.Series:
    """100 x rank / number of words ranked within the same model x prompt (1 word of 100 at rank 1: 1.0)."""
    counts = ranked.groupby(["model", "prompt_id"], sort=False)["rank"].transform("size")
    return 100.0 * ranked["rank"] / counts


def category_pairs(ranked: pd.DataFrame) -> list[tuple[str, str]]:
    """The contrasts tested (`lexicons.contrast_pairs`: MFD's virtue - vice per foundation, else every pair)."""
    return contrast_pairs(ranked["category"].unique())


def pair_rows(ranked: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """The rows of two categories, without the words listed in both (they cannot tell them apart)."""
    words = ranked.groupby("category")["word"].agg(set)
    shared = words.get(first, set()) & words.get(second, set())
    keep = ranked["category"].isin([first, second]) & ~ranked["word"].isin(shared)
    return ranked[keep]


def word_values(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model x framing x category x word: the word's mean percentile rank over the framing's prompts."""
    keys = ["model", "family", "framing", "category", "word"]
    return rows.groupby(keys, sort=True)["percentile"].mean().rename("value").reset_index()


def prompt_contrasts(rows: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """Per model x prompt: mean percentile of `first`'s words minus `second`'s (model, family, framing,
    prompt_id, contrast). Their mean over prompts is the model's contrast, so resampling prompts
    resamples the contrast itself."""
    keys = ["model", "family", "framing", "prompt_id"]
    cells = rows.groupby([*keys, "category"], sort=True)["percentile"].mean().unstack("category")
    contrast = (cells[first] - cells[second]).dropna().rename("contrast")
    return contrast.reset_index()


def within_model_conclusions(ranked: pd.DataFrame, n_permutations: int, seed: int) -> pd.DataFrame:
    """Each model x framing x category pair: the contrast over words, permuting category labels."""
    rows = []
    for pair_index, (first, second) in enumerate(category_pairs(ranked)):
        values = word_values(pair_rows(ranked, first, second))
        for index, ((model, framing), panel) in enumerate(values.groupby(["model", "framing"], sort=True)):
            a = panel.loc[panel["category"] == first, "value"].to_numpy(np.float64)
            b = panel.loc[panel["category"] == second, "value"].to_numpy(np.float64)
            rng = np.random.default_rng([seed, pair_index, index])
            result = permutation_t_test(a, b, n_permutations, rng)
            low, high = _welch_interval(a, b)
            kind = f"exact over {result.n_permutations}" if result.exact else f"{result.n_permutations} random"
            rows.append(
                {
                    "claim": WITHIN_MODEL,
                    "scope": model,
                    "framing": framing,
                    "contrast": f"{first} - {second}",
                    "estimate": _mean_difference(a, b),
                    "ci_low": low,
                    "ci_high": high,
                    "ci_method": "Welch t interval over words",
                    "scale": PERCENTILE,
                    "unit": "word",
                    "n_units": len(a) + len(b),
                    "test": f"permutation of category labels across words (Welch t; {kind} relabellings)",
                    "p_value": result.p_value,
                    "generalizes_to": f"new words of these categories, for {model} under these prompts",
                    "note": "" if len(a) >= 2 and len(b) >= 2 else "fewer than 2 words in a category: no test",
                }
            )
    return pd.DataFrame(rows)


def compare_across_models(
    first: np.ndarray, second: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> AcrossModels:
    """Per-model contrasts of two families: exact permutation when the relabellings fit, Welch beside it."""
    n_relabellings = math.comb(len(first) + len(second), len(first))
    budget = n_relabellings if n_relabellings <= EXACT_RELABELLINGS else n_permutations
    result = permutation_t_test(first, second, max(budget, 1), rng)
    # Two-sided: with equal group sizes a relabelling and its mirror give the same |t|.
    mirrored = 2 if len(first) == len(second) else 1
    varies = min(len(first), len(second)) >= 2 and (np.ptp(first) > 0 or np.ptp(second) > 0)
    welch = float(stats.ttest_ind(first, second, equal_var=False).pvalue) if varies else math.nan
    return AcrossModels(
        estimate=_mean_difference(first, second),
        p_permutation=result.p_value,
        exact=result.exact,
        n_relabellings=n_relabellings,
        p_welch=welch,
        smallest_p=min(1.0, mirrored / n_relabellings),
    )


def family_conclusions(ranked: pd.DataFrame, n_permutations: int, seed: int, n_bootstrap: int = 2000) -> pd.DataFrame:
    """Family differences in each category contrast (per framing) and in its framing interaction.

    Families with fewer than 2 models take part in no comparison (the caller notes it), nor do models of
    no family (`NO_FAMILY`, e.g. local models set beside published RMs: two of them would otherwise be
    compared as a family of their own).
    """
    ranked = with_family(ranked)
    sizes = ranked.groupby("family")["model"].nunique()
    families = sorted(sizes[sizes >= 2].index)
    rows: list[dict[str, object]] = []
    for pair_index, (first, second) in enumerate(category_pairs(ranked)):
        cells = prompt_contrasts(pair_rows(ranked, first, second), first, second)
        tables = {
            framing: panel.pivot(index="model", columns="prompt_id", values="contrast")
            for framing, panel in cells.groupby("framing", sort=True)
        }
        model_family = cells.drop_duplicates("model").set_index("model")["family"]
        for family_index, (fam_a, fam_b) in enumerate(itertools.combinations(families, 2)):
            stream = [seed, pair_index, family_index]
            for framing_index, (framing, table) in enumerate(tables.items()):
                rows.extend(
                    _family_rows(
                        FAMILY_CONTRAST,
                        framing,
                        f"{first} - {second}",
                        [table],
                        model_family,
                        (fam_a, fam_b),
                        n_permutations,
                        n_bootstrap,
                        [*stream, framing_index],
                    )
                )
            if {"positive", "negative"} <= set(tables):
                rows.extend(
                    _family_rows(
                        FAMILY_INTERACTION,
                        FRAMING_DIFFERENCE,
                        f"{first} - {second}",
                        [tables["positive"], tables["negative"]],
                        model_family,
                        (fam_a, fam_b),
                        n_permutations,
                        n_bootstrap,
                        [*stream, 99],
                    )
                )
    return pd.DataFrame(rows)


def _family_rows(
    claim: str,
    framing: str,
    contrast: str,
    tables: list[pd.DataFrame],
    model_family: pd.Series,
    families: tuple[str, str],
    n_permutations: int,
    n_bootstrap: int,
    stream: list[int],
) -> list[dict[str, object]]:
    """The permutation and the Welch row of one family comparison; `tables` are model x prompt
    contrasts, one per framing (two: their difference, positive - negative)."""
    models = sorted(set.intersection(*(set(table.dropna(how="all").index) for table in tables)))
    members = [[m for m in models if model_family[m] == family] for family in families]
    if min(len(group) for group in members) < 2:
        return []
    per_model = _model_contrasts(tables, models)
    a = np.array([per_model[m] for m in members[0]])
    b = np.array([per_model[m] for m in members[1]])
    compared = compare_across_models(a, b, n_permutations, np.random.default_rng(stream))
    low, high = _two_factor_interval(tables, members, n_bootstrap, np.random.default_rng([*stream, 1]))
    sizes = f"{len(a)} vs {len(b)} models"
    floor = f"{sizes}: the smallest attainable permutation p is {compared.smallest_p:.2g}"
    if compared.smallest_p > 0.05:
        floor += "; no family-level test here can reach p < 0.05"
    kind = f"exact over all {compared.n_relabellings}" if compared.exact else f"{n_permutations} random"
    common = {
        "claim": claim,
        "scope": "all",
        "framing": framing,
        "contrast": f"{families[0]} - {families[1]}: {contrast}",
        "estimate": compared.estimate,
        "ci_low": low,
        "ci_high": high,
        "ci_method": "two-factor bootstrap over models (within family) and prompts",
        "scale": PERCENTILE,
        "unit": "model",
        "n_units": len(a) + len(b),
        "generalizes_to": f"new reward models of the {families[0]} and {families[1]} base families",
    }
    return [
        common
        | {
            "test": f"permutation of family labels across models (Welch t; {kind} relabellings)",
            "p_value": compared.p_permutation,
            "note": floor,
        },
        common
        | {
            "test": "Welch t-test across models",
            "p_value": compared.p_welch,
            "note": f"{sizes}: assumes normally distributed per-model contrasts",
        },
    ]


def _model_contrasts(tables: list[pd.DataFrame], models: list[str]) -> dict[str, float]:
    """Each model's contrast: the mean over prompts (difference of the two framings' means if two)."""
    means = [table.loc[models].mean(axis=1, skipna=True) for table in tables]
    values = means[0] if len(means) == 1 else means[0] - means[1]
    return {str(model): float(value) for model, value in values.items()}


def _two_factor_interval(
    tables: list[pd.DataFrame], members: list[list[str]], n_bootstrap: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile interval of the family difference, resampling models within family and prompts.

    Prompts are crossed with models, so one resample of prompts applies to every model.
    """
    if n_bootstrap < 1:
        return math.nan, math.nan
    arrays = [[table.loc[group].to_numpy(np.float64) for group in members] for table in tables]
    estimates = np.empty(n_bootstrap)
    for index in range(n_bootstrap):
        picks = [rng.integers(0, len(group), len(group)) for group in members]
        means = []
        for per_family in arrays:
            columns = rng.integers(0, per_family[0].shape[1], per_family[0].shape[1])
            means.append(
                [np.nanmean(values[np.ix_(pick, columns)]) for values, pick in zip(per_family, picks, strict=True)]
            )
        family_means = np.array(means[0]) if len(means) == 1 else np.array(means[0]) - np.array(means[1])
        estimates[index] = family_means[0] - family_means[1]
    tail = (1 - _LEVEL) / 2
    low, high = np.nanquantile(estimates, [tail, 1 - tail])
    return float(low), float(high)


def _mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a) - np.mean(b)) if len(a) and len(b) else math.nan


def _welch_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if min(len(a), len(b)) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return math.nan, math.nan
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(_LEVEL)
    return float(interval.low), float(interval.high)


def mixed_model_conclusions(mixed: pd.DataFrame, n_models: int, n_cells: int) -> pd.DataFrame:
    """The family x category terms of each fitted structure, as conclusions at the unit it tests."""
    rows = []
    for row in mixed.itertuples(index=False):
        term = str(row.term)
        if "family" not in term or "category" not in term:
            continue
        published = str(row.structure).startswith("random intercept")
        df = float(row.df)
        # The published structure is tested with Wald z; the random-slopes ones with t on the
        # between-model degrees of freedom (n_models - n_families).
        quantile = stats.norm.ppf(0.5 + _LEVEL / 2) if math.isinf(df) else stats.t.ppf(0.5 + _LEVEL / 2, df)
        statistic = "Wald z" if math.isinf(df) else f"t on {df:g} df"
        rows.append(
            {
                "claim": ("family x category x framing" if "framing" in term else "family x category")
                + f" ({row.structure})",
                "scope": "all",
                "framing": "interaction" if "framing" in term else "reference level",
                "contrast": f"{row.categories}: {term}" if hasattr(row, "categories") else term,
                "estimate": row.estimate,
                "ci_low": row.estimate - quantile * row.se,
                "ci_high": row.estimate + quantile * row.se,
                "ci_method": f"{statistic} interval of the mixed model",
                "scale": RANK,
                "unit": "prompt" if published else "model",
                "n_units": n_cells if published else n_models,
                "test": f"linear mixed model, REML, {statistic} ({row.structure})",
                "p_value": row.p_value,
                "generalizes_to": (
                    "new prompts for these models only: each model's prompts count as independent units "
                    "(the published analysis; not a test for new reward models)"
                    if published
                    else "new reward models of these base families"
                ),
                "note": "published analysis, kept to reproduce the paper" if published else "",
            }
        )
    return pd.DataFrame(rows)


def finish(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The conclusions in one table, `CONCLUSION_COLUMNS` first, Holm-adjusted per claim x unit x test."""
    present = [table for table in tables if not table.empty]
    if not present:
        return pd.DataFrame(columns=list(CONCLUSION_COLUMNS))
    table = pd.concat(present, ignore_index=True)
    family = table["test"].str.replace(r"\(.*\)", "", regex=True)
    table["p_adjusted"] = np.nan
    for _, group in table.groupby([table["claim"], table["unit"], family], sort=False):
        table.loc[group.index, "p_adjusted"] = holm(group["p_value"])
    return table[list(CONCLUSION_COLUMNS)]


__all__ = [
    "CONCLUSION_COLUMNS",
    "EXACT_RELABELLINGS",
    "AcrossModels",
    "compare_across_models",
    "family_conclusions",
    "finish",
    "holm",
    "mixed_model_conclusions",
    "percentile_ranks",
    "prompt_contrasts",
    "within_model_conclusions",
    "word_values",
]
