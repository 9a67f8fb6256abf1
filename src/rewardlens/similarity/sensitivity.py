"""How each measure behaves as the number of stimuli n and of features d change, on data whose truth is known.

Two relations between X and Y (both n x d, one row per stimulus):

- `independent`: X and Y are independent standard Gaussian arrays. The population similarity is 0, so
  whatever a measure reports is its bias at this n and d. RV and linear CKA (the same number on centred
  data) are pulled towards 1 when d >> n: tr(XX'YY') is dominated by the diagonals ||x_i||^2 ||y_i||^2,
  which are large whatever the relation. RV2 (Smilde et al. 2009) drops those diagonals and debiased CKA
  (Song et al.'s unbiased HSIC) removes the bias, so both stay near 0.
- `linear`: Y = X W / sqrt(d) + noise E with W and E standard Gaussian: a real, noisy linear relation.

Every array pair is drawn from its own seed (the study seed, the relation, n, d and the repeat), so a cell
of the grid can be regenerated alone (`generate_pair`) and every measure sees the same arrays. The values
are `compare(X, Y, measure)`: no second implementation of any measure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd

from rewardlens.errors import UserError
from rewardlens.progress import Progress
from rewardlens.similarity.api import compare
from rewardlens.similarity.registry import get_measure

RELATIONS = ("independent", "linear")
DEFAULT_MEASURES = ("rv", "rv2", "linear-cka", "debiased-cka")
VALUE_COLUMNS = ["measure", "relation", "n", "d", "repeat", "value"]
SUMMARY_COLUMNS = ["measure", "relation", "n", "d", "repeats", "mean", "sd"]


def parse_int_list(text: str, option: str) -> tuple[int, ...]:
    """'20,50,200' -> (20, 50, 200): positive integers, each once, or one clear line naming the option."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise UserError(f"{option} needs a comma-separated list of positive integers, got {text!r}")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        raise UserError(f"{option} needs a comma-separated list of positive integers, got {text!r}") from None
    if any(value < 1 for value in values):
        raise UserError(f"{option} needs positive integers, got {text!r}")
    if len(set(values)) != len(values):
        raise UserError(f"{option} lists a value twice: {text!r}")
    return values


def parse_name_list(text: str, option: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not names:
        raise UserError(f"{option} needs a comma-separated list, got {text!r}")
    return names


@dataclass(frozen=True)
class SensitivityConfig:
    """The grid: every measure on every (relation, n, d), `repeats` independent draws each."""

    measures: tuple[str, ...] = DEFAULT_MEASURES
    n: tuple[int, ...] = (20, 50, 200, 1000)
    d: tuple[int, ...] = (64, 512)
    repeats: int = 10
    seed: int = 0
    noise: float = 1.0  # the sd of E in the linear relation (signal entries have variance 1)
    relations: tuple[str, ...] = field(default=RELATIONS)

    def __post_init__(self) -> None:
        if not self.measures:
            raise UserError("give at least one measure")
        if not self.n or not self.d or min(self.n) < 1 or min(self.d) < 1:
            raise UserError("--n and --d need positive integers")
        for name in self.measures:
            measure = get_measure(name)  # an unknown name: one line listing the registered ones
            if min(self.n) < measure.min_rows:
                raise UserError(f"{name} needs at least {measure.min_rows} stimuli (rows); --n has {min(self.n)}")
        if self.repeats < 2:
            raise UserError(f"--repeats must be at least 2 (the sd needs two draws), got {self.repeats}")
        if not self.noise > 0:
            raise UserError(f"the noise sd must be positive, got {self.noise}")
        unknown = [relation for relation in self.relations if relation not in RELATIONS]
        if unknown:
            raise UserError(f"unknown relation {unknown[0]!r}; choose from: {', '.join(RELATIONS)}")

    @property
    def draws(self) -> int:
        return len(self.relations) * len(self.n) * len(self.d) * self.repeats


def generate_pair(
    relation: str, n: int, d: int, repeat: int, seed: int = 0, noise: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """The arrays of one draw; the same arguments always give the same arrays."""
    if relation not in RELATIONS:
        raise UserError(f"unknown relation {relation!r}; choose from: {', '.join(RELATIONS)}")
    generator = np.random.default_rng([seed, RELATIONS.index(relation), n, d, repeat])
    x = generator.standard_normal((n, d))
    if relation == "independent":
        return x, generator.standard_normal((n, d))
    weights = generator.standard_normal((d, d)) / np.sqrt(d)  # keeps each entry of XW at variance 1
    return x, x @ weights + noise * generator.standard_normal((n, d))


@dataclass(frozen=True)
class SensitivityResult:
    config: SensitivityConfig
    values: pd.DataFrame  # VALUE_COLUMNS: one row per measure and draw
    summary: pd.DataFrame  # SUMMARY_COLUMNS: mean and sd over the repeats

    def records(self) -> list[dict[str, object]]:
        """The summary as JSON-ready rows (plain Python numbers)."""
        return [
            {
                "measure": str(row.measure),
                "relation": str(row.relation),
                "n": int(row.n),
                "d": int(row.d),
                "repeats": int(row.repeats),
                "mean": float(row.mean),
                "sd": float(row.sd),
            }
            for row in self.summary.itertuples(index=False)
        ]


def run_sensitivity(config: SensitivityConfig, progress: Progress = None) -> SensitivityResult:
    """Every measure on every draw of the grid; `progress(1)` after each draw."""
    rows: list[tuple[str, str, int, int, int, float]] = []
    for relation, n, d in product(config.relations, config.n, config.d):
        for repeat in range(config.repeats):
            x, y = generate_pair(relation, n, d, repeat, config.seed, config.noise)
            rows.extend((name, relation, n, d, repeat, compare(x, y, name)) for name in config.measures)
            if progress:
                progress(1)
    values = pd.DataFrame(rows, columns=VALUE_COLUMNS)
    return SensitivityResult(config, values, summarize(values, config.measures))


def summarize(values: pd.DataFrame, measures: Sequence[str]) -> pd.DataFrame:
    """Mean and sd (ddof = 1) over repeats, rows in the order of the measures as given."""
    grouped = values.groupby(["measure", "relation", "n", "d"], sort=False)["value"]
    summary = grouped.agg(repeats="count", mean="mean", sd="std").reset_index()
    order = {name: index for index, name in enumerate(measures)}
    summary = summary.sort_values(
        ["measure", "relation", "d", "n"], key=lambda col: col.map(order) if col.name == "measure" else col
    )
    return summary[SUMMARY_COLUMNS].reset_index(drop=True)


def write_tables(result: SensitivityResult, out: Path) -> list[Path]:
    """`sensitivity.csv` (the summary) and `sensitivity_values.csv` (every draw) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "sensitivity.csv", out / "sensitivity_values.csv"]
    result.summary.to_csv(paths[0], index=False)
    result.values.to_csv(paths[1], index=False)
    return paths
