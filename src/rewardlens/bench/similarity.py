"""`rewardlens bench similarity`: rv2 and linear CKA against hoggorm and rsatoolbox on the same arrays.

hoggorm's `RV2coeff` builds XX' and YY' and multiplies n x n matrices (O(n^3)); rsatoolbox gets
linear CKA as the `cosine_cov` comparison of squared-Euclidean RDMs (its docs say it computes
it "using the linear CKA"). Both are run on the same centred float64 arrays; their times are the best
of `reference_repeats` (they take seconds each), rewardlens's the best of `repeats` after one untimed
call. Beyond `MAX_REFERENCE_ROWS` the references are skipped (they would need n x n matrices) and the
arrays are written to memory-mapped .npy files so that rewardlens streams them; the peak resident
memory of the process is reported.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rewardlens.similarity import compare
from rewardlens.similarity.streaming import block_rows_for

MAX_REFERENCE_ROWS = 20_000


def _timed(function: Callable[[], float], repeats: int = 1, warmup: bool = False) -> tuple[float, float]:
    """(value, best wall time in seconds over `repeats` runs), after one untimed run when `warmup`."""
    best = float("inf")
    value = function() if warmup else float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return value, best


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def synthetic_arrays(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """X and Y = X W + noise: related, so the measures are far from 0 and 1."""
    generator = np.random.default_rng(seed)
    x = generator.standard_normal((n, d))
    y = x @ (generator.standard_normal((d, d)) / np.sqrt(d)) + generator.standard_normal((n, d))
    return x, y


def _write_npy_files(n: int, d: int, seed: int, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The same kind of arrays as float32 .npy files written block by block with file writes (writing
    through a memory map would leave the pages in this process's resident set and blur the memory
    figure), then opened as memory maps, as `rewardlens similarity arrays` does."""
    generator = np.random.default_rng(seed)
    mixing = (generator.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)
    paths = folder / "x.npy", folder / "y.npy"
    offsets = []
    for path in paths:
        header = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
        offsets.append(int(header.offset))
        del header
    with open(paths[0], "r+b") as x_file, open(paths[1], "r+b") as y_file:
        for start in range(0, n, 8192):
            rows = min(8192, n - start)
            block = generator.standard_normal((rows, d), dtype=np.float32)
            x_file.seek(offsets[0] + start * d * 4)
            block.tofile(x_file)
            y_file.seek(offsets[1] + start * d * 4)
            (block @ mixing + generator.standard_normal((rows, d), dtype=np.float32)).tofile(y_file)
    return np.load(paths[0], mmap_mode="r"), np.load(paths[1], mmap_mode="r")


def _hoggorm_rv2(x: np.ndarray, y: np.ndarray) -> Callable[[], float] | str:
    try:
        import hoggorm
    except ImportError:
        return "not installed (pip install hoggorm)"
    return lambda: float(hoggorm.RV2coeff([x, y])[0, 1])


def _rsatoolbox_linear_cka(x: np.ndarray, y: np.ndarray) -> Callable[[], float] | str:
    try:
        from rsatoolbox.data import Dataset
        from rsatoolbox.rdm import calc_rdm
        from rsatoolbox.rdm import compare as rdm_compare
    except ImportError:
        return "not installed (pip install rsatoolbox)"

    def run() -> float:
        rdm_x = calc_rdm(Dataset(x), method="euclidean")
        rdm_y = calc_rdm(Dataset(y), method="euclidean")
        similarity: Any = rdm_compare  # untyped third-party signature
        return float(similarity(rdm_x, rdm_y, method="cosine_cov")[0, 0])

    return run


def run_similarity_bench(
    n: int = 3000, d: int = 1024, seed: int = 0, repeats: int = 5, reference_repeats: int = 2
) -> dict[str, Any]:
    """Times and agreement of rewardlens against the references, as one flat JSON-able dict.

    Every time is the best of several runs (`repeats` for rewardlens, `reference_repeats` for the
    references), so that a busy machine slows both sides alike rather than whichever ran at a bad moment.
    """
    result: dict[str, Any] = {"n": n, "d": d}
    if n > MAX_REFERENCE_ROWS:
        with tempfile.TemporaryDirectory() as folder:
            x_map, y_map = _write_npy_files(n, d, seed, Path(folder))
            rows = block_rows_for(2 * d)  # stream explicitly, whatever the size
            for name in ("rv2", "linear-cka"):
                key = name.replace("-", "_")
                value, seconds = _timed(partial(compare, x_map, y_map, name, block_rows=rows), 1)
                result[f"{key}_value"] = value
                result[f"{key}_s"] = round(seconds, 4)
            del x_map, y_map
        result["streamed"] = True
        skipped = f"skipped: needs n x n matrices ({n * n * 8 / 1e9:.0f} GB each)"
        result["hoggorm"] = result["rsatoolbox"] = skipped
        result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        return result

    x, y = synthetic_arrays(n, d, seed)
    x -= x.mean(axis=0)  # hoggorm does not centre; every library sees the same centred arrays
    y -= y.mean(axis=0)
    # One untimed call first (first-call costs: lazy imports, thread pools starting); the references'
    # best of `reference_repeats` likewise includes warm runs.
    rv2, rv2_s = _timed(lambda: compare(x, y, "rv2"), repeats, warmup=True)
    cka, cka_s = _timed(lambda: compare(x, y, "linear-cka"), repeats, warmup=True)
    result.update({"rv2_s": round(rv2_s, 4), "linear_cka_s": round(cka_s, 4)})
    diffs: list[float] = []
    for label, runner, ours, ours_s in (
        ("hoggorm", _hoggorm_rv2(x, y), rv2, rv2_s),
        ("rsatoolbox", _rsatoolbox_linear_cka(x, y), cka, cka_s),
    ):
        if isinstance(runner, str):
            result[label] = runner
            continue
        theirs, theirs_s = _timed(runner, reference_repeats)
        measure = "rv2" if label == "hoggorm" else "linear_cka"
        result[f"{label}_{measure}_s"] = round(theirs_s, 4)
        result[f"speedup_vs_{label}"] = round(theirs_s / ours_s, 1)
        result[f"{label}_abs_diff"] = abs(theirs - ours)
        diffs.append(abs(theirs - ours))
    result["max_abs_diff"] = max(diffs) if diffs else None
    result["rv2_value"], result["linear_cka_value"] = rv2, cka
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return result
