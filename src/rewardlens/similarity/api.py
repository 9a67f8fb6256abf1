"""`compare(X, Y, measure)`: the one entry point for two arrays with the same stimuli (rows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rewardlens.errors import UserError
from rewardlens.similarity.pair import Pair
from rewardlens.similarity.registry import Measure, get_measure
from rewardlens.similarity.representation import Representation
from rewardlens.similarity.streaming import streamed_pair
from rewardlens.similarity.validation import (
    array_like,
    as_float64,
    check_dtype,
    check_min_rows,
    check_same_rows,
    check_shape,
)

# Beyond this many bytes of float64 copies, feature-space measures read the arrays in row blocks.
STREAM_BYTES = 512 * 2**20
# n x n matrices for RBF kernels and RDMs: 30,000 stimuli already take 7 GB each.
MAX_SQUARE_ROWS = 30_000


def check_inputs(x: Any, y: Any, measure: Measure, names: tuple[str, str] = ("X", "Y")) -> tuple[Any, Any]:
    """Shapes, dtypes, matching rows and the estimator's minimum number of stimuli; no data is read."""
    x, y = array_like(x, names[0]), array_like(y, names[1])
    for array, name in ((x, names[0]), (y, names[1])):
        check_dtype(array.dtype, name)
        check_shape(tuple(array.shape), name)
    check_same_rows(int(x.shape[0]), int(y.shape[0]), *names)
    n = int(x.shape[0])
    check_min_rows(n, measure.min_rows, measure.name)
    if measure.needs_square and n > MAX_SQUARE_ROWS:
        gigabytes = n * n * 8 / 1e9
        raise UserError(
            f"{measure.name} needs n x n matrices ({gigabytes:.0f} GB each at n = {n}); "
            f"use at most {MAX_SQUARE_ROWS} stimuli or a feature-space measure (rv2, linear-cka, ...)"
        )
    return x, y


def representations(
    x: Any, y: Any, measure: Measure, options: Mapping[str, Any], names: tuple[str, str] = ("X", "Y")
) -> tuple[Representation, Representation]:
    """Both arrays in memory as float64 representations on X's device, centred as the measure asks."""
    center = measure.centers(options)
    a = Representation(as_float64(x, names[0]), center=center, name=names[0])
    b = Representation(as_float64(y, names[1], device=a.device), center=center, name=names[1])
    return a, b


def should_stream(x: Any, y: Any, measure: Measure) -> bool:
    n, p, q = int(x.shape[0]), int(x.shape[1]), int(y.shape[1])
    return not measure.needs_square and n > max(p, q) and n * (p + q) * 8 > STREAM_BYTES


def compare(
    X: Any,
    Y: Any,
    measure: str = "rv2",
    *,
    block_rows: int | None = None,
    names: tuple[str, str] = ("X", "Y"),
    **options: Any,
) -> float:
    """Similarity (or distance, see `MEASURES[measure].larger_is_more_similar`) of two representations.

    `X` (n x p) and `Y` (n x q) hold one row per stimulus in the same order: numpy arrays (memory maps
    included) or torch tensors; CUDA tensors are compared on the GPU. Feature-space measures read
    arrays larger than `STREAM_BYTES` (or any array, when `block_rows` is given) in blocks of rows.
    Options are the measure's (`center`, `threshold`, `rdm`, `compare`; see `MEASURES`); `names`
    label the arrays in error messages.
    """
    chosen = get_measure(measure)
    resolved = chosen.resolve(options)
    x, y = check_inputs(X, Y, chosen, names)
    if block_rows is not None or should_stream(x, y, chosen):
        if chosen.needs_square:
            raise UserError(f"{chosen.name} needs n x n matrices and cannot be streamed")
        if block_rows is not None and block_rows < 1:
            raise UserError("block_rows must be at least 1")
        pair = streamed_pair(x, y, center=chosen.centers(resolved), block_rows=block_rows, names=names)
    else:
        pair = Pair(*representations(x, y, chosen, resolved, names))
    return chosen.value(pair, resolved)
