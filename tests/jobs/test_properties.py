"""Property tests (hypothesis) for the pure cores of the jobs layer, the engines' request handling and the
implicit-reward measures.

Each property is checked by a helper that raises AssertionError; where the helper is the whole test, a
second test feeds it a deliberately broken input and asserts that it objects, so a property that can no
longer fail (a check that became vacuous) shows up as a failing test.

Checked by hand against mutants of src (each makes at least one test here fail): plan_shards with end_id one
short or without its last partial block; JobPlan.todo holding every shard (finished ones scored again);
group_by_prompt in sorted rather than first-seen order; ScoreRequest.split keeping one prompt token fewer;
left instead of right padding in both engines; mwlr weighted by the policy's probability only; beta squared.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewardlens.engine.batched import run_batched
from rewardlens.engine.cached import run_cached
from rewardlens.engine.readouts import BatchStates
from rewardlens.engine.requests import ScoreRequest, group_by_prompt
from rewardlens.errors import UserError
from rewardlens.jobs.base import JobPlan
from rewardlens.jobs.executor import execute
from rewardlens.jobs.pools import LocalPool
from rewardlens.jobs.sweep import Shard, SweepJob, plan_shards
from rewardlens.models.templates import ConversationTemplate
from rewardlens.prompts import Prompt, prompts_from_texts
from rewardlens.runs.store import RunStore, load_run, read_manifest, shard_files
from rewardlens.scorers.implicit import implicit_reward

PROPERTY = settings(deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow])
# Each example of the resume properties writes two runs of Parquet shards.
RESUME = settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])

# Shard names carry ids in 7 digits, so name order is id order below 10**7 (vocabularies are < 300k ids).
MAX_ID = 10**7 - 2

candidate_ids = st.lists(st.integers(0, MAX_ID), min_size=1, max_size=120, unique=True).map(
    lambda ids: np.asarray(sorted(ids), dtype=np.int64)
)


def _prompts(n: int) -> list[Prompt]:
    return [Prompt(f"p{index}", f"prompt number {index}?") for index in range(n)]


# ---------------------------------------------------------------------------------------------------------
# Shard plans cover every candidate once
# ---------------------------------------------------------------------------------------------------------


def check_partition(shards: Sequence[Shard], prompts: Sequence[Prompt], ids: np.ndarray, shard_size: int) -> None:
    """Every (prompt, candidate) is in exactly one shard; shards are named by what they hold."""
    names = [s.name for s in shards]
    assert len(set(names)) == len(names), "shard names are not unique"
    # load_run reads shards in name order: that must be the plan's (prompt, id) order.
    assert names == sorted(names), "shard-name order is not plan order"
    assert len(shards) == len(prompts) * math.ceil(len(ids) / shard_size)
    for index, prompt in enumerate(prompts):
        mine = [s for s in shards if s.prompt_index == index]
        assert all(s.prompt == prompt for s in mine)
        covered = [row for s in mine for row in range(len(ids))[s.rows]]
        assert covered == list(range(len(ids))), f"prompt {index}: rows are not a partition of the candidates"
        for shard in mine:
            block = ids[shard.rows]
            assert 1 <= len(block) <= shard_size
            assert shard.first_id == int(block[0]) and shard.end_id == int(block[-1]) + 1


@PROPERTY
@given(n_prompts=st.integers(1, 4), ids=candidate_ids, shard_size=st.integers(1, 64))
def test_shard_plans_cover_every_candidate_once(n_prompts: int, ids: np.ndarray, shard_size: int) -> None:
    prompts = _prompts(n_prompts)
    check_partition(plan_shards(prompts, ids, shard_size), prompts, ids, shard_size)


@PROPERTY
@given(n_prompts=st.integers(1, 3), ids=candidate_ids, shard_size=st.integers(1, 16), data=st.data())
def test_partition_check_rejects_broken_plans(
    n_prompts: int, ids: np.ndarray, shard_size: int, data: st.DataObject
) -> None:
    """The check above catches a dropped shard, a shard twice, a shifted block and a wrong id range."""
    prompts = _prompts(n_prompts)
    shards = plan_shards(prompts, ids, shard_size)
    victim = data.draw(st.integers(0, len(shards) - 1))
    s = shards[victim]
    broken = [
        shards[:victim] + shards[victim + 1 :],
        shards[: victim + 1] + [s] + shards[victim + 1 :],
        [*shards[:victim], replace(s, end_id=s.end_id + 1), *shards[victim + 1 :]],
    ]
    if s.rows.stop - s.rows.start > 1:  # a block one row shorter leaves a row out
        broken.append([*shards[:victim], replace(s, rows=slice(s.rows.start, s.rows.stop - 1)), *shards[victim + 1 :]])
    for plan in broken:
        with pytest.raises(AssertionError):
            check_partition(plan, prompts, ids, shard_size)


# ---------------------------------------------------------------------------------------------------------
# A run interrupted after any shard and resumed equals an uninterrupted one
# ---------------------------------------------------------------------------------------------------------


class Interrupted(RuntimeError):
    """What a flaky scorer raises: the session dies here."""


@dataclass
class FakeScorer:
    """Scores deterministically from (prompt, id); after `fail_after` shards it raises (a killed session).

    `scored` records every shard it scored, across sessions when one scorer is shared."""

    name: str = "fake-model"
    fail_after: int | None = None
    scored: list[str] = field(default_factory=list)
    calls: int = 0

    def describe(self) -> dict[str, Any]:
        return {"spec": self.name, "dtype": "float64"}

    def scores(self, shard_name: str, prompt: Prompt, ids: np.ndarray) -> np.ndarray:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise Interrupted(f"killed before {shard_name}")
        self.calls += 1
        self.scored.append(shard_name)
        offset = sum(map(ord, prompt.text)) % 97
        return np.sin(ids.astype(np.float64) * 0.37 + offset) * 10.0


@dataclass(frozen=True)
class FakeShardTask:
    shard: Shard
    ids: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.shard.name

    @property
    def rows(self) -> int:
        return len(self.ids)

    def score(self, scorer: FakeScorer, cache: dict[str, Any], progress: Any = None) -> pd.DataFrame:
        ids = np.asarray(self.ids, dtype=np.int64)
        scores = scorer.scores(self.name, self.shard.prompt, ids)
        n = len(ids)
        return pd.DataFrame(
            {
                "model": [scorer.name] * n,
                "prompt_id": [self.shard.prompt.id] * n,
                "prompt": [self.shard.prompt.text] * n,
                "response": [f"token-{i}" for i in ids],
                "score": scores,
            }
        )


@dataclass(frozen=True)
class FakeJob:
    """A job whose scoring needs no model: the run layout of a sweep (plan_shards, RunStore, JobPlan)."""

    prompts: tuple[Prompt, ...]
    ids: tuple[int, ...]
    out_dir: Path
    shard_size: int
    model_spec: str = "fake-model"

    def refuse_other_run(self, overwrite: bool) -> None:
        pass

    def plan(self, scorer: FakeScorer, overwrite: bool = False) -> JobPlan:
        manifest = {
            "kind_of_run": "fake",
            "model_spec": self.model_spec,
            "model": scorer.name,
            "prompts": [p.to_dict() for p in self.prompts],
            "ids": list(self.ids),
            "shard_size": self.shard_size,
            "rows_expected": len(self.ids) * len(self.prompts),
        }
        store = RunStore(self.out_dir, manifest, identity_keys=("kind_of_run", "model", "prompts", "ids"))
        layout = int(store.manifest["shard_size"])  # a resumed run keeps its layout, as a sweep does
        ids = np.asarray(self.ids, dtype=np.int64)
        tasks = [FakeShardTask(s, tuple(int(i) for i in ids[s.rows])) for s in plan_shards(self.prompts, ids, layout)]
        return JobPlan(scorer, store, list(tasks), int(manifest["rows_expected"]), "fake run")


def _run_to_completion(job: Any, scorer: Any) -> pd.DataFrame:
    summary = execute(job.plan(scorer), LocalPool("fake", scorer=scorer))
    assert summary.complete
    return load_run(job.out_dir)


def _assert_same_rows(resumed: pd.DataFrame, uninterrupted: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True)


@RESUME
@given(
    n_prompts=st.integers(1, 3),
    ids=st.lists(st.integers(0, 5000), min_size=1, max_size=40, unique=True).map(sorted),
    shard_size=st.integers(1, 12),
    resume_shard_size=st.integers(1, 12),
    crashes=st.lists(st.integers(0, 8), min_size=1, max_size=3),
)
def test_interrupted_and_resumed_run_equals_uninterrupted_run(
    n_prompts: int, ids: list[int], shard_size: int, resume_shard_size: int, crashes: list[int]
) -> None:
    """Killed after k shards (k drawn, several times in a row), then resumed: the same rows as one run, each
    shard scored exactly once over all sessions, and the progress a plan reports is what is on disk."""
    prompts = tuple(_prompts(n_prompts))
    with tempfile.TemporaryDirectory() as tmp:
        whole = FakeJob(prompts, tuple(ids), Path(tmp) / "whole", shard_size)
        uninterrupted = _run_to_completion(whole, FakeScorer())
        n_shards = n_prompts * math.ceil(len(ids) / shard_size)
        assert len(uninterrupted) == n_prompts * len(ids)

        job = FakeJob(prompts, tuple(ids), Path(tmp) / "resumed", shard_size)
        scored: list[str] = []
        for k in crashes:
            plan = job.plan(FakeScorer())
            on_disk = len(shard_files(job.out_dir))
            assert len(plan.todo) == n_shards - on_disk
            assert plan.rows_done == sum(len(pd.read_parquet(f)) for f in shard_files(job.out_dir))
            flaky = FakeScorer(fail_after=k, scored=scored)
            if k < len(plan.todo):
                with pytest.raises(Interrupted):
                    execute(plan, LocalPool("fake", scorer=flaky))
                assert len(shard_files(job.out_dir)) == on_disk + k
                assert not read_manifest(job.out_dir)["complete"]
            else:
                assert execute(plan, LocalPool("fake", scorer=flaky)).complete
            # Later sessions may be started with another shard size: the run keeps its first layout.
            job = replace(job, shard_size=resume_shard_size)
        finishing = FakeScorer(scored=scored)
        resumed = _run_to_completion(job, finishing)
        assert sorted(scored) == sorted(set(scored)), "a finished shard was scored again"
        assert len(scored) == n_shards
        _assert_same_rows(resumed, uninterrupted)
        assert job.plan(FakeScorer()).todo == []  # a complete run has nothing left to do


def test_resume_comparison_catches_a_lost_or_duplicated_shard(tmp_path: Path) -> None:
    """What the property above compares would object to a resumed run that lost or repeated a shard."""
    job = FakeJob(tuple(_prompts(2)), (1, 5, 9, 12, 30), tmp_path / "run", 2)
    frame = _run_to_completion(job, FakeScorer())
    first = shard_files(job.out_dir)[0]
    lost = load_run(job.out_dir).iloc[len(pd.read_parquet(first)) :].reset_index(drop=True)
    doubled = pd.concat([pd.read_parquet(first), frame], ignore_index=True)
    for broken in (lost, doubled):
        with pytest.raises(AssertionError):
            _assert_same_rows(broken, frame)
    first.unlink()  # a shard missing on disk: planned again, and the run is not complete until it is back
    plan = job.plan(FakeScorer())
    assert [t.name for t in plan.todo] == [first.name.removesuffix(".parquet")]


# The real SweepJob planning, with a trained tokenizer and a fake reward scorer (no model).


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from tiny_models import train_tokenizer

    return train_tokenizer("qwen2", vocab_size=200)


@dataclass
class FakeRewardScorer:
    """What SweepJob.plan and SweepShardTask.score read of a reward-model scorer; scores from (prompt, id)."""

    tokenizer: Any
    template: ConversationTemplate
    fail_after: int | None = None
    scored: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    name: str = "fake-rm"
    kind: str = "reward"
    include_end: bool = False

    def describe(self) -> dict[str, Any]:
        return {"spec": self.name, "dtype": "float32", "template": self.template.describe()}

    def score_token_ids(self, prompt: str, ids: list[int], **_: Any) -> np.ndarray:
        if self.fail_after is not None and len(self.scored) >= self.fail_after:
            raise Interrupted("killed")
        self.scored.append((prompt, tuple(ids)))
        return np.cos(np.asarray(ids, dtype=np.float64) * 0.11 + len(prompt))


@RESUME
@given(
    start=st.integers(5, 140),  # ids 0-2 are special tokens
    width=st.integers(1, 50),
    n_prompts=st.integers(1, 2),
    shard_size=st.integers(1, 16),
    crash_after=st.integers(0, 10),
)
def test_sweep_job_interrupted_and_resumed_equals_uninterrupted(
    start: int, width: int, n_prompts: int, shard_size: int, crash_after: int
) -> None:
    tokenizer = _tokenizer()
    template = ConversationTemplate(tokenizer)
    prompts = tuple(prompts_from_texts([f"What is the best thing number {i}?" for i in range(n_prompts)]))
    tokens = f"{start}:{start + width}"
    with tempfile.TemporaryDirectory() as tmp:
        whole = SweepJob("fake-rm", prompts, Path(tmp) / "whole", tokens=tokens, shard_size=shard_size)
        uninterrupted = _run_to_completion(whole, FakeRewardScorer(tokenizer, template))
        # Every selected (non-special) candidate once per prompt.
        for prompt in prompts:
            got = uninterrupted.loc[uninterrupted["prompt_id"] == prompt.id, "token_id"].tolist()
            assert got == sorted(set(got)) and set(got) <= set(range(start, start + width))
        assert len(uninterrupted) == read_manifest(whole.out_dir)["rows_expected"]

        job = SweepJob("fake-rm", prompts, Path(tmp) / "resumed", tokens=tokens, shard_size=shard_size)
        plan = job.plan(FakeRewardScorer(tokenizer, template))
        flaky = FakeRewardScorer(tokenizer, template, fail_after=crash_after)
        if crash_after < len(plan.todo):
            with pytest.raises(Interrupted):
                execute(plan, LocalPool("fake-rm", scorer=flaky))
        else:
            execute(plan, LocalPool("fake-rm", scorer=flaky))
        finishing = FakeRewardScorer(tokenizer, template)
        resumed = _run_to_completion(job, finishing)
        assert len(flaky.scored) + len(finishing.scored) == len(plan.shards)  # nothing scored twice
        _assert_same_rows(resumed, uninterrupted)


# ---------------------------------------------------------------------------------------------------------
# ScoreRequest splits re-join
# ---------------------------------------------------------------------------------------------------------

token = st.integers(0, 50)


@st.composite
def sequence_and_prompt(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """A full sequence and prompt ids that share some prefix with it (often all of the prompt)."""
    ids = draw(st.lists(token, min_size=2, max_size=30))
    shared = draw(st.integers(0, len(ids)))
    tail = draw(st.lists(token, max_size=5))
    return ids, ids[:shared] + tail


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@PROPERTY
@given(sequence_and_prompt())
def test_split_rejoins_to_the_sequence_at_the_longest_common_prefix(case: tuple[list[int], list[int]]) -> None:
    ids, prompt_ids = case
    request = ScoreRequest.split(ids, prompt_ids)
    assert request.ids == ids
    assert request.continuation_ids  # never empty
    expected = min(max(_common_prefix(ids, prompt_ids), 1), len(ids) - 1)
    assert len(request.prompt_ids) == expected
    # Where the prompt ids are an exact prefix of a longer sequence, the request's prompt is exactly them
    # (the cached engine then reuses the prompt's KV).
    if prompt_ids and len(prompt_ids) < len(ids) and ids[: len(prompt_ids)] == prompt_ids:
        assert request.prompt_ids == tuple(prompt_ids)


@st.composite
def request_lists(draw: st.DrawFn) -> list[ScoreRequest]:
    """Requests whose prompts come from a small pool, so that several requests share a prompt."""
    pool = draw(st.lists(st.lists(token, min_size=1, max_size=6).map(tuple), min_size=1, max_size=4, unique=True))
    n = draw(st.integers(1, 25))
    return [
        ScoreRequest(draw(st.sampled_from(pool)), tuple(draw(st.lists(token, min_size=1, max_size=7))))
        for _ in range(n)
    ]


@PROPERTY
@given(request_lists())
def test_group_by_prompt_partitions_the_requests_in_first_seen_order(requests: list[ScoreRequest]) -> None:
    groups = group_by_prompt(requests)
    indices = [i for group in groups.values() for i in group]
    assert sorted(indices) == list(range(len(requests)))
    assert list(groups) == list(dict.fromkeys(r.prompt_ids for r in requests))
    for prompt_ids, group in groups.items():
        assert group == sorted(group) and all(requests[i].prompt_ids == prompt_ids for i in group)


class FakeCache:
    def batch_repeat_interleave(self, batch: int) -> None:
        pass


class EchoBackbone(torch.nn.Module):
    """Hidden state of each position = (its token id, its position): a readout can rebuild what it was fed."""

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        **_: Any,
    ) -> SimpleNamespace:
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1])[None].expand_as(input_ids)
        hidden = torch.stack([input_ids, position_ids], -1).to(torch.float64)
        return SimpleNamespace(last_hidden_state=hidden, cache=FakeCache())


def echo_readout(states: BatchStates) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Each request's (ids, positions) as the engine laid them out in the hidden states."""
    out = []
    for row, request in enumerate(states.requests):
        n_prompt, n_cont = len(request.prompt_ids), int(states.lengths[row])
        prompt = states.prompt_hidden[row, :n_prompt].long()
        cont = states.continuation_hidden[row, :n_cont].long()
        both = torch.cat([prompt, cont])
        out.append((tuple(both[:, 0].tolist()), tuple(both[:, 1].tolist())))
    return out


