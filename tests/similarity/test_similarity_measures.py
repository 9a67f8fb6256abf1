"""Measures: published values, a naive Gram implementation, properties, streaming, torch, references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from similarity_naive import NAIVE

from rewardlens.errors import UserError
from rewardlens.similarity import MEASURES, Representation, compare, get_measure
from rewardlens.similarity.registry import INVERTIBLE_LINEAR, ISOTROPIC_SCALING, OFFSET, ROTATION

# n < d (Gram side) and n > d (feature side), with Y related to X so values are far from 0 and 1.
SHAPES = {"n<d": (12, 30, 25), "n>d": (60, 7, 5)}
RSA_VARIANTS = [
    {"rdm": rdm, "compare": how}
    for rdm in ("correlation", "euclidean", "cosine")
    for how in ("spearman", "pearson", "kendall-tau-a")
]
CASES = [(name, {}) for name in MEASURES if name != "rsa"] + [("rsa", options) for options in RSA_VARIANTS]


def related(n: int, p: int, q: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) + rng.normal(size=p)  # an offset, so centring matters
    y = x @ rng.normal(size=(p, q)) / np.sqrt(p) + 0.8 * rng.normal(size=(n, q))
    return x, y


def orthogonal(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


# -- published reference values ----------------------------------------------------------------------


def kornblith_demo_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The data of Kornblith et al.'s demo notebook (google-research representation_similarity/Demo.ipynb)."""
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    return x, y


@pytest.mark.parametrize(
    ("measure", "options", "published"),
    [
        ("linear-cka", {}, 0.55761),  # "Linear CKA from Examples/Features: 0.55761"
        ("rbf-cka", {"threshold": 0.5}, 0.65483),  # "RBF CKA: 0.65483"
        ("debiased-cka", {}, 0.51346),  # "Linear CKA ... (Debiased): 0.51346"
        (
            "cca",
            {"center": False},
            0.54312,
        ),  # "Mean Squared CCA Correlation: 0.54312" (the demo does not centre)
    ],
)
def test_published_values_of_the_cka_demo_notebook(measure: str, options: dict, published: float) -> None:
    x, y = kornblith_demo_arrays()
    assert round(compare(x, y, measure, **options), 5) == published


# -- against the naive Gram implementations --------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
@pytest.mark.parametrize(("measure", "options"), CASES, ids=[f"{m}-{'-'.join(o.values())}" for m, o in CASES])
def test_measure_equals_naive_gram_implementation(measure: str, options: dict, shape: str) -> None:
    x, y = related(*SHAPES[shape])
    expected = NAIVE[measure](x, y, **options)
    assert compare(x, y, measure, **options) == pytest.approx(expected, abs=1e-9)


def test_uncentred_rv_is_the_naive_uncentred_rv() -> None:
    x, y = related(20, 6, 4)
    assert compare(x, y, "rv", center=False) == pytest.approx(NAIVE["rv"](x, y, center=False), abs=1e-12)
    assert compare(x, y, "rv", center=False) != pytest.approx(compare(x, y, "rv"), abs=1e-3)


