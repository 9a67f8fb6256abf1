"""Fixtures of the scale-out tests: a local Ray cluster of 2 CPUs, a small lexicon and prompt set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Ray workers inherit this: two actors on two shared cores must not each start a pool of threads.
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def small_lexicon(tmp_path: Path) -> Path:
    path = tmp_path / "small.csv"
    path.write_text(
        "word,category\nlove,Communion\nfamily,Communion\npower,Agency\nsuccess,Agency\nkindness,Communion\n"
        "wealth,Agency\ntrust,Communion;Agency\nhonesty,Communion\nambition,Agency\n"
    )
    return path


@pytest.fixture
def four_prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.yaml"
    path.write_text(
        "best_ever_one: What, in one word, is the best thing ever?\n"
        "worst_ever_one: What, in one word, is the worst thing ever?\n"
        "good_world_please: What is a good thing in the world? Please answer in one word only.\n"
        "bad_world_please: What is a bad thing in the world? Please answer in one word only.\n"
    )
    return path
