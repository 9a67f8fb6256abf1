"""Agreement across models: tokens aligned by decoded text, rank correlations and rank-biased overlap.

Models with different tokenizers share no token ids, so tokens are aligned by their decoded text, with the
leading space kept as part of the text (" cat" and "cat" are different answers). A text that decodes from more
than one id in a model is ambiguous — which id's score stands for it? — so it is dropped from that model, and
hence from the comparison; the number dropped is reported. Only texts present in every model are compared, so
every pair of models and every prompt ranks the same set of answers.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from rewardlens.analysis.tokens._frame import require_columns, scored_tokens, token_text
from rewardlens.errors import UserError

AGREEMENT_COLUMNS = ["model_a", "model_b", "prompt_id", "n_shared", "kendall_tau", "spearman_rho", "rbo"]
ALIGNMENT_COLUMNS = [
    "model",
    "n_tokens",
    "n_texts",
    "n_duplicate_texts",
    "n_duplicate_ids",
    "n_unique_texts",
    "n_shared_texts",
]


def rank_biased_overlap(ranking_a: Sequence[Hashable], ranking_b: Sequence[Hashable], p: float = 0.9) -> float:
    """Extrapolated rank-biased overlap RBO_ext of two finite, tie-free rankings (Webber et al. 2010).

    This is the point estimate of Webber, Moffat & Zobel, "A similarity measure for indefinite rankings",
    ACM TOIS 28(4), eq. 32 (eq. 30 when the lists have equal length): it assumes the agreement seen at the end
    of the shorter list continues unchanged to infinite depth. Items are listed best first and may differ
    between the lists; each list must hold distinct items. Identical lists give 1, disjoint lists 0.

    With X_d = |A[:d] & B[:d]| (for d beyond the shorter length s, the overlap of the longer list's prefix
    with the whole shorter list) and l the longer length:

        RBO_ext = (1-p)/p * (sum_{d=1..l} X_d/d p^d + sum_{d=s+1..l} X_s (d-s)/(s d) p^d)
                  + ((X_l - X_s)/l + X_s/s) p^l

    Computed in O(l): an item counts in the overlap from depth max(position in A, position in B) on, so X_d
    is a cumulative count of those depths.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    a, b = list(ranking_a), list(ranking_b)
    if len(set(a)) != len(a) or len(set(b)) != len(b):
        raise ValueError("rankings must not repeat an item")
    if not a or not b:
        return float("nan")
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    s, n_long = len(short), len(long_)
    position_in_short = {item: depth for depth, item in enumerate(short, start=1)}
    # Depth from which each shared item is in both prefixes; items of only one list never count.
    joint_depths = [
        max(depth, position_in_short[item]) for depth, item in enumerate(long_, start=1) if item in position_in_short
    ]
    return _rbo_from_joint_depths(np.asarray(joint_depths, dtype=np.int64), s, n_long, p)


def _rbo_from_joint_depths(joint_depths: np.ndarray, s: int, n_long: int, p: float) -> float:
    """RBO_ext from the depth at which each shared item enters both prefixes (lengths s <= n_long)."""
    overlap = np.cumsum(np.bincount(joint_depths, minlength=n_long + 1)[1:])
    depths = np.arange(1, n_long + 1, dtype=np.float64)
    weights = p**depths
    x_s, x_l = float(overlap[s - 1]), float(overlap[n_long - 1])
    tail = depths[s:]
    extension = float(np.sum(x_s * (tail - s) / (s * tail) * weights[s:])) if n_long > s else 0.0
    head = (1 - p) / p * (float(np.sum(overlap / depths * weights)) + extension)
    return head + ((x_l - x_s) / n_long + x_s / s) * p**n_long


def _vocabularies(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, token_id, text), whatever the number of prompts, with `n_ids` sharing that text."""
    return texts_vocabulary(rows[["model", "token_id"]].assign(text=token_text(rows).to_numpy()))


def texts_vocabulary(texts: pd.DataFrame) -> pd.DataFrame:
    """`_vocabularies` of (model, token_id, text) rows whose text is already `token_text`'s."""
    vocabulary = texts.drop_duplicates().reset_index(drop=True)
    vocabulary["n_ids"] = vocabulary.groupby(["model", "text"], observed=True)["token_id"].transform("nunique")
    return vocabulary


def _shared_unique(vocabulary: pd.DataFrame) -> pd.DataFrame:
    """The (model, token_id, text) rows whose text is unique within its model and present in every model."""
    unique = vocabulary[vocabulary["n_ids"].to_numpy() == 1]
    n_models = vocabulary["model"].nunique()
    models_per_text = unique.groupby("text")["model"].transform("nunique")
    return unique[models_per_text.to_numpy() == n_models]


