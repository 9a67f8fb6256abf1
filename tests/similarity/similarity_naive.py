"""Naive, textbook Gram-matrix implementations of every measure, written independently of the package.

Each builds the n x n matrices the papers define, in numpy float64, with no shortcuts: the package's
feature-space formulas, streaming and memoized statistics are checked against these.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist


def centering(n: int) -> np.ndarray:
    return np.eye(n) - np.ones((n, n)) / n


def centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0)


def _alignment(k: np.ndarray, l_: np.ndarray, keep: np.ndarray | None = None) -> float:
    keep = np.ones_like(k, dtype=bool) if keep is None else keep
    return float(np.sum(k * l_ * keep) / np.sqrt(np.sum(k * k * keep) * np.sum(l_ * l_ * keep)))


def rv(x: np.ndarray, y: np.ndarray, center: bool = True) -> float:
    if center:
        x, y = centred(x), centred(y)
    return float(
        np.trace(x @ x.T @ y @ y.T) / np.sqrt(np.trace((x @ x.T) @ (x @ x.T)) * np.trace((y @ y.T) @ (y @ y.T)))
    )


def linear_cka(x: np.ndarray, y: np.ndarray, ids: np.ndarray | None = None) -> float:
    """HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = H XX' H; `ids` masks pairs of copies of a stimulus."""
    h = centering(len(x))
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    keep = None
    if ids is not None:
        keep = (ids[:, None] != ids[None, :]) | np.eye(len(x), dtype=bool)
    return _alignment(k, l_, keep)


def rv2(x: np.ndarray, y: np.ndarray, ids: np.ndarray | None = None) -> float:
    """Smilde et al. (2009): RV of XX' and YY' with zeroed diagonals (and copy pairs, with `ids`)."""
    x, y = centred(x), centred(y)
    k, l_ = x @ x.T, y @ y.T
    ids = np.arange(len(x)) if ids is None else ids
    same = ids[:, None] == ids[None, :]
    k[same] = 0
    l_[same] = 0
    return float(np.trace(k @ l_) / np.sqrt(np.trace(k @ k) * np.trace(l_ @ l_)))


def unbiased_hsic(k: np.ndarray, l_: np.ndarray, ids: np.ndarray | None = None) -> float:
    """Song et al. (2012), eq. 5, with the diagonal (and copy pairs with `ids`) of K and L zeroed."""
    n = len(k)
    ids = np.arange(n) if ids is None else ids
    same = ids[:, None] == ids[None, :]
    k, l_ = k.copy(), l_.copy()
    k[same] = 0
    l_[same] = 0
    one = np.ones(n)
    value = (
        np.trace(k @ l_) + (one @ k @ one) * (one @ l_ @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * (one @ k @ l_ @ one)
    )
    return float(value / (n * (n - 3)))


def debiased_cka(x: np.ndarray, y: np.ndarray, center: bool = False, ids: np.ndarray | None = None) -> float:
    """Unbiased-HSIC CKA; the U-statistic ignores offsets, so by default X and Y are NOT centred here."""
    if center:
        x, y = centred(x), centred(y)
    k, l_ = x @ x.T, y @ y.T
    return unbiased_hsic(k, l_, ids) / np.sqrt(unbiased_hsic(k, k, ids) * unbiased_hsic(l_, l_, ids))


def rbf_gram(x: np.ndarray, threshold: float) -> np.ndarray:
    n = len(x)
    sq = np.array([[np.sum((x[i] - x[j]) ** 2) for j in range(n)] for i in range(n)])
    return np.exp(-sq / (2 * threshold**2 * np.median(sq)))


def rbf_cka(x: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> float:
    h = centering(len(x))
    return _alignment(h @ rbf_gram(x, threshold) @ h, h @ rbf_gram(y, threshold) @ h)


def procrustes(x: np.ndarray, y: np.ndarray) -> float:
    """arccos of the best alignment of the centred, zero-padded arrays over orthogonal maps."""
    x, y = centred(x), centred(y)
    width = max(x.shape[1], y.shape[1])
    x = np.pad(x, ((0, 0), (0, width - x.shape[1])))
    y = np.pad(y, ((0, 0), (0, width - y.shape[1])))
    rotation, _ = orthogonal_procrustes(x, y)
    cosine = np.sum((x @ rotation) * y) / (np.linalg.norm(x) * np.linalg.norm(y))
    return float(np.arccos(np.clip(cosine, -1, 1)))


def _basis(x: np.ndarray) -> np.ndarray:
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, s > s[0] * 1e-8]


def cca(x: np.ndarray, y: np.ndarray, center: bool = True) -> float:
    """Mean squared canonical correlation: cosines of the principal angles between the column spaces."""
    if center:
        x, y = centred(x), centred(y)
    qx, qy = _basis(x), _basis(y)
    correlations = np.linalg.svd(qx.T @ qy, compute_uv=False)
    return float(np.sum(correlations**2) / min(qx.shape[1], qy.shape[1]))


def tau_a(u: np.ndarray, v: np.ndarray) -> float:
    """Kendall's tau-a by brute force over all pairs: (concordant - discordant) / (m (m - 1) / 2)."""
    m = len(u)
    signs = np.sign(u[:, None] - u[None, :]) * np.sign(v[:, None] - v[None, :])
    return float(np.sum(np.triu(signs, 1)) / (m * (m - 1) / 2))


def rsa(
    x: np.ndarray,
    y: np.ndarray,
    rdm: str = "correlation",
    compare: str = "spearman",
    center: bool = False,
    ids: np.ndarray | None = None,
) -> float:
    if center:
        x, y = centred(x), centred(y)
    u, v = pdist(x, metric=rdm), pdist(y, metric=rdm)
    if ids is not None:
        rows, cols = np.triu_indices(len(x), 1)  # pdist's order
        keep = ids[rows] != ids[cols]
        u, v = u[keep], v[keep]
    if compare == "spearman":
        return float(stats.spearmanr(u, v).statistic)
    if compare == "pearson":
        return float(stats.pearsonr(u, v).statistic)
    return tau_a(u, v)


NAIVE = {
    "rv": rv,
    "rv2": rv2,
    "linear-cka": linear_cka,
    "debiased-cka": debiased_cka,
    "rbf-cka": rbf_cka,
    "procrustes": procrustes,
    "cca": cca,
    "rsa": rsa,
}