def test_cca_of_low_rank_representations_wider_than_n() -> None:
    """d > n: canonical correlations between rank-5 and rank-4 column spaces (not the trivial 1)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(15, 5)) @ rng.normal(size=(5, 40))
    y = (x[:, :8] @ rng.normal(size=(8, 4)) + rng.normal(size=(15, 4))) @ rng.normal(size=(4, 30))
    value = compare(x, y, "cca")
    assert value == pytest.approx(NAIVE["cca"](x, y), abs=1e-8)
    assert value < 0.99


def test_rv_and_linear_cka_coincide_on_centred_data() -> None:
    x, y = related(40, 9, 6)
    assert compare(x, y, "rv") == pytest.approx(compare(x, y, "linear-cka"), abs=1e-14)


# -- properties --------------------------------------------------------------------------------------


def _transformed(x: np.ndarray, invariance: str) -> np.ndarray:
    rng = np.random.default_rng(11)
    if invariance == ROTATION:
        return x @ orthogonal(x.shape[1], 5)
    if invariance == ISOTROPIC_SCALING:
        return 3.7 * x
    if invariance == OFFSET:
        return x + rng.normal(scale=5.0, size=x.shape[1])
    assert invariance == INVERTIBLE_LINEAR
    return x @ (rng.normal(size=(x.shape[1], x.shape[1])) + 3 * np.eye(x.shape[1]))


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
@pytest.mark.parametrize(("measure", "options"), CASES, ids=[f"{m}-{'-'.join(o.values())}" for m, o in CASES])
def test_declared_invariances_hold(measure: str, options: dict, shape: str) -> None:
    x, y = related(*SHAPES[shape], seed=1)
    reference = compare(x, y, measure, **options)
    declared = get_measure(measure).invariances_for(get_measure(measure).resolve(options))
    assert declared, "every measure declares at least one invariance"
    for invariance in declared:
        if invariance == INVERTIBLE_LINEAR and shape == "n<d":
            continue  # with d >= n CCA is trivially 1 either way; tested on the feature side
        assert compare(_transformed(x, invariance), y, measure, **options) == pytest.approx(reference, abs=1e-8), (
            invariance
        )


@pytest.mark.parametrize("measure", ["linear-cka", "rv2", "debiased-cka", "procrustes"])
def test_kernel_and_shape_measures_are_not_invariant_to_general_linear_maps(measure: str) -> None:
    """The negative control of Kornblith et al.'s demo: only CCA ignores invertible linear transforms."""
    x, y = related(60, 7, 5, seed=2)
    assert INVERTIBLE_LINEAR not in get_measure(measure).invariances
    assert compare(_transformed(x, INVERTIBLE_LINEAR), y, measure) != pytest.approx(compare(x, y, measure), abs=1e-3)


def test_correlation_rdm_is_not_rotation_invariant_and_does_not_claim_it() -> None:
    x, y = related(30, 6, 5, seed=4)
    assert ROTATION not in get_measure("rsa").invariances_for(get_measure("rsa").resolve({}))
    assert compare(_transformed(x, ROTATION), y, "rsa") != pytest.approx(compare(x, y, "rsa"), abs=1e-3)


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
@pytest.mark.parametrize(("measure", "options"), CASES, ids=[f"{m}-{'-'.join(o.values())}" for m, o in CASES])
def test_self_similarity_and_symmetry(measure: str, options: dict, shape: str) -> None:
    x, y = related(*SHAPES[shape], seed=5)
    perfect = 1.0 if get_measure(measure).larger_is_more_similar else 0.0
    assert compare(x, x, measure, **options) == pytest.approx(perfect, abs=1e-6)
    assert compare(x, y, measure, **options) == pytest.approx(compare(y, x, measure, **options), abs=1e-10)


# -- streaming, torch, dtypes ------------------------------------------------------------------------

STREAMABLE = [name for name, measure in MEASURES.items() if not measure.needs_square]


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
@pytest.mark.parametrize("measure", STREAMABLE)
@pytest.mark.parametrize("center", [True, False])
def test_streaming_equals_in_memory(measure: str, shape: str, center: bool) -> None:
    x, y = related(*SHAPES[shape], seed=6)
    in_memory = compare(x, y, measure, center=center)
    for rows in (1, 7, 1000):
        assert compare(x, y, measure, block_rows=rows, center=center) == pytest.approx(in_memory, abs=1e-10)


def test_memory_mapped_npy_is_streamed_exactly(tmp_path) -> None:
    x, y = related(500, 20, 12, seed=7)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    x_map = np.load(tmp_path / "x.npy", mmap_mode="r")
    y_map = np.load(tmp_path / "y.npy", mmap_mode="r")
    expected = NAIVE["rv2"](x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64))
    assert compare(x_map, y_map, "rv2", block_rows=64) == pytest.approx(expected, abs=1e-10)


def test_streaming_leaves_the_callers_tensors_as_they_were() -> None:
    x, y = related(60, 5, 4, seed=8)
    tx, ty = torch.from_numpy(x + 3.0), torch.from_numpy(y)  # float64: the blocks are views of these
    before = tx.clone(), ty.clone()
    streamed = compare(tx, ty, "rv2", block_rows=7)
    assert torch.equal(tx, before[0]) and torch.equal(ty, before[1])
    assert streamed == pytest.approx(compare(x, y, "rv2"), abs=1e-10)