@PROPERTY
@given(requests=request_lists(), batch_size=st.integers(1, 8), engine=st.sampled_from(["cached", "batched"]))
def test_engines_rejoin_every_result_to_its_request(requests: list[ScoreRequest], batch_size: int, engine: str) -> None:
    """Grouped by prompt, sorted by length, cut into batches: each result comes back at its request's index,
    read at its own ids and positions (the readout sees the unpadded sequence it was asked for)."""
    run = run_cached if engine == "cached" else run_batched
    ticks: list[int] = []
    results = run(EchoBackbone(), echo_readout, requests, torch.device("cpu"), batch_size, ticks.append)
    assert results == [(tuple(r.ids), tuple(range(len(r.ids)))) for r in requests]
    assert sum(ticks) == len(requests) and max(ticks) <= batch_size


# ---------------------------------------------------------------------------------------------------------
# Implicit rewards: sign flips when policy and reference swap, linear in beta
# ---------------------------------------------------------------------------------------------------------

logps = st.floats(-50.0, 0.0, allow_nan=False, allow_infinity=False)
betas = st.floats(1e-3, 100.0, allow_nan=False, allow_infinity=False)


@st.composite
def logp_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 30))
    policy = draw(st.lists(logps, min_size=n, max_size=n))
    # Some entries equal (a zero reward), the others drawn independently.
    reference = [p if draw(st.booleans()) else draw(logps) for p in policy]
    return np.asarray(policy), np.asarray(reference)


