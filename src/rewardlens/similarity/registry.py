"""The registry of similarity measures: each a small object that declares what it is.

A measure says whether larger values mean more similar, which transformations of the features
leave it unchanged, the options it takes (with defaults and allowed values) and the fewest
stimuli its estimator needs. `MEASURES` is the table of contents; `rewardlens similarity measures`
prints it. Adding a measure is one registered class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from rewardlens.errors import UserError
from rewardlens.similarity.pair import Pair

ROTATION = "rotation"  # X -> XQ, Q orthogonal
ISOTROPIC_SCALING = "isotropic-scaling"  # X -> cX, c > 0
OFFSET = "offset"  # X -> X + 1b' (the same shift for every stimulus)
INVERTIBLE_LINEAR = "invertible-linear"  # X -> XA, A invertible


@dataclass(frozen=True)
class Option:
    default: Any
    help: str
    choices: tuple[str, ...] | None = None


CENTER = Option(True, "centre each column (subtract its mean over stimuli) first")


def _coerce(name: str, spec: Option, value: Any) -> Any:
    """Values from the command line arrive as strings; cast them to the default's type."""
    if isinstance(spec.default, bool):
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise UserError(f"option {name} must be true or false, got {value!r}")
        return bool(value)
    if isinstance(spec.default, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"option {name} must be a number, got {value!r}") from None
        if not math.isfinite(number) or number <= 0:
            raise UserError(f"option {name} must be a positive number, got {value!r}")
        return number
    text = str(value)
    if spec.choices is not None and text not in spec.choices:
        raise UserError(f"option {name} must be one of {', '.join(spec.choices)}; got {text!r}")
    return text


class Measure:
    """Base class: subclasses set the class attributes and implement `value`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    reference: ClassVar[str] = ""
    larger_is_more_similar: ClassVar[bool] = True
    invariances: ClassVar[frozenset[str]] = frozenset()
    min_rows: ClassVar[int] = 3
    # Needs n x n matrices (RBF kernels, RDMs): computed in memory only, never streamed.
    needs_square: ClassVar[bool] = False
    # Estimators defined on centred data whatever `center` says (their value is offset invariant).
    always_centers: ClassVar[bool] = False
    options: ClassVar[Mapping[str, Option]] = {"center": CENTER}

    def resolve(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults filled in, types coerced, unknown options refused."""
        given = dict(options or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            allowed = ", ".join(self.options) or "none"
            raise UserError(f"unknown option {unknown[0]!r} for measure {self.name} (options: {allowed})")
        return {key: _coerce(key, spec, given.get(key, spec.default)) for key, spec in self.options.items()}

    def centers(self, options: Mapping[str, Any]) -> bool:
        return self.always_centers or bool(options.get("center", True))

    def invariances_for(self, options: Mapping[str, Any]) -> frozenset[str]:
        """The invariances that hold under these options (offset needs centring)."""
        if self.centers(options):
            return self.invariances
        return self.invariances - {OFFSET}

    def value(self, pair: Pair, options: Mapping[str, Any]) -> float:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "larger_is_more_similar": self.larger_is_more_similar,
            "invariances": sorted(self.invariances),
            "min_rows": self.min_rows,
            "options": {key: spec.default for key, spec in self.options.items()},
            "reference": self.reference,
        }


MEASURES: dict[str, Measure] = {}


def register(cls: type[Measure]) -> type[Measure]:
    MEASURES[cls.name] = cls()
    return cls


def get_measure(name: str) -> Measure:
    try:
        return MEASURES[name]
    except KeyError:
        raise UserError(f"unknown measure {name!r}; choose from: {', '.join(MEASURES)}") from None


def ratio(numerator: float, denominator_sq: float, what: str) -> float:
    """numerator / sqrt(denominator_sq), refusing an undefined normalization instead of returning NaN."""
    if not denominator_sq > 0:
        raise UserError(f"{what} is undefined here: its normalization is zero or negative")
    return numerator / math.sqrt(denominator_sq)