def test_streaming_refuses_measures_that_need_n_by_n_matrices() -> None:
    x, y = related(30, 4, 4)
    with pytest.raises(UserError, match="cannot be streamed"):
        compare(x, y, "rsa", block_rows=10)


@pytest.mark.parametrize(("measure", "options"), CASES[:8], ids=[m for m, _ in CASES[:8]])
def test_torch_tensors_give_the_numpy_result(measure: str, options: dict) -> None:
    x, y = related(40, 9, 6, seed=8)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    from_numpy = compare(x32, y32, measure, **options)
    from_torch = compare(torch.from_numpy(x32), torch.from_numpy(y32), measure, **options)
    assert from_torch == pytest.approx(from_numpy, abs=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("measure", list(MEASURES))
def test_cuda_tensors_give_the_cpu_result(measure: str) -> None:
    x, y = related(50, 16, 12, seed=9)
    on_gpu = compare(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda(), measure)
    assert on_gpu == pytest.approx(compare(x, y, measure), abs=1e-9)


def test_integer_and_boolean_arrays_are_numbers() -> None:
    rng = np.random.default_rng(10)
    x = rng.integers(0, 5, size=(30, 6))
    y = rng.integers(0, 2, size=(30, 4)).astype(bool)
    assert compare(x, y, "rv2") == pytest.approx(NAIVE["rv2"](x.astype(float), y.astype(float)), abs=1e-12)


# -- independent libraries (dev extra) -------------------------------------------------------------


def test_rv2_matches_hoggorm() -> None:
    hoggorm = pytest.importorskip("hoggorm")
    x, y = related(80, 12, 9, seed=12)
    xc, yc = x - x.mean(0), y - y.mean(0)  # hoggorm does not centre
    assert compare(x, y, "rv2") == pytest.approx(hoggorm.RV2coeff([xc, yc])[0, 1], abs=1e-12)
    assert compare(x, y, "rv") == pytest.approx(hoggorm.RVcoeff([xc, yc])[0, 1], abs=1e-12)


@pytest.mark.parametrize(
    ("rdm", "ours", "theirs"),
    [
        ("correlation", "spearman", "spearman"),
        ("correlation", "kendall-tau-a", "tau-a"),
        ("correlation", "pearson", "corr"),
    ],
)
def test_rsa_default_matches_rsatoolbox(rdm: str, ours: str, theirs: str) -> None:
    pytest.importorskip("rsatoolbox")
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm
    from rsatoolbox.rdm import compare as rdm_compare

    x, y = related(25, 8, 6, seed=13)
    expected = rdm_compare(calc_rdm(Dataset(x), method=rdm), calc_rdm(Dataset(y), method=rdm), method=theirs)[0, 0]
    # The default is the standard RDM of the patterns as given (rsatoolbox does not centre columns)...
    assert compare(x, y, "rsa", rdm=rdm, compare=ours) == pytest.approx(expected, abs=1e-10)
    # ... and centring is an option that changes it (x and y carry offsets).
    assert compare(x, y, "rsa", rdm=rdm, compare=ours, center=True) != pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("kind", ["correlation"])  # rsatoolbox has no cosine RDM; pdist checks it (naive)
def test_default_rdm_equals_rsatoolbox_calc_rdm(kind: str) -> None:
    pytest.importorskip("rsatoolbox")
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    from rewardlens.similarity.rsa import rdm_vector

    x, _ = related(15, 6, 4, seed=21)
    theirs = calc_rdm(Dataset(x), method=kind).get_vectors()[0]
    rsa = get_measure("rsa")
    ours = rdm_vector(Representation(torch.from_numpy(x), center=rsa.centers(rsa.resolve({}))), kind)
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_linear_cka_matches_rsatoolbox_cosine_cov() -> None:
    pytest.importorskip("rsatoolbox")
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm
    from rsatoolbox.rdm import compare as rdm_compare

    x, y = related(25, 8, 6, seed=14)
    rdms = calc_rdm(Dataset(x), method="euclidean"), calc_rdm(Dataset(y), method="euclidean")
    assert compare(x, y, "linear-cka") == pytest.approx(rdm_compare(*rdms, method="cosine_cov")[0, 0], abs=1e-10)
