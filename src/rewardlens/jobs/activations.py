"""The hidden states of every layer for a list of stimuli, as a job: what `similarity layers` compares.

A run like any other: one shard per block of stimuli (named by the rows it holds), one row per stimulus with
its text and one column per layer (`layer_000` the embeddings, then each block) holding the pooled hidden
state as a float32 list. A killed extraction resumes at the next block; a finished one is read, not
recomputed, so the similarity of new measures or options needs no model. The scorer is the model loaded as
for scoring (`load_scorer`); the template the stimuli are rendered with is the job's (`none`: raw text).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rewardlens.config import ModelOptions
from rewardlens.engine import check_batch_size
from rewardlens.errors import UserError
from rewardlens.jobs.base import JobPlan
from rewardlens.jobs.executor import run_job
from rewardlens.progress import Progress
from rewardlens.runs.store import RunStore, count_rows, is_complete_run, load_run, refuse_other_run

IDENTITY_KEYS = ("kind_of_run", "model_spec", "stimuli_sha1", "prompt", "template", "pool", "dtype")
DEFAULT_BLOCK = 256  # stimuli per shard


def layer_column(layer: int) -> str:
    return f"layer_{layer:03d}"


@dataclass(frozen=True)
class ActivationShardTask:
    """A block of stimuli (rows `first` .. `first + len(stimuli)` of the list)."""

    first: int
    stimuli: tuple[str, ...]
    prompt: str | None
    raw_text: bool  # template `none`: the stimulus as it is, no conversation around it
    pool: str
    batch_size: int

    @property
    def name(self) -> str:
        return f"stimuli-{self.first:07d}-{self.first + len(self.stimuli):07d}"

    @property
    def rows(self) -> int:
        return len(self.stimuli)

    def score(self, scorer: Any, cache: dict[str, Any], progress: Progress = None) -> pd.DataFrame:
        from rewardlens.similarity.activations import layer_activations

        arrays = layer_activations(
            scorer.model,
            scorer.tokenizer,
            self.stimuli,
            template=None if self.raw_text else scorer.template,
            prompt=self.prompt,
            pool=self.pool,
            batch_size=self.batch_size,
            device=scorer.loaded.device,
            progress=progress,
        )
        rows = np.arange(self.first, self.first + len(self.stimuli))
        frame = pd.DataFrame({"stimulus": rows, "response": list(self.stimuli)})
        for layer, array in enumerate(arrays):
            frame[layer_column(layer)] = list(np.asarray(array, dtype=np.float32))
        return frame


@dataclass(frozen=True)
class ActivationsJob:
    """Every layer's pooled hidden state for every stimulus, into a run in `out_dir`."""

    model_spec: str
    stimuli: tuple[str, ...]
    out_dir: Path
    prompt: str | None = None
    template: str | None = None  # chat (default), plain, FILE.jinja, or none (raw text)
    pool: str = "last"
    batch_size: int = 16
    block: int = DEFAULT_BLOCK

    def __post_init__(self) -> None:
        from rewardlens.similarity.activations import POOLS

        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if not self.stimuli:
            raise UserError("no stimuli to encode")
        if self.pool not in POOLS:
            raise UserError(f"unknown pooling {self.pool!r}; choose from: {', '.join(POOLS)}")
        if self.template != "none" and self.prompt is None:
            raise UserError("--prompt is required with a chat template (or pass --template none for raw text)")
        check_batch_size(self.batch_size)
        if self.block < 1:
            raise UserError(f"a block of stimuli per shard must hold at least 1 (got {self.block})")

    def load_options(self, options: ModelOptions) -> ModelOptions:
        """The scorer's options: a raw-text job still loads a template (`plain`: every tokenizer has one)."""
        return options.with_changes(template="plain" if self.template == "none" else self.template)

    def identity(self) -> dict[str, Any]:
        digest = hashlib.sha1("\n".join(self.stimuli).encode("utf-8")).hexdigest()
        return {
            "kind_of_run": "activations",
            "model_spec": self.model_spec,
            "stimuli_sha1": digest,
            "prompt": self.prompt,
            "template": self.template or "chat",
            "pool": self.pool,
        }

    def refuse_other_run(self, overwrite: bool) -> None:
        # Every identity key is known before loading: a finished run of other stimuli is never read as these.
        identity = self.identity()
        refuse_other_run(self.out_dir, identity, identity.keys(), overwrite)

    def plan(self, scorer: Any, overwrite: bool = False) -> JobPlan:
        description = dict(scorer.describe())
        manifest = {
            **self.identity(),
            "model": scorer.name,
            "dtype": description.get("dtype"),
            "device": description.get("device"),
            "scorer": description,
            "batch_size": self.batch_size,
            "n_stimuli": len(self.stimuli),
            "rows_expected": len(self.stimuli),
        }
        store = RunStore(self.out_dir, manifest, identity_keys=IDENTITY_KEYS, overwrite=overwrite)
        tasks = [
            ActivationShardTask(
                first,
                self.stimuli[first : first + self.block],
                self.prompt,
                self.template == "none",
                self.pool,
                self.batch_size,
            )
            for first in range(0, len(self.stimuli), self.block)
        ]
        return JobPlan(scorer, store, list(tasks), len(self.stimuli), "hidden states", "stimuli")


def read_activations(directory: str | os.PathLike[str]) -> list[np.ndarray]:
    """The per-layer arrays (stimuli x hidden size, float32) of a finished activations run."""
    frame = load_run(directory).sort_values("stimulus")
    columns = sorted(c for c in frame.columns if c.startswith("layer_"))
    return [np.stack(frame[column].to_numpy()).astype(np.float32) for column in columns]


def extract_activations(
    job: ActivationsJob, options: ModelOptions | None = None, *, progress: Progress = None, **run_options: Any
) -> list[np.ndarray]:
    """Run the job (or find it finished: no model is loaded then) and read its arrays."""
    job.refuse_other_run(bool(run_options.get("overwrite")))
    # Finished means every stimulus on disk (a lost shard file is scored again, not read as missing rows).
    if not is_complete_run(job.out_dir, job.model_spec) or count_rows(job.out_dir) != len(job.stimuli):
        run_job(job, options=job.load_options(options or ModelOptions()), progress=progress, **run_options)
    return read_activations(job.out_dir)


__all__ = ["ActivationShardTask", "ActivationsJob", "extract_activations", "layer_column", "read_activations"]

