"""The activations of `similarity layers` are a job: a resumable run equal to the extraction in memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rewardlens.scorers as scorers
from rewardlens.config import ModelOptions
from rewardlens.errors import UserError
from rewardlens.jobs.activations import ActivationsJob, extract_activations
from rewardlens.runs import read_manifest, shard_files
from rewardlens.similarity.activations import layer_activations

STIMULI = ("love", "family", "freedom and honesty", "kindness", "power", "success in the world", "wealth")
PROMPT = "Name a value."
OPTIONS = ModelOptions(dtype="float32", device="cpu")


@pytest.mark.parametrize("template", [None, "none"], ids=["chat", "raw-text"])
def test_a_run_of_activations_equals_the_extraction_and_resumes(
    template: str | None, tiny_model_dir: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = str(tiny_model_dir("llama", "reward"))
    prompt = None if template == "none" else PROMPT
    job = ActivationsJob(spec, STIMULI, tmp_path / "acts", prompt, template, "last", batch_size=2, block=3)
    arrays = extract_activations(job, OPTIONS)

    scorer = scorers.load_scorer(spec, job.load_options(OPTIONS))
    direct = layer_activations(
        scorer.model,
        scorer.tokenizer,
        STIMULI,
        template=None if template == "none" else scorer.template,
        prompt=prompt,
        pool="last",
        batch_size=len(STIMULI),
    )
    assert len(arrays) == len(direct) > 1
    for got, expected in zip(arrays, direct, strict=True):
        assert got.dtype == np.float32 and got.shape == expected.shape == (len(STIMULI), expected.shape[1])
        # Other batchings of the same float32 forward: equal to rounding, not bit for bit.
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert [p.name for p in shard_files(job.out_dir)] == [
        "stimuli-0000000-0000003.parquet",
        "stimuli-0000003-0000006.parquet",
        "stimuli-0000006-0000007.parquet",
    ]
    assert read_manifest(job.out_dir)["complete"]

    # Finished: read back without loading the model.
    def no_loading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a finished run was recomputed")

    monkeypatch.setattr(scorers, "load_scorer", no_loading)
    again = extract_activations(job, OPTIONS)
    for got, before in zip(again, arrays, strict=True):
        np.testing.assert_array_equal(got, before)
    # A lost shard is scored again, and only it.
    monkeypatch.undo()
    shard_files(job.out_dir)[1].unlink()
    resumed = extract_activations(job, OPTIONS)
    for got, before in zip(resumed, arrays, strict=True):
        np.testing.assert_allclose(got, before, rtol=1e-6, atol=1e-6)


def test_other_stimuli_in_the_same_directory_are_refused(tiny_model_dir: Callable[..., Path], tmp_path: Path) -> None:
    spec = str(tiny_model_dir("llama", "reward"))
    extract_activations(ActivationsJob(spec, STIMULI[:3], tmp_path / "acts", PROMPT), OPTIONS)
    with pytest.raises(UserError, match="holds another run"):
        extract_activations(ActivationsJob(spec, STIMULI[:4], tmp_path / "acts", PROMPT), OPTIONS)