def alignment_report(frame: pd.DataFrame, include_special: bool = False) -> pd.DataFrame:
    """Per model: tokens, distinct texts, texts dropped as duplicated (and their ids), texts shared by all."""
    require_columns(frame, ["model", "token_id", "response", "score"], "agreement")
    return alignment_table(_vocabularies(scored_tokens(frame, include_special)))


def alignment_table(vocabulary: pd.DataFrame) -> pd.DataFrame:
    """`alignment_report` from the table of `_vocabularies` (which SQL can build without the rows)."""
    n_shared = _shared_unique(vocabulary)["text"].nunique()
    records: list[dict[str, object]] = []
    for model, tokens in vocabulary.groupby("model", sort=True, observed=True):
        duplicated = tokens[tokens["n_ids"].to_numpy() > 1]
        records.append(
            {
                "model": str(model),
                "n_tokens": int(tokens["token_id"].nunique()),
                "n_texts": int(tokens["text"].nunique()),
                "n_duplicate_texts": int(duplicated["text"].nunique()),
                "n_duplicate_ids": len(duplicated),
                "n_unique_texts": int((tokens["n_ids"].to_numpy() == 1).sum()),
                "n_shared_texts": n_shared,
            }
        )
    return pd.DataFrame.from_records(records, columns=ALIGNMENT_COLUMNS)


def align_tokens(frame: pd.DataFrame, include_special: bool = False) -> pd.DataFrame:
    """Scores of the texts every model has exactly once: columns model, prompt_id, token_id, text, score."""
    require_columns(frame, ["model", "prompt_id", "token_id", "response", "score"], "agreement")
    rows = scored_tokens(frame, include_special)
    kept = _shared_unique(_vocabularies(rows))[["model", "token_id", "text"]]
    aligned = rows[["model", "prompt_id", "token_id", "score"]].merge(kept, on=["model", "token_id"], how="inner")
    return aligned[["model", "prompt_id", "token_id", "text", "score"]]


def _ranking(texts: np.ndarray, scores: np.ndarray) -> list[str]:
    """Texts best first; equal scores are ordered by text because RBO needs a tie-free ranking."""
    return [str(t) for t in texts[np.lexsort((texts, -scores))]]


def agreement(frame: pd.DataFrame, p: float = 0.9, include_special: bool = False) -> pd.DataFrame:
    """Kendall's tau-b, Spearman's rho and RBO_ext (p) for every model pair x prompt both models scored."""
    aligned = align_tokens(frame, include_special)
    models = sorted(frame["model"].astype(str).unique())
    if len(models) < 2:
        raise UserError("agreement needs at least 2 models")
    if aligned.empty:
        raise UserError(f"models {', '.join(models)} share no token text; agreement is undefined")
    wide = aligned.pivot_table(index=["prompt_id", "text"], columns="model", values="score", aggfunc="first")
    records: list[dict[str, object]] = []
    for prompt_id, table in wide.groupby(level="prompt_id", sort=True):
        texts = table.index.get_level_values("text").to_numpy(dtype=object)
        for model_a, model_b in combinations(models, 2):
            if model_a not in table or model_b not in table:
                continue
            scores_a, scores_b = table[model_a].to_numpy(), table[model_b].to_numpy()
            both = np.isfinite(scores_a) & np.isfinite(scores_b)
            if both.sum() < 2:
                continue
            a, b, shared = scores_a[both], scores_b[both], texts[both]
            records.append(
                {
                    "model_a": model_a,
                    "model_b": model_b,
                    "prompt_id": str(prompt_id),
                    "n_shared": int(both.sum()),
                    "kendall_tau": float(stats.kendalltau(a, b, variant="b").statistic),
                    "spearman_rho": float(stats.spearmanr(a, b).statistic),
                    "rbo": rank_biased_overlap(_ranking(shared, a), _ranking(shared, b), p),
                }
            )
    return pd.DataFrame.from_records(records, columns=AGREEMENT_COLUMNS)


def mean_tau_matrix(pairs: pd.DataFrame) -> pd.DataFrame:
    """Models x models matrix of Kendall's tau averaged over prompts (diagonal 1)."""
    models = sorted(set(pairs["model_a"]) | set(pairs["model_b"]))
    index = {model: i for i, model in enumerate(models)}
    matrix = np.full((len(models), len(models)), np.nan)
    np.fill_diagonal(matrix, 1.0)
    for (model_a, model_b), tau in pairs.groupby(["model_a", "model_b"])["kendall_tau"].mean().items():
        matrix[index[model_a], index[model_b]] = matrix[index[model_b], index[model_a]] = tau
    return pd.DataFrame(matrix, index=models, columns=models)


