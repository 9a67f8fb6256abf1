"""Reward models against human preferences: rank agreement of each RM with a human rating of the same responses.

Inputs are long tables: `scores` (prompt_id, response, model, score) and `human` (prompt_id, response, human).
Per prompt x model, Kendall's tau-b and Spearman's rho with the human rating over the responses both scored, and a
percentile bootstrap CI of tau over responses (unit: responses; it generalizes to new responses like these, for this
model under this prompt). The family comparison (Gemma- vs Llama-based RMs) compares per-model taus across models
(unit: models), by an exact permutation of family labels over the models.

The bootstrap is exact and vectorised: a resample is a vector of multiplicities over the responses, and tau-b of the
resample is computed from those weights (discordant pairs by a merge-sort count whose index plan is fixed by the
data, so every resample is a cumulative sum over the same gathered weights). `bootstrap_kendall_tau` equals scipy's
tau-b of the resampled rows (tests/human).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from rewardlens.analysis.conclusions import CONCLUSION_COLUMNS, compare_across_models
from rewardlens.analysis.family import infer_family
from rewardlens.analysis.multiplicity import holm
from rewardlens.analysis.tokens.agreement import agreement_of_prompt
from rewardlens.errors import UserError

HUMAN = "human"
HUMAN_COLUMNS = [
    "prompt_id",
    "model",
    "family",
    "n",
    "kendall_tau",
    "ci_low",
    "ci_high",
    "spearman",
    "p_value",
    "ci_method",
    "unit",
]
LEVEL = 0.95
_CHUNK = 32  # resamples per pass: the gathered int16 weights (n log2(n) / 2 rows) stay a few MB, in the cache


def _merge_plan(groups: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays that count, at every level of a bottom-up merge sort over the groups (`groups`: each position's
    group, nondecreasing; rows of one group are never paired, as rows tied on the sorted variable are not
    discordant), the pairs (i in a block's left half, j in its right half) with rank_i > rank_j: for each
    right-half j, the range [lo, hi) of the rank-sorted left half that holds the larger ranks (positions in one
    concatenation over all levels). log2(groups) levels: heavy ties make fewer."""
    n = len(ranks)
    m = int(ranks.max()) + 1 if n else 1
    n_groups = int(groups[-1]) + 1 if n else 0
    positions = np.arange(n)
    lefts, his, los, rights = [], [], [], []
    offset, half = 0, 1
    while half < n_groups:
        block = groups // (2 * half)
        in_left = groups % (2 * half) < half
        left, right = positions[in_left], positions[~in_left]
        keys = block[left] * m + ranks[left]
        order = np.argsort(keys, kind="stable")
        keys_sorted = keys[order]
        lefts.append(left[order])
        rights.append(right)
        los.append(offset + np.searchsorted(keys_sorted, block[right] * m + ranks[right], side="right"))
        his.append(offset + np.searchsorted(keys_sorted, block[right] * m + (m - 1), side="right"))
        offset += len(left)
        half *= 2
    empty = np.zeros(0, dtype=np.int64)
    return tuple(np.concatenate(parts) if parts else empty for parts in (lefts, his, los, rights))  # type: ignore[return-value]


