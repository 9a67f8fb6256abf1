"""Value bias: how a reward model ranks the words of value categories (Big Two, Moral Foundations, ...).

The analysis of "Reward Models Inherit Value Biases from Pretraining" (Christian et al., 2026):
within each model x prompt the lexicon's words are ranked by score (1 = best); a model's preference for
a category is the median rank of its words, separately for positively framed prompts ("the best
thing") and negatively framed ones ("the worst thing").

The published inference is kept so that its numbers stay reproducible, labelled as what it is:

- a linear mixed model `median_rank ~ family * category * framing` with a random intercept per model
  (REML), on median ranks per model x category x prompt: its family terms are tested against
  prompt-to-prompt noise (unit `prompt`), so they say nothing about new reward models;
- permutation Welch t-tests between families on the median ranks per model x prompt (the study's
  Figure 1): prompts of one model are not exchangeable between families, so this is not a valid test
  (`validity` says so and it gets no significance mark); one median rank per model is.

What each conclusion licenses is in `conclusions` (`rewardlens.analysis.conclusions`): category
contrasts within each model over words, family differences across models (exact permutation and
Welch), the same fixed effects with by-model random slopes, each with the unit it generalizes over.

Surface forms: responses match lexicon words after stripping whitespace, case-insensitively, and the
forms of one word under one prompt count once, with their mean score (`rank_responses`).
By default only the words that every model scored are ranked (`words="common"`), so that ranks of
different models share one word set; `words="all"` ranks each model's own matches.

Every function here is pure: DataFrames in, DataFrames out.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from rewardlens.analysis import conclusions as claims
from rewardlens.analysis.family import with_family
from rewardlens.analysis.permutation import PermutationResult, bonferroni, permutation_t_test, stars
from rewardlens.analysis.ranks import rank_responses
from rewardlens.errors import UserError
from rewardlens.lexicons import Lexicon, contrast_pairs

Compare = Literal["auto", "families", "categories"]
WordSet = Literal["common", "all"]
INVALID_UNIT = "not a valid test (a model's prompts are not exchangeable units); kept to reproduce the paper"
FRAMINGS = ("positive", "negative")
SCORE_COLUMNS = ("model", "prompt_id", "response", "score", "framing")


@dataclass
class ValueAnalysis:
    """All tables of one analysis; `notes` explains anything skipped (e.g. the mixed model)."""

    ranked: pd.DataFrame  # model, family, prompt_id, framing, word, category, score, rank, percentile
    model_medians: pd.DataFrame  # model, family, framing, category, median_rank, median_percentile, n_rows
    summary: pd.DataFrame  # framing, category, family, mean_median_rank, mean_median_percentile, n_models
    prompt_medians: pd.DataFrame  # model, family, prompt_id, framing, category, median_rank
    mixed_model: pd.DataFrame | None  # structure, term, estimate, se, df, p_value
    tests: pd.DataFrame
    compare: str
    lexicon: str
    notes: list[str] = field(default_factory=list)
    conclusions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(claims.CONCLUSION_COLUMNS)))
    # Why the family comparison asked for could not be made (the CLI exits with it, after writing).
    family_problem: str | None = None


def match_lexicon(scores: pd.DataFrame, lexicon: Lexicon) -> pd.DataFrame:
    """Scored rows whose response is a lexicon word, one row per response x category.

    Responses match words after stripping whitespace, case-insensitively (a sweep's `" Love"` is `love`).
    """
    missing = [column for column in SCORE_COLUMNS if column not in scores.columns]
    if missing:
        raise UserError(f"value analysis needs the columns {', '.join(missing)} in the scored rows")
    keys = scores["response"].astype(str).str.strip()
    expanded = lexicon.expand(keys.unique().tolist())
    entries = expanded.entries.assign(key=expanded.entries["word"].astype(str).str.strip().str.casefold())
    entries = entries.drop_duplicates(["key", "category"])
    # The lexicon's spelling names the word, so `Love` and `love` are one word scored twice.
    spelling = entries.drop_duplicates("key").set_index("key")["word"]
    scored = scores.drop(columns=[c for c in ("word", "category") if c in scores.columns])
    # `row` identifies the scored response: a word of two categories is matched twice but scored once.
    scored = scored.assign(key=keys.str.casefold().to_numpy(), row=np.arange(len(scored)))
    scored["word"] = scored["key"].map(spelling)
    matched = scored.merge(entries[["key", "category"]], on="key", how="inner")
    if matched.empty:
        raise UserError(
            f"lexicon {lexicon.name}: none of its {len(expanded.words)} words is among the scored responses"
        )
    return matched.drop(columns="key")


def rank_lexicon_words(
    scores: pd.DataFrame, lexicon: Lexicon, families: Mapping[str, str], words: WordSet = "all"
) -> pd.DataFrame:
    """Ranks of the lexicon's words within each model x prompt, one row per word x category.

    Only lexicon words are ranked (other scored responses would shift every rank), each word once;
    with `words="common"` only those that every model scored. `percentile` is 100 x rank / the
    number of words ranked in that model x prompt.
    """
    matched = match_lexicon(scores, lexicon)
    if words == "common":
        per_model = matched.groupby("model")["word"].agg(set)
        matched = matched[matched["word"].isin(set.intersection(*per_model))]
        if matched.empty:
            raise UserError("no lexicon word was scored by every model; use --words all")
    if matched["framing"].isna().any():
        unframed = sorted(matched.loc[matched["framing"].isna(), "prompt_id"].astype(str).unique())
        raise UserError(f"prompt {unframed[0]!r} has no framing (positive/negative); give a prompts file with framings")
    responses = matched.drop_duplicates("row")
    ranked = rank_responses(responses[["model", "prompt_id", "framing", "word", "score"]], item="word")
    categories = matched[["model", "prompt_id", "word", "category"]].drop_duplicates()
    ranked = ranked.merge(categories, on=["model", "prompt_id", "word"], how="inner")
    unknown = sorted(set(ranked["model"]) - set(families))
    if unknown:
        raise ValueError(f"no family given for model {unknown[0]!r}")  # a bug: the caller assigns all
    ranked.insert(1, "family", ranked["model"].map(families))
    ranked = ranked[["model", "family", "prompt_id", "framing", "word", "category", "score", "rank"]]
    return ranked.assign(percentile=_percentiles(ranked))


def _percentiles(ranked: pd.DataFrame) -> pd.Series:
    # A word of two categories has two rows but one rank: count each word once.
    counts = ranked.groupby(["model", "prompt_id"], sort=False)["word"].transform("nunique")
    return 100.0 * ranked["rank"] / counts


def model_medians(ranked: pd.DataFrame) -> pd.DataFrame:
    """Per model x framing x category: the median rank over all its (word, prompt) rows."""
    grouped = ranked.groupby(["model", "family", "framing", "category"], sort=True)
    medians = grouped.agg(
        median_rank=("rank", "median"), median_percentile=("percentile", "median"), n_rows=("rank", "size")
    )
    return medians.reset_index()


def summarize(medians: pd.DataFrame) -> pd.DataFrame:
    """Per framing x category x family: the mean over models of their median ranks (the published
    table) and of their median percentile ranks (comparable across models of different coverage)."""
    grouped = medians.groupby(["framing", "category", "family"], sort=True)
    summary = grouped.agg(
        mean_median_rank=("median_rank", "mean"),
        mean_median_percentile=("median_percentile", "mean"),
        n_models=("median_rank", "size"),
    )
    return summary.reset_index()


def prompt_medians(ranked: pd.DataFrame) -> pd.DataFrame:
    """Per model x prompt x category: the median rank of the category's words (the mixed model's rows)."""
    grouped = ranked.groupby(["model", "family", "prompt_id", "framing", "category"], sort=True)["rank"]
    return grouped.median().rename("median_rank").reset_index()


PUBLISHED_STRUCTURE = "random intercept (as published)"
FULL_SLOPES = "random slopes by model (full covariance)"
UNCORRELATED_SLOPES = "random slopes by model (uncorrelated)"
MIXED_COLUMNS = ["structure", "term", "estimate", "se", "df", "p_value"]
# A covariance matrix whose smallest eigenvalue is this small relative to its largest is singular.
_SINGULAR = 1e-6


def fit_mixed_model(rows: pd.DataFrame) -> tuple[pd.DataFrame | None, str | None]:
    """REML fit of `median_rank ~ family * category * framing` with a random intercept per model.

    The published structure (Wald z tests). Factors with a single level drop out of the formula.
    Returns (table, None) or (None, why skipped): a family effect needs at least 2 models in every
    family, and a random intercept needs 2 models.
    """
    skipped = _mixed_model_skipped(rows)
    if skipped:
        return None, skipped
    fitted = _best_fit(rows, _fixed_formula(rows), {})
    if fitted is None:
        return None, "mixed model skipped: REML fitting failed with every optimiser (singular design?)"
    table = pd.DataFrame(
        {
            "structure": PUBLISHED_STRUCTURE,
            "term": fitted.params.index,
            "estimate": fitted.params.to_numpy(),
            "se": fitted.bse.reindex(fitted.params.index).to_numpy(),
            "df": math.inf,
            "p_value": fitted.pvalues.reindex(fitted.params.index).to_numpy(),
        }
    )
    note = None if fitted.converged else "mixed model: the REML optimiser did not report convergence"
    return table, note


def fit_random_slopes(rows: pd.DataFrame) -> tuple[list[pd.DataFrame], list[str]]:
    """The same fixed effects with by-model random slopes for the within-model factors.

    First with a full covariance of the random effects, then with uncorrelated variance components
    (always fitted: it is the structure that stays estimable with few models). Terms are tested with
    t on n_models - n_families degrees of freedom: the between-model residual is what family terms
    are compared against. Returns the tables and notes on anything that failed or was singular.
    """
    if _mixed_model_skipped(rows):
        return [], []
    within = [name for name in ("category", "framing") if rows[name].nunique() > 1]
    if not within:
        return [], []
    formula = _fixed_formula(rows)
    df = rows["model"].nunique() - rows["family"].nunique()
    tables, notes = [], []
    full = _best_fit(rows, formula, {"re_formula": "~" + " * ".join(within)})
    if full is None or not full.converged:
        notes.append(f"{FULL_SLOPES}: REML did not converge; only the uncorrelated structure is reported")
    else:
        eigen = np.linalg.eigvalsh(np.asarray(full.cov_re, dtype=np.float64))
        if eigen.min() <= _SINGULAR * max(eigen.max(), 0.0):
            notes.append(f"{FULL_SLOPES}: the covariance is singular; only the uncorrelated structure is reported")
        else:
            tables.append(_fixed_table(full, FULL_SLOPES, df))
    import patsy  # statsmodels' formula engine, loaded with it

    design = patsy.dmatrix(" * ".join(within), rows, return_type="dataframe").drop(columns="Intercept")
    slopes = rows.assign(**{f"slope{i}": design[column] for i, column in enumerate(design.columns)})
    components = {f"slope{i}": f"0 + slope{i}" for i in range(design.shape[1])}
    uncorrelated = _best_fit(slopes, formula, {"re_formula": "1", "vc_formula": components})
    if uncorrelated is None:
        notes.append(f"{UNCORRELATED_SLOPES}: REML fitting failed with every optimiser")
    else:
        tables.append(_fixed_table(uncorrelated, UNCORRELATED_SLOPES, df))
        if not uncorrelated.converged:
            notes.append(f"{UNCORRELATED_SLOPES}: the REML optimiser did not report convergence")
    return tables, notes


def fit_mixed_models(ranked: pd.DataFrame, per_prompt: pd.DataFrame) -> tuple[pd.DataFrame | None, list[str]]:
    """Every structure of the mixed model: one fit over all categories when the lexicon's contrasts are
    all its category pairs (Big Two, as published), else one fit per contrast on that pair's rows
    (MFD 2.0: virtue vs vice within each foundation; column `categories` names the pair). A fit over
    ten categories at once would have 40 fixed effects and 19 random slopes per model."""
    pairs = contrast_pairs(ranked["category"].unique())
    if len(pairs) == math.comb(ranked["category"].nunique(), 2):  # every pair: one fit, as published
        return _fit_structures(per_prompt, "")
    tables, notes = [], []
    for first, second in pairs:
        rows = prompt_medians(claims.pair_rows(ranked, first, second))
        table, pair_notes = _fit_structures(rows, f"{first} - {second}: ")
        notes += pair_notes
        if table is not None:
            tables.append(table.assign(categories=f"{first} - {second}"))
    return (pd.concat(tables, ignore_index=True) if tables else None), notes


def _fit_structures(rows: pd.DataFrame, label: str) -> tuple[pd.DataFrame | None, list[str]]:
    mixed, note = fit_mixed_model(rows)
    notes = [label + note] if note else []
    slopes, slope_notes = fit_random_slopes(rows)
    notes += [label + text for text in slope_notes]
    if mixed is not None and slopes:
        mixed = pd.concat([mixed, *slopes], ignore_index=True)
    return mixed, notes


def _mixed_model_skipped(rows: pd.DataFrame) -> str | None:
    per_family = rows.groupby("family")["model"].nunique()
    if rows["model"].nunique() < 2:
        return "mixed model skipped: it needs at least 2 models (one random intercept per model)"
    thin = per_family[per_family < 2]
    if len(per_family) > 1 and len(thin):
        return (
            f"mixed model skipped: family {thin.index[0]!r} has {int(thin.iloc[0])} model; "
            "a family effect needs at least 2 models per family"
        )
    return None


def _fixed_formula(rows: pd.DataFrame) -> str:
    factors = [name for name in ("family", "category", "framing") if rows[name].nunique() > 1]
    return "median_rank ~ " + (" * ".join(factors) if factors else "1")


def _fixed_table(fitted: Any, structure: str, df: int) -> pd.DataFrame:
    estimate = fitted.fe_params
    se = fitted.bse_fe.reindex(estimate.index)
    t = estimate / se
    p = 2 * stats.t.sf(np.abs(t.to_numpy()), df) if df > 0 else np.full(len(t), np.nan)
    return pd.DataFrame(
        {
            "structure": structure,
            "term": estimate.index,
            "estimate": estimate.to_numpy(),
            "se": se.to_numpy(),
            "df": float(df),
            "p_value": p,
        }
    )


def _best_fit(rows: pd.DataFrame, formula: str, structure: dict[str, Any]) -> Any:
    """The best REML fit over three optimisers (None if all fail); converged fits preferred."""
    import statsmodels.formula.api as smf  # slow to import; only this analysis needs it

    model = smf.mixedlm(formula, rows, groups=rows["model"], **structure)
    # Ranks are normalised within each model, so the random-intercept variance is often at its
    # boundary (0): there the gradient optimisers may fail (singular matrix) or stop early at a poor
    # point, while the derivative-free ones reach the optimum. Keep the best REML likelihood.
    fits = []
    for method in (None, "powell", "nm"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence is checked by the callers, and noted
            try:
                attempt = model.fit(reml=True) if method is None else model.fit(reml=True, method=[method])
            except (np.linalg.LinAlgError, ValueError):
                continue
        if np.isfinite(attempt.llf):
            fits.append(attempt)
    if not fits:
        return None
    converged = [fit for fit in fits if fit.converged] or fits
    return max(converged, key=lambda fit: fit.llf)


def family_tests(per_prompt: pd.DataFrame, per_model: pd.DataFrame, n_permutations: int, seed: int) -> pd.DataFrame:
    """Per framing x category panel and family pair: permutation Welch t-tests between families.

    Two units of observation, each Bonferroni-adjusted over its own tests:
    - `model`: one median rank per model; models are exchangeable between families under the null,
      so this is a valid test (with little power when there are few models);
    - `model x prompt`: the median rank of each model under each prompt, as in the study's Figure 1.
      Not a valid test: it relabels rows whose prompts belong to one model, which are not
      exchangeable between families. Kept to reproduce the paper, with no significance mark.
    """
    tests = [
        _family_pairs(per_prompt, "model x prompt", n_permutations, seed),
        _family_pairs(per_model, "model", n_permutations, seed + 1),
    ]
    return _adjusted(pd.concat(tests, ignore_index=True), "families")


def _family_pairs(values: pd.DataFrame, unit: str, n_permutations: int, seed: int) -> pd.DataFrame:
    rows = []
    families = sorted(values["family"].unique())
    panels = values.groupby(["framing", "category"], sort=True)
    for index, ((framing, category), panel) in enumerate(panels):
        for pair_index, (first, second) in enumerate(itertools.combinations(families, 2)):
            a = panel.loc[panel["family"] == first, "median_rank"].to_numpy(dtype=np.float64)
            b = panel.loc[panel["family"] == second, "median_rank"].to_numpy(dtype=np.float64)
            rng = np.random.default_rng([seed, index, pair_index])
            rows.append(
                {"unit": unit, "framing": framing, "category": category}
                | _result_row(first, second, a, b, permutation_t_test(a, b, n_permutations, rng))
            )
    return pd.DataFrame(rows)


def _result_row(first: str, second: str, a: np.ndarray, b: np.ndarray, result: PermutationResult) -> dict:
    return {
        "group_a": first,
        "group_b": second,
        "n_a": len(a),
        "n_b": len(b),
        "mean_a": float(np.mean(a)) if len(a) else math.nan,
        "mean_b": float(np.mean(b)) if len(b) else math.nan,
        "t": result.t,
        "p_value": result.p_value,
        "n_permutations": result.n_permutations,
        "exact": result.exact,
    }


def category_tests(ranked: pd.DataFrame, n_permutations: int, seed: int) -> pd.DataFrame:
    """Per model x framing and category pair: permutation t-test on the words' median ranks.

    Each word is one observation (its median rank over the framing's prompts); a word in both
    categories of a pair is left out of that comparison.
    """
    per_word = ranked.groupby(["model", "family", "framing", "category", "word"], sort=True)["rank"].median()
    per_word = per_word.rename("median_rank").reset_index()
    rows = []
    for index, ((model, family, framing), panel) in enumerate(
        per_word.groupby(["model", "family", "framing"], sort=True)
    ):
        for pair_index, (first, second) in enumerate(contrast_pairs(panel["category"].unique())):
            words_a = set(panel.loc[panel["category"] == first, "word"])
            words_b = set(panel.loc[panel["category"] == second, "word"])
            shared = words_a & words_b
            a = panel.loc[(panel["category"] == first) & ~panel["word"].isin(shared), "median_rank"]
            b = panel.loc[(panel["category"] == second) & ~panel["word"].isin(shared), "median_rank"]
            rng = np.random.default_rng([seed, index, pair_index])
            x, y = a.to_numpy(np.float64), b.to_numpy(np.float64)
            rows.append(
                {"unit": "word", "model": model, "family": family, "framing": framing}
                | _result_row(first, second, x, y, permutation_t_test(x, y, n_permutations, rng))
            )
    return _adjusted(pd.DataFrame(rows), "categories")


def _adjusted(tests: pd.DataFrame, compare: str) -> pd.DataFrame:
    """Bonferroni over the tests of each unit of observation; significance marks from the adjusted p."""
    if tests.empty:
        return tests
    tests["p_bonferroni"] = np.nan
    for _, group in tests.groupby("unit", sort=False):
        tests.loc[group.index, "p_bonferroni"] = bonferroni(group["p_value"].to_numpy())
    valid = tests["unit"] != "model x prompt"
    tests["validity"] = np.where(valid, "valid", INVALID_UNIT)
    tests["significance"] = [stars(p) if ok else "" for p, ok in zip(tests["p_bonferroni"], valid, strict=True)]
    tests.insert(0, "comparison", compare)
    return tests


def analyze_values(
    scores: pd.DataFrame,
    lexicon: Lexicon,
    families: Mapping[str, str],
    compare: Compare = "auto",
    n_permutations: int = 10_000,
    seed: int = 0,
    words: WordSet = "common",
    n_bootstrap: int = 2000,
) -> ValueAnalysis:
    """The whole analysis. `scores` has model, prompt_id, response, score and framing columns.

    `compare="auto"` compares families when there are several, else categories within each model.
    Within-model conclusions are drawn for every model either way.
    """
    if n_permutations < 1:
        raise UserError("--permutations must be at least 1")
    if words not in ("common", "all"):
        raise UserError(f"--words {words!r}: use common or all")
    ranked = rank_lexicon_words(scores, lexicon, families, words)
    grouped = with_family(ranked)  # family-level statistics: a model of no family is set beside, not compared
    n_families = grouped["family"].nunique()
    if compare == "families" and n_families < 2:
        only = ranked["family"].iloc[0]
        raise UserError(
            f"--compare families needs at least 2 families; every model is {only!r} "
            "(use --family MODEL=FAMILY or --compare categories)"
        )
    chosen = compare if compare != "auto" else ("families" if n_families >= 2 else "categories")
    if chosen == "categories" and ranked["category"].nunique() < 2:
        raise UserError(f"--compare categories needs at least 2 categories of lexicon {lexicon.name} matched")
    medians = model_medians(ranked)
    per_prompt = prompt_medians(ranked)
    mixed, notes = fit_mixed_models(grouped, with_family(per_prompt))
    tests = (
        family_tests(with_family(per_prompt), with_family(medians), n_permutations, seed)
        if chosen == "families"
        else category_tests(ranked, n_permutations, seed)
    )
    parts = [claims.within_model_conclusions(ranked, n_permutations, seed)]
    family_problem = None
    if chosen == "families":
        sizes = grouped.groupby("family")["model"].nunique()
        thin = sizes[sizes < 2]
        if len(thin):
            family_problem = (
                f"family {thin.index[0]!r} has {int(thin.iloc[0])} model; a family comparison across "
                "models needs at least 2 per family (the within-model conclusions are written)"
            )
            notes.append(family_problem)
        parts.append(claims.family_conclusions(ranked, n_permutations, seed, n_bootstrap))
        if mixed is not None:
            cells = with_family(per_prompt)[["model", "prompt_id"]].drop_duplicates()
            parts.append(claims.mixed_model_conclusions(mixed, grouped["model"].nunique(), len(cells)))
    return ValueAnalysis(
        ranked=ranked,
        model_medians=medians,
        summary=summarize(medians),
        prompt_medians=per_prompt,
        mixed_model=mixed,
        tests=tests,
        compare=chosen,
        lexicon=lexicon.name,
        notes=notes,
        conclusions=claims.finish(parts),
        family_problem=family_problem,
    )


__all__ = [
    "Compare",
    "ValueAnalysis",
    "analyze_values",
    "category_tests",
    "family_tests",
    "fit_mixed_model",
    "fit_mixed_models",
    "fit_random_slopes",
    "match_lexicon",
    "model_medians",
    "prompt_medians",
    "rank_lexicon_words",
    "summarize",
]
