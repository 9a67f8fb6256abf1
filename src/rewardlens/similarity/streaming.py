"""Exact feature-space statistics over blocks of rows, for arrays too large to hold in float64.

Two passes over the rows (memory-mapped .npy files read block by block): the first takes column
means and checks every value is finite; the second accumulates X'X, Y'Y and X'Y of the centred
blocks and the squared row norms. Centring each block by the exact means (rather than
subtracting n * mean mean' at the end) keeps the sums free of cancellation, so the result equals
the in-memory computation to rounding. Memory: two blocks plus three d x d matrices, never n x n.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from rewardlens.similarity.pair import Pair
from rewardlens.similarity.representation import StreamedSide, gram_of_columns, product, row_sq_norms_of
from rewardlens.similarity.validation import check_finite

DEFAULT_BLOCK_BYTES = 64 * 2**20


def block_rows_for(d: int, block_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Rows per block so that one float64 block is about `block_bytes`."""
    return max(1, block_bytes // (8 * max(d, 1)))


def _file_blocks(array: np.memmap, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """Blocks of a memory-mapped .npy read with plain file reads.

    Pages touched through a memory map stay in the process's resident set until the map goes away;
    reading the bytes instead keeps memory at one block whatever the file size.
    """
    n, d = int(array.shape[0]), int(array.shape[1])
    with open(str(array.filename), "rb") as handle:
        for start in range(0, n, rows):
            count = min(rows, n - start)
            handle.seek(int(array.offset) + start * d * array.itemsize)
            yield start, np.fromfile(handle, dtype=array.dtype, count=count * d).reshape(count, d)


def _blocks(array: Any, rows: int, device: torch.device) -> Iterator[tuple[int, torch.Tensor]]:
    if isinstance(array, np.memmap) and array.filename and array.flags.c_contiguous and array.ndim == 2:
        source: Iterator[tuple[int, Any]] = _file_blocks(array, rows)
    else:
        source = ((start, array[start : start + rows]) for start in range(0, int(array.shape[0]), rows))
    for start, block in source:
        if isinstance(block, torch.Tensor):
            tensor = block.detach()
        else:
            tensor = torch.from_numpy(np.array(block, dtype=np.float64, order="C"))
        yield start, tensor.to(device=device, dtype=torch.float64)


def _device_of(array: Any) -> torch.device:
    return array.device if isinstance(array, torch.Tensor) else torch.device("cpu")


def streamed_pair(
    x: Any,
    y: Any,
    *,
    center: bool = True,
    block_rows: int | None = None,
    names: tuple[str, str] = ("X", "Y"),
) -> Pair:
    """The `Pair` statistics of two row-aligned arrays, read in blocks of `block_rows` rows."""
    n, dx, dy = int(x.shape[0]), int(x.shape[1]), int(y.shape[1])
    device = _device_of(x)
    rows = block_rows or block_rows_for(dx + dy)

    mean_x = torch.zeros(dx, dtype=torch.float64, device=device)
    mean_y = torch.zeros(dy, dtype=torch.float64, device=device)
    for (_, bx), (_, by) in zip(_blocks(x, rows, device), _blocks(y, rows, device), strict=True):
        check_finite(bx, names[0])
        check_finite(by, names[1])
        if center:
            mean_x += bx.sum(dim=0)
            mean_y += by.sum(dim=0)
    mean_x /= n
    mean_y /= n

    xtx = torch.zeros(dx, dx, dtype=torch.float64, device=device)
    yty = torch.zeros(dy, dy, dtype=torch.float64, device=device)
    xty = torch.zeros(dx, dy, dtype=torch.float64, device=device)
    norms_x = torch.empty(n, dtype=torch.float64, device=device)
    norms_y = torch.empty(n, dtype=torch.float64, device=device)
    for (start, bx), (_, by) in zip(_blocks(x, rows, device), _blocks(y, rows, device), strict=True):
        # Out of place: a float64 tensor's block is a view of the caller's array, which must stay as it was.
        bx = bx - mean_x
        by = by - mean_y
        xtx += gram_of_columns(bx)
        yty += gram_of_columns(by)
        xty += product(bx, by)
        stop = start + bx.shape[0]
        norms_x[start:stop] = row_sq_norms_of(bx)
        norms_y[start:stop] = row_sq_norms_of(by)
    side_x = StreamedSide(names[0], n, xtx, norms_x)
    side_y = StreamedSide(names[1], n, yty, norms_y)
    return Pair(side_x, side_y, cross=xty)