def _tied_pairs(weights: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per resample, the pairs of sampled rows tied on a value (`starts`: where each run of equal values begins in
    the rows' order; weights: rows x resamples)."""
    groups = np.add.reduceat(weights, starts, axis=0).astype(np.int64)
    return (groups * (groups - 1)).sum(axis=0) // 2


def _run_starts(*sorted_values: np.ndarray) -> np.ndarray:
    """Where each run of equal values (equal in every array) begins."""
    change = np.zeros(len(sorted_values[0]), dtype=bool)
    change[0] = True
    for values in sorted_values:
        change[1:] |= values[1:] != values[:-1]
    return np.flatnonzero(change)


def _weight_types(largest: int) -> tuple[type, type]:
    """The narrowest exact integer types of the weights and their cumulative sums (both at most the resample's
    size, `largest`), and of the products of two of them: narrower arrays are passed over faster."""
    weights = np.int16 if largest < 2**15 else np.int32 if largest < 2**31 else np.int64
    products = np.int32 if largest < 46_341 else np.int64  # 46,341^2 > 2^31
    return weights, products


def bootstrap_kendall_tau(x: np.ndarray, y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each resample; `counts` (rows x resamples) holds how often each row was drawn.

    Copies of one row are tied on both variables, as they are in the resampled data. tau-b = (n0 - n1 - n2 + n3 - 2D)
    / sqrt((n0 - n1)(n0 - n2)) with n1, n2, n3 the pairs tied in x, in y, in both, and D the discordant pairs.
    Exact integer counts in the narrowest type that holds them; resamples in chunks whose gathered weights stay in
    the cache, each pass into preallocated buffers.
    """
    if len(np.unique(x)) > len(np.unique(y)):
        x, y = y, x  # tau-b is symmetric: merge over the variable with fewer distinct values (fewer levels)
    order = np.lexsort((y, x))
    xs, ys = x[order], y[order]
    counts = np.asarray(counts)
    total = counts.sum(axis=0, dtype=np.int64)
    wtype, ptype = _weight_types(int(total.max(initial=0)))
    weights: np.ndarray = counts[order].astype(wtype)
    ranks = np.unique(ys, return_inverse=True)[1]
    x_starts, joint_starts = _run_starts(xs), _run_starts(xs, ys)
    groups = np.cumsum(np.isin(np.arange(len(xs)), x_starts)) - 1
    left, hi, lo, right = _merge_plan(groups, ranks)
    by_y = np.argsort(ys, kind="stable")
    y_starts = _run_starts(ys[by_y])
    n_resamples = weights.shape[1]
    discordant, n1, n2, n3 = (np.empty(n_resamples, dtype=np.int64) for _ in range(4))
    width = min(_CHUNK, n_resamples)
    gathered = np.empty((len(left), width), dtype=wtype)
    cumulative = np.zeros((len(left) + 1, width), dtype=wtype)
    upper, lower, right_weights = (np.empty((len(right), width), dtype=wtype) for _ in range(3))
    products = np.empty((len(right), width), dtype=ptype)
    for start in range(0, n_resamples, width):
        part = np.ascontiguousarray(weights[:, start : start + width])
        k, done = part.shape[1], slice(start, start + width)
        if k < width:  # the last, narrower chunk
            gathered, cumulative = gathered[:, :k], cumulative[:, :k]
            upper, lower, right_weights, products = upper[:, :k], lower[:, :k], right_weights[:, :k], products[:, :k]
        np.take(part, left, axis=0, out=gathered)
        np.cumsum(gathered, axis=0, out=cumulative[1:])
        np.take(cumulative, hi, axis=0, out=upper)
        np.take(cumulative, lo, axis=0, out=lower)
        np.subtract(upper, lower, out=upper)  # per right-half row: the left-half weight of larger ranks
        np.take(part, right, axis=0, out=right_weights)
        np.multiply(upper, right_weights, out=products, dtype=ptype)
        discordant[done] = products.sum(axis=0, dtype=np.int64)
        n1[done] = _tied_pairs(part, x_starts)
        n2[done] = _tied_pairs(part[by_y], y_starts)
        n3[done] = _tied_pairs(part, joint_starts)
    n0 = total * (total - 1) // 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return (n0 - n1 - n2 + n3 - 2 * discordant) / np.sqrt((n0 - n1).astype(np.float64) * (n0 - n2))


def resample_counts(n: int, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicities (n x n_bootstrap) of n rows drawn with replacement, n at a time."""
    draws = rng.integers(0, n, size=(n_bootstrap, n))
    offsets = (np.arange(n_bootstrap, dtype=np.int64) * n)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n * n_bootstrap).reshape(n_bootstrap, n).T


def paired_rows(scores: pd.DataFrame, human: pd.DataFrame) -> pd.DataFrame:
    """Scores joined with the human rating on (prompt_id, response); rows where either is missing left out."""
    joined = scores.merge(human, on=["prompt_id", "response"], how="inner")
    joined = joined[np.isfinite(joined["score"].to_numpy(float)) & np.isfinite(joined["human"].to_numpy(float))]
    if joined.empty:
        raise UserError("the model scores and the human reference share no (prompt, response) rows")
    return joined.reset_index(drop=True)


def human_agreement(
    paired: pd.DataFrame, families: Mapping[str, str], n_bootstrap: int = 1000, seed: int = 0, progress=None
) -> pd.DataFrame:
    """Per prompt x model: n, tau-b with the human rating, its bootstrap CI over responses, Spearman's rho, p.

    Within a prompt every model with the same rows gets the same resamples (a paired bootstrap). The prompt x model
    cells are computed on a thread per core (numpy releases the GIL in the passes that take the time); the table
    does not depend on how many."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    cells = []
    for prompt_index, (prompt_id, rows) in enumerate(paired.groupby("prompt_id", sort=True)):
        cached: dict[tuple[str, ...], np.ndarray] = {}
        for model, group in rows.groupby("model", sort=True):
            group = group.sort_values("response")
            x, y = group["score"].to_numpy(float), group["human"].to_numpy(float)
            key = tuple(group["response"])
            if key not in cached:
                cached[key] = resample_counts(len(x), n_bootstrap, np.random.default_rng([seed, prompt_index]))
            cells.append((str(prompt_id), str(model), x, y, cached[key]))

    def one(cell: tuple[str, str, np.ndarray, np.ndarray, np.ndarray]) -> dict[str, object]:
        prompt_id, model, x, y, counts = cell
        replicates = bootstrap_kendall_tau(x, y, counts)
        low, high = np.nanpercentile(replicates, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
        tau = stats.kendalltau(x, y, variant="b")
        return {
            "prompt_id": prompt_id,
            "model": model,
            "family": families.get(model, ""),
            "n": len(x),
            "kendall_tau": float(tau.statistic),
            "ci_low": float(low),
            "ci_high": float(high),
            "spearman": float(stats.spearmanr(x, y).statistic),
            "p_value": float(tau.pvalue),
            "ci_method": f"percentile bootstrap over responses ({n_bootstrap} resamples, seed {seed})",
            "unit": "responses",
        }

    records = []
    with ThreadPoolExecutor(max_workers=max(1, min(len(cells), os.cpu_count() or 1))) as pool:
        for record in pool.map(one, cells):
            records.append(record)
            if progress:
                progress(1)
    return pd.DataFrame.from_records(records, columns=HUMAN_COLUMNS)


def score_matrix(paired: pd.DataFrame, prompt_id: str, with_human: bool) -> tuple[list[str], np.ndarray]:
    """Models (and `human`) x responses (sorted) of one prompt; NaN where a model did not score a response."""
    rows = paired[paired["prompt_id"] == prompt_id]
    wide = rows.pivot_table(index="response", columns="model", values="score", aggfunc="first").sort_index()
    if with_human:
        wide.insert(0, HUMAN, rows.drop_duplicates("response").set_index("response")["human"].reindex(wide.index))
    return [str(c) for c in wide.columns], wide.to_numpy(float).T


def model_agreement(paired: pd.DataFrame, with_human: bool = False) -> pd.DataFrame:
    """Per prompt and model pair: tau-b, Spearman's rho and RBO, as `analyze tokens` computes them."""
    records = []
    for prompt_id in sorted(paired["prompt_id"].unique()):
        models, matrix = score_matrix(paired, prompt_id, with_human)
        records += agreement_of_prompt(str(prompt_id), matrix, models)
    return pd.DataFrame.from_records(records)


def rank_differences(paired: pd.DataFrame) -> pd.DataFrame:
    """Per prompt x model x response: model rank - human rank (1 = best; average ranks for ties).

    Negative: the RM ranks the response better than humans do (over-values it)."""
    keys = ["prompt_id", "model"]
    ranked = paired[[*keys, "response", "score", "human"]].copy()
    grouped = ranked.groupby(keys, sort=True)
    ranked["model_rank"] = grouped["score"].rank(ascending=False, method="average")
    ranked["human_rank"] = grouped["human"].rank(ascending=False, method="average")
    ranked["rank_difference"] = ranked["model_rank"] - ranked["human_rank"]
    return ranked.sort_values([*keys, "rank_difference"]).reset_index(drop=True)


def most_misvalued(differences: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The k responses each RM most over-values (most negative difference) and under-values, per prompt."""
    parts = []
    for _, group in differences.groupby(["prompt_id", "model"], sort=True):
        ordered = group.sort_values("rank_difference", kind="stable")
        parts.append(ordered.head(k).assign(direction="over-valued"))
        parts.append(ordered.tail(k).iloc[::-1].assign(direction="under-valued"))
    return pd.concat(parts, ignore_index=True)


def prompt_stability(paired: pd.DataFrame) -> pd.DataFrame:
    """Per model, tau-b of its scores with itself between every two prompts (responses both prompts hold)."""
    records = []
    for model, rows in paired.groupby("model", sort=True):
        wide = rows.pivot_table(index="response", columns="prompt_id", values="score", aggfunc="first")
        for first, second in itertools.combinations(sorted(wide.columns), 2):
            both = wide[[first, second]].dropna()
            if len(both) < 2:
                continue
            tau = stats.kendalltau(both[first], both[second], variant="b").statistic
            records.append(
                {
                    "model": str(model),
                    "prompt_a": first,
                    "prompt_b": second,
                    "n": len(both),
                    "kendall_tau": float(tau),
                    "unit": "responses",
                }
            )
    return pd.DataFrame.from_records(records, columns=["model", "prompt_a", "prompt_b", "n", "kendall_tau", "unit"])


def families_of(models: Sequence[str], given: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each model's base family: given, else the published ten's, else read from its name."""
    from rewardlens.published import PUBLISHED_FAMILIES

    chosen = dict(given or {})
    return {m: chosen.get(m) or PUBLISHED_FAMILIES.get(m) or infer_family(m) for m in models}


def _bootstrap_models(first: np.ndarray, second: np.ndarray, rng: np.random.Generator, n: int = 10_000) -> tuple:
    """Percentile CI of mean(first) - mean(second), models resampled within each family."""
    a = first[rng.integers(0, len(first), (n, len(first)))].mean(axis=1)
    b = second[rng.integers(0, len(second), (n, len(second)))].mean(axis=1)
    low, high = np.percentile(a - b, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
    return float(low), float(high)


def family_conclusions(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per-model conclusions (unit responses) and family differences in tau with humans (unit models).

    The family rows compare one tau per model (per prompt, and the mean over prompts) across models: an exact
    permutation of family labels over the models (every relabelling), Welch's t beside it."""
    rows: list[dict[str, object]] = []
    for record in table.itertuples(index=False):
        rows.append(
            {
                "claim": "RM agrees with human preferences",
                "scope": record.model,
                "framing": record.prompt_id,
                "contrast": "kendall tau-b (RM score, human rating)",
                "estimate": record.kendall_tau,
                "ci_low": record.ci_low,
                "ci_high": record.ci_high,
                "ci_method": record.ci_method,
                "scale": "kendall tau-b",
                "unit": "responses",
                "n_units": record.n,
                "test": "Kendall tau-b test of independence (normal approximation, ties corrected)",
                "p_value": record.p_value,
                "generalizes_to": f"new responses like these, for {record.model} under {record.prompt_id}",
                "note": "",
            }
        )
    per_model = table.pivot_table(index="model", columns="prompt_id", values="kendall_tau")
    per_model["mean over prompts"] = per_model.mean(axis=1)
    families = table.drop_duplicates("model").set_index("model")["family"].reindex(per_model.index)
    sizes = families.value_counts()
    named = sorted(f for f in sizes.index if sizes[f] >= 2 and f not in ("", "none", "unknown"))
    for index, (fam_a, fam_b) in enumerate(itertools.combinations(named, 2)):
        for column in per_model.columns:
            a = per_model.loc[families == fam_a, column].dropna().to_numpy(float)
            b = per_model.loc[families == fam_b, column].dropna().to_numpy(float)
            rng = np.random.default_rng([seed, index])
            result = compare_across_models(a, b, 10_000, rng)
            low, high = _bootstrap_models(a, b, rng)
            kind = "exact over all" if result.exact else "random"
            rows.append(
                {
                    "claim": "family difference in agreement with human preferences",
                    "scope": "all",
                    "framing": column,
                    "contrast": f"{fam_a} - {fam_b}",
                    "estimate": result.estimate,
                    "ci_low": low,
                    "ci_high": high,
                    "ci_method": "percentile bootstrap over models within family",
                    "scale": "kendall tau-b",
                    "unit": "models",
                    "n_units": len(a) + len(b),
                    "test": f"permutation of family labels over models ({kind} {result.n_relabellings} relabellings); "
                    f"Welch p {result.p_welch:.3g}",
                    "p_value": result.p_permutation,
                    "generalizes_to": f"new reward models of the {fam_a} and {fam_b} families",
                    "note": f"{len(a)} vs {len(b)} models: the smallest attainable p is {result.smallest_p:.2g}",
                }
            )
    frame = pd.DataFrame(rows, columns=[c for c in CONCLUSION_COLUMNS if c != "p_adjusted"])
    frame.insert(CONCLUSION_COLUMNS.index("p_adjusted"), "p_adjusted", np.nan)
    for _, index in frame.groupby(["claim", "unit"]).groups.items():
        frame.loc[index, "p_adjusted"] = holm(frame.loc[index, "p_value"].to_numpy(float))
    return frame


__all__ = [
    "HUMAN",
    "analyze_human_files",
    "bootstrap_kendall_tau",
    "families_of",
    "family_conclusions",
    "human_agreement",
    "model_agreement",
    "most_misvalued",
    "paired_rows",
    "prompt_stability",
    "rank_differences",
    "resample_counts",
    "score_matrix",
]


def analyze_human_files(
    paths: Sequence[str],
    out: str,
    *,
    reference: str = "elo_score",
    prompt_text: str | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress=None,
    families: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """`rewardlens analyze human`: every table computed (and every input checked) before anything is written,
    then the files written into a temporary folder and moved into `out`. `families`: model -> family, where the
    published ten's or the name's family is not the right one."""
    import os
    import tempfile
    from pathlib import Path

    from rewardlens.imports import load_human_inputs
    from rewardlens.report.human_plots import save_rank_beeswarm, save_tau_heatmap

    data = load_human_inputs(paths, reference, prompt_text)
    paired = paired_rows(data.scores, data.human)
    chosen = families_of(sorted(paired["model"].unique()), families)
    table = human_agreement(paired, chosen, n_bootstrap, seed, progress)
    tables = {
        "human.csv": table,
        "agreement.csv": model_agreement(paired),
        "rank_differences.csv": rank_differences(paired),
        "stability.csv": prompt_stability(paired),
        "conclusions.csv": family_conclusions(table, seed),
    }
    tables["most_misvalued.csv"] = most_misvalued(tables["rank_differences.csv"])
    with_human = model_agreement(paired, with_human=True)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".human-", dir=target))
    for name, frame in tables.items():
        frame.to_csv(staging / name, index=False)
    figures = [save_tau_heatmap(with_human, staging), save_rank_beeswarm(tables["rank_differences.csv"], staging, seed)]
    for path in [*(staging / name for name in tables), *figures]:
        os.replace(path, target / path.name)
    staging.rmdir()
    return {
        "out": target,
        "files": sorted([*tables, *(f.name for f in figures)]),
        "human": table,
        "conclusions": tables["conclusions.csv"],
    }