def classical_mds(distances: np.ndarray, dimensions: int = 2) -> np.ndarray:
    """Classical (Torgerson) MDS: double-centre -D^2/2 and embed with the top eigenvectors.

    Negative eigenvalues (a non-Euclidean distance) are clipped to zero; dimensions beyond the number of
    models are zero.
    """
    n = len(distances)
    centring = np.eye(n) - np.full((n, n), 1.0 / n)
    gram = -0.5 * centring @ (np.asarray(distances, dtype=np.float64) ** 2) @ centring
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1][:dimensions]
    coordinates = eigenvectors[:, order] * np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    if coordinates.shape[1] < dimensions:
        coordinates = np.pad(coordinates, ((0, 0), (0, dimensions - coordinates.shape[1])))
    # Fix each axis's sign (eigenvectors are defined up to sign) so that output is reproducible.
    for axis in range(coordinates.shape[1]):
        column = coordinates[:, axis]
        if column[np.argmax(np.abs(column))] < 0:
            coordinates[:, axis] = -column
    return coordinates


def agreement_mds(pairs: pd.DataFrame) -> pd.DataFrame:
    """2-D classical MDS of the distance 1 - mean Kendall's tau between models: columns model, x, y."""
    matrix = mean_tau_matrix(pairs)
    if matrix.isna().to_numpy().any():
        raise UserError("MDS needs Kendall's tau for every model pair; some pairs share no prompt")
    return tau_mds(matrix)


def tau_mds(matrix: pd.DataFrame) -> pd.DataFrame:
    """`agreement_mds` from a complete `mean_tau_matrix`."""
    coordinates = classical_mds(1.0 - matrix.to_numpy(), dimensions=2)
    return pd.DataFrame({"model": matrix.index, "x": coordinates[:, 0], "y": coordinates[:, 1]})


def _rbo_of_permutations(order_a: np.ndarray, order_b: np.ndarray, p: float) -> float:
    """`rank_biased_overlap` of two orderings of the same items 0..n-1, in O(n) numpy instead of a dict.

    Equal lengths make `order_a` the "short" list; each item enters both prefixes at the larger of its
    two depths, so the overlap counts, and hence the float result, are those of `rank_biased_overlap`.
    """
    n = len(order_a)
    if n == 0:
        return float("nan")
    depth_in_a = np.empty(n, dtype=np.int64)
    depth_in_a[order_a] = np.arange(1, n + 1)
    joint = np.maximum(np.arange(1, n + 1), depth_in_a[order_b])
    return _rbo_from_joint_depths(joint, n, n, p)


def shared_tokens(vocabulary: pd.DataFrame) -> pd.DataFrame:
    """(model, token_id, text, code) of the texts every model has once; `code` numbers the texts in sorted
    order, the order in which `agreement` lists them (and breaks ties of RBO)."""
    kept = _shared_unique(vocabulary)[["model", "token_id", "text"]]
    texts = np.sort(kept["text"].unique().astype(object))
    codes = pd.Series(np.arange(len(texts), dtype=np.int64), index=pd.Index(texts))
    return kept.assign(code=kept["text"].map(codes).to_numpy(dtype=np.int64)).reset_index(drop=True)


def agreement_of_prompt(
    prompt_id: str, scores: np.ndarray, models: Sequence[str], p: float = 0.9
) -> list[dict[str, object]]:
    """`agreement`'s records of one prompt from a models x texts matrix of scores (NaN: not scored).

    Columns of `scores` are the texts in sorted order, as in `agreement`'s pivot table.
    """
    records: list[dict[str, object]] = []
    rankings: dict[int, np.ndarray] = {}  # per model, when every text is scored by both: computed once
    codes = np.arange(scores.shape[1], dtype=np.int64)
    finite = np.isfinite(scores)
    for i, j in combinations(range(len(models)), 2):
        both = finite[i] & finite[j]
        if both.sum() < 2:
            continue
        a, b = scores[i, both], scores[j, both]
        complete = bool(both.all())
        if complete:
            order_a = rankings.setdefault(i, np.lexsort((codes, -scores[i])))
            order_b = rankings.setdefault(j, np.lexsort((codes, -scores[j])))
        else:
            shared = np.arange(int(both.sum()), dtype=np.int64)  # position among the shared texts, same order
            order_a, order_b = np.lexsort((shared, -a)), np.lexsort((shared, -b))
        records.append(
            {
                "model_a": models[i],
                "model_b": models[j],
                "prompt_id": str(prompt_id),
                "n_shared": int(both.sum()),
                "kendall_tau": float(stats.kendalltau(a, b, variant="b").statistic),
                "spearman_rho": float(stats.spearmanr(a, b).statistic),
                "rbo": _rbo_of_permutations(order_a, order_b, p),
            }
        )
    return records
