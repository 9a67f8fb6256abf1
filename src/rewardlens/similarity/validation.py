"""Turn user arrays into float64 torch tensors, or refuse them with one clear line.

Every measure accumulates in float64 (the differences that matter, such as RV2's
||X'Y||^2 - sum_i ||x_i||^2 ||y_i||^2, cancel badly in float32). numpy arrays become CPU tensors
and torch tensors stay on their device, so one code path serves CPU and GPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rewardlens.errors import UserError


def check_dtype(dtype: Any, name: str) -> None:
    """Real numbers (and booleans, read as 0/1) only: strings, objects, dates and complex are refused."""
    if isinstance(dtype, torch.dtype):
        if dtype.is_complex:
            raise UserError(f"{name} is complex; similarity needs real numbers")
        return
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise UserError(f"{name} has dtype {dtype}; similarity needs a numeric array")


def check_shape(shape: tuple[int, ...], name: str) -> None:
    if len(shape) != 2:
        raise UserError(f"{name} must be 2-D (stimuli x features), got shape {tuple(shape)}")
    if shape[0] == 0 or shape[1] == 0:
        raise UserError(f"{name} is empty (shape {tuple(shape)})")


def check_same_rows(x_rows: int, y_rows: int, x_name: str = "X", y_name: str = "Y") -> None:
    if x_rows != y_rows:
        raise UserError(
            f"{x_name} has {x_rows} rows and {y_name} has {y_rows}; both need one row per stimulus, in the same order"
        )


def check_finite(values: torch.Tensor, name: str) -> None:
    # NaN and Inf propagate into a sum: one cheap reduction, and the elementwise check only when it
    # is not finite (then either a bad value or an overflow of huge but finite values).
    # On the CPU the sum runs in numpy, like the products that follow (see `representation`).
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(values.numpy().sum() if values.device.type == "cpu" else values.sum())
    if math.isfinite(total):
        return
    if not bool(torch.isfinite(values).all()):
        bad = int((~torch.isfinite(values)).sum())
        raise UserError(f"{name} contains {bad} NaN or Inf value(s)")


def array_like(array: Any, name: str) -> Any:
    """Keep tensors and ndarrays (memory maps included) as they are; turn lists into arrays."""
    if isinstance(array, torch.Tensor | np.ndarray):
        return array
    try:
        return np.asarray(array)
    except (TypeError, ValueError) as err:
        raise UserError(f"{name} is not a numeric array: {err}") from None


def as_float64(array: Any, name: str, device: torch.device | None = None) -> torch.Tensor:
    """A validated float64 tensor of shape (stimuli, features), on `device` or where it already lives."""
    array = array_like(array, name)
    check_dtype(array.dtype, name)
    check_shape(tuple(array.shape), name)
    if isinstance(array, torch.Tensor):
        tensor = array.detach()
    else:
        # float64, C order and writable (torch wants a writable buffer; memory maps are read-only): a copy
        # only where the input is not all three already. Nothing downstream writes into the input.
        converted = np.asarray(array, dtype=np.float64, order="C")
        if not converted.flags.writeable:
            converted = converted.copy()
        tensor = torch.from_numpy(converted)
    tensor = tensor.to(device=device or tensor.device, dtype=torch.float64)
    check_finite(tensor, name)
    return tensor


def check_min_rows(n: int, minimum: int, measure: str) -> None:
    if n < minimum:
        raise UserError(f"{measure} needs at least {minimum} stimuli (rows), got {n}")
