"""Where an audit or a study keeps each model's runs: directory names and the record of them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


def model_slug(spec: str) -> str:
    """A directory name for a model spec: its base name, safe characters only."""
    base = Path(spec.rstrip("/\\")).name or spec
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "model"


def lexicon_slug(lexicon: str) -> str:
    return model_slug(Path(lexicon).stem if os.sep in lexicon or "." in lexicon else lexicon)


@dataclass
class ModelRuns:
    """Where a model's runs are (the shape `rewardlens.report.audit_html` reads)."""

    spec: str
    name: str
    sweep_dir: Path
    word_dirs: dict[str, Path]
    loaded: bool = False  # False when every run of the model was already complete (nothing to score)
