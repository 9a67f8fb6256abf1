"""One representation (stimuli x features) and the statistics every measure reads from it, computed once.

A `Representation` memoizes what the measures need — the Gram matrix, the feature covariance X'X,
squared row norms, bases of the column space — so that comparing one layer with forty others
reads its activations once and builds each statistic once. A `StreamedSide` carries the same
feature-space statistics accumulated over row blocks, for arrays too large to hold in float64.

Which side of the duality is used follows Kornblith et al. (2019): Gram matrices (n x n) when
there are no more stimuli than features, feature-space matrices (d x d) otherwise, so no n x n
matrix is ever built when n > d.

On the CPU every pass over a whole array (centring, row norms, products) goes through numpy: torch's
OpenMP threads keep spinning for a while after a parallel op, and on a machine with few cores they
slow the OpenBLAS threads of the next numpy product (rv2 at 3000 x 1024 on 2 cores: 0.187 s with
torch and numpy mixed, 0.149 s with numpy alone).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from rewardlens.errors import UserError

T = TypeVar("T")


def gram_of_columns(matrix: torch.Tensor) -> torch.Tensor:
    """M'M. On the CPU through numpy, whose `A.T @ A` uses BLAS syrk: half the flops of a general product."""
    if matrix.device.type == "cpu":
        array = matrix.numpy()
        return torch.from_numpy(array.T @ array)
    return matrix.T @ matrix


def frobenius_dot(left: torch.Tensor, right: torch.Tensor) -> float:
    """<A, B>_F as one BLAS dot product (no elementwise temporary)."""
    if left.device.type == "cpu":
        return float(np.dot(left.numpy().reshape(-1), right.numpy().reshape(-1)))
    return float(torch.dot(left.reshape(-1), right.reshape(-1)))