def _close(a: np.ndarray, b: np.ndarray, beta: float) -> None:
    # float64: a few ulps of the largest term (beta * 50) is far below 1e-12 * beta * 50.
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * beta * 50)


@PROPERTY
@given(pair=logp_pairs(), beta=betas, measure=st.sampled_from(["log-ratio", "mwlr"]))
def test_implicit_reward_flips_sign_when_policy_and_reference_swap(
    pair: tuple[np.ndarray, np.ndarray], beta: float, measure: str
) -> None:
    policy, reference = pair
    forward = implicit_reward(policy, reference, measure, beta)
    _close(forward, -implicit_reward(reference, policy, measure, beta), beta)
    assert np.all(forward[policy == reference] == 0)


@PROPERTY
@given(pair=logp_pairs(), beta=betas, measure=st.sampled_from(["log-ratio", "mwlr"]))
def test_implicit_reward_scales_with_beta(pair: tuple[np.ndarray, np.ndarray], beta: float, measure: str) -> None:
    policy, reference = pair
    _close(implicit_reward(policy, reference, measure, beta), beta * implicit_reward(policy, reference, measure), beta)


@PROPERTY
@given(pair=logp_pairs(), beta=betas)
def test_mwlr_is_the_log_ratio_weighted_by_the_mean_probability(
    pair: tuple[np.ndarray, np.ndarray], beta: float
) -> None:
    policy, reference = pair
    log_ratio = implicit_reward(policy, reference, "log-ratio", beta)
    np.testing.assert_allclose(log_ratio, beta * (policy - reference), rtol=1e-12, atol=1e-12 * beta * 50)
    weight = 0.5 * (np.exp(policy) + np.exp(reference))
    _close(implicit_reward(policy, reference, "mwlr", beta), weight * log_ratio, beta)
    # The weight is a probability: mwlr never has the other sign than the log-ratio, nor a larger size.
    mwlr = implicit_reward(policy, reference, "mwlr", beta)
    assert np.all(mwlr * log_ratio >= 0) and np.all(np.abs(mwlr) <= np.abs(log_ratio))


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan"), float("inf")])
def test_implicit_reward_refuses_a_beta_that_is_not_positive_and_finite(beta: float) -> None:
    with pytest.raises(UserError):
        implicit_reward(np.zeros(2), np.zeros(2), "log-ratio", beta)