def product(left_t: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """L'R: float64 gemm, through numpy on the CPU (one BLAS thread pool, see the module note)."""
    if left_t.device.type == "cpu":
        return torch.from_numpy(left_t.numpy().T @ right.numpy())
    return left_t.T @ right


def column_centered(raw: torch.Tensor) -> torch.Tensor:
    """A new array with each column's mean subtracted."""
    if raw.device.type == "cpu":
        array = raw.numpy()
        return torch.from_numpy(array - array.mean(axis=0, keepdims=True))
    return raw - raw.mean(dim=0, keepdim=True)


def row_sq_norms_of(matrix: torch.Tensor) -> torch.Tensor:
    """||m_i||^2 for every row, without an elementwise temporary."""
    if matrix.device.type == "cpu":
        array = matrix.numpy()
        return torch.from_numpy(np.einsum("ij,ij->i", array, array))
    return torch.einsum("ij,ij->i", matrix, matrix)


def _eigh_kept(matrix: torch.Tensor, size_hint: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenpairs of a PSD matrix above a relative noise floor (rank-revealing, like numpy's matrix_rank).

    Eigenvalues of X'X are squared singular values computed with absolute error ~ eps * largest; a
    floor of largest * size * eps separates real directions from rounding (centring alone makes
    the Gram matrix of n stimuli rank n - 1).
    """
    values, vectors = torch.linalg.eigh(matrix)
    largest = values[-1].clamp(min=0.0)
    keep = values > largest * size_hint * torch.finfo(torch.float64).eps
    return values[keep], vectors[:, keep]


class FeatureSide:
    """Feature-space statistics shared by in-memory and streamed representations."""

    name: str
    n: int
    d: int

    def __init__(self) -> None:
        self._memo: dict[Any, Any] = {}

    def cached(self, key: Any, compute: Callable[[], T]) -> T:
        if key not in self._memo:
            self._memo[key] = compute()
        value: T = self._memo[key]
        return value

    # Provided by subclasses.
    @property
    def covariance(self) -> torch.Tensor:  # X'X, d x d
        raise NotImplementedError

    @property
    def row_sq_norms(self) -> torch.Tensor:  # ||x_i||^2, length n
        raise NotImplementedError

    @property
    def total_sq(self) -> float:
        """||X||_F^2."""
        return self.cached("total_sq", lambda: float(self.row_sq_norms.sum()))

    @property
    def self_hsic(self) -> float:
        """||X'X||_F^2 = ||XX'||_F^2 (the unnormalized HSIC of X with itself)."""
        return self.cached("self_hsic", lambda: frobenius_dot(self.covariance, self.covariance))

    @property
    def self_hsic_distinct(self) -> float:
        """`self_hsic` without the entries between copies of one stimulus (a bootstrap sample has copies)."""
        return self.self_hsic

    def whitener(self) -> torch.Tensor:
        """W (d x r) with W' X'X W = I on the column space of X: XW is an orthonormal basis of it."""

        def compute() -> torch.Tensor:
            values, vectors = _eigh_kept(self.covariance, max(self.n, self.d))
            return vectors / torch.sqrt(values)

        return self.cached("whitener", compute)


class Representation(FeatureSide):
    """An in-memory float64 array of one row per stimulus, centred by column unless `center=False`."""

    def __init__(
        self,
        raw: torch.Tensor,
        *,
        center: bool = True,
        name: str = "X",
        stimulus_ids: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.raw = raw
        self.center = center
        self.name = name
        self.n, self.d = int(raw.shape[0]), int(raw.shape[1])
        self.features = column_centered(raw) if center else raw
        # Which original stimulus each row is: bootstrap samples repeat rows (RSA drops their self-pairs).
        self.stimulus_ids = stimulus_ids if stimulus_ids is not None else torch.arange(self.n, device=raw.device)
        if not self.total_sq > 0:
            what = "every column is constant" if center else "it is all zeros"
            raise UserError(f"{name} carries no variance ({what}); similarity to it is undefined")

    @property
    def device(self) -> torch.device:
        return self.raw.device

    @property
    def prefers_gram(self) -> bool:
        return self.n <= self.d

    @property
    def row_sq_norms(self) -> torch.Tensor:
        return self.cached("row_sq_norms", lambda: row_sq_norms_of(self.features))

    @property
    def covariance(self) -> torch.Tensor:
        return self.cached("covariance", lambda: gram_of_columns(self.features))

    @property
    def gram(self) -> torch.Tensor:
        """XX' (n x n), the linear kernel matrix."""
        return self.cached("gram", lambda: gram_of_columns(self.features.T))

    @property
    def self_hsic(self) -> float:
        # Whichever of ||XX'||^2 and ||X'X||^2 is the smaller matrix.
        if self.prefers_gram:
            return self.cached("self_hsic", lambda: frobenius_dot(self.gram, self.gram))
        return super().self_hsic

    @property
    def has_copies(self) -> bool:
        return self.cached("has_copies", lambda: int(torch.unique(self.stimulus_ids).numel()) < self.n)

    def copy_pair_sum(self, u: torch.Tensor, v: torch.Tensor) -> float:
        """sum over pairs i != j that are copies of one stimulus of u_i v_j (0 without copies).

        Copies of a stimulus are identical rows, so their Gram entry equals the diagonal one: in a
        bootstrap sample it would weigh the diagonal about twice as much as in the data and inflate
        every kernel measure. Measures leave these pairs out, as RSA leaves out their zero distances.
        """
        if not self.has_copies:
            return 0.0
        _, group = torch.unique(self.stimulus_ids, return_inverse=True)
        size = int(group.max()) + 1
        sum_u = torch.zeros(size, dtype=u.dtype, device=u.device).index_add_(0, group, u)
        sum_v = torch.zeros(size, dtype=v.dtype, device=v.device).index_add_(0, group, v)
        return float(sum_u @ sum_v - u @ v)

    def copy_counts(self) -> torch.Tensor:
        """For each row, how many rows are copies of its stimulus (itself included); ones without copies."""

        def compute() -> torch.Tensor:
            _, group, counts = torch.unique(self.stimulus_ids, return_inverse=True, return_counts=True)
            return counts[group].to(torch.float64)

        return self.cached("copy_counts", compute)

    def copy_mask(self) -> torch.Tensor | None:
        """n x n, False where two different rows are copies of one stimulus; None without copies."""
        if not self.has_copies:
            return None
        ids = self.stimulus_ids
        same = ids[:, None] == ids[None, :]
        return ~same | torch.eye(self.n, dtype=torch.bool, device=self.device)

    @property
    def self_hsic_distinct(self) -> float:
        norms = self.row_sq_norms
        return self.cached("self_hsic_distinct", lambda: self.self_hsic - self.copy_pair_sum(norms, norms))

    def gram_eigen(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kept eigenvalues and eigenvectors of XX' (its column-space basis, n x r)."""
        return self.cached("gram_eigen", lambda: _eigh_kept(self.gram, max(self.n, self.d)))

    def basis(self) -> torch.Tensor:
        """An orthonormal basis (n x r) of the column space of X."""
        if self.prefers_gram:
            return self.gram_eigen()[1]
        return self.cached("basis", lambda: self.features @ self.whitener())

    def reduced(self) -> torch.Tensor:
        """Z (n x r, r <= min(n, d)) with ZZ' = XX': X up to a rotation of its features, at most n wide."""
        if not self.prefers_gram:
            return self.features

        def compute() -> torch.Tensor:
            values, vectors = self.gram_eigen()
            return vectors * torch.sqrt(values)

        return self.cached("reduced", compute)

    def take(self, index: torch.Tensor, resample: bool = False) -> Representation:
        """Rows `index` as a new representation: a permutation, or a bootstrap sample when `resample`.

        The Gram matrix is carried over instead of rebuilt (O(n^2) rather than O(n^2 d)): a permutation
        just permutes it, and a resample re-centres it as H K[idx, idx] H, which is exactly the Gram
        matrix of the re-centred rows.
        """
        index = index.to(self.device)
        taken = Representation(
            self.raw[index], center=self.center, name=self.name, stimulus_ids=self.stimulus_ids[index]
        )
        if "gram" in self._memo:
            gram = self._memo["gram"][index][:, index]
            if resample and self.center:
                gram = double_center(gram)
            taken._memo["gram"] = gram
        return taken


def double_center(matrix: torch.Tensor) -> torch.Tensor:
    """HKH with H = I - 11'/n, without forming H."""
    row_means = matrix.mean(dim=0, keepdim=True)
    col_means = matrix.mean(dim=1, keepdim=True)
    return matrix - row_means - col_means + matrix.mean()


class StreamedSide(FeatureSide):
    """Feature-space statistics of one array accumulated over blocks of rows (see `streaming`)."""

    def __init__(self, name: str, n: int, covariance: torch.Tensor, row_sq_norms: torch.Tensor) -> None:
        super().__init__()
        self.name = name
        self.n, self.d = n, int(covariance.shape[0])
        self._covariance = covariance
        self._row_sq_norms = row_sq_norms
        if not bool(torch.any(row_sq_norms != 0)):
            raise UserError(f"{name} carries no variance (every column is constant); similarity is undefined")

    @property
    def covariance(self) -> torch.Tensor:
        return self._covariance

    @property
    def row_sq_norms(self) -> torch.Tensor:
        return self._row_sq_norms
