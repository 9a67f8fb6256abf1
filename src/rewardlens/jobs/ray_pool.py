"""Scoring on a Ray cluster: one actor per GPU (or per CPU worker), a shard queue, re-queue on worker death.

Each actor loads its model once and scores the shards it is handed. The driver (this process) keeps the
queue and is the only writer of the run store: a shard file is written once, when its rows come back, so
the run directory needs to exist only where the driver runs. An actor that dies (killed, out of memory,
node lost) fails its in-flight shard; the shard goes back to the front of the queue and a replacement
actor is started, so nothing is lost and — since only results that arrived are written — nothing is
written twice.

Ray is imported lazily: the core of rewardlens does not need it.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import pandas as pd

from rewardlens.config import ModelOptions
from rewardlens.errors import UserError
from rewardlens.jobs.base import ClosingPool, QueueStats, ShardTask
from rewardlens.jobs.facts import ScorerFacts, scorer_facts
from rewardlens.progress import Progress

if TYPE_CHECKING:
    from rewardlens.scorers import ModelScorer

LOCAL = "local"  # `--ray` without an address: join a Ray already running on this machine, or start one
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run: a Ray address (None: local) and the number of scoring actors.

    `workers=None`: one actor per GPU of the cluster (`gpus_per_worker` each), or on a cluster without
    GPUs one per CPU. `gpus_per_worker > 1` is for a model too big for one GPU: load it with
    `device_map="auto"`, which spreads its layers over the GPUs Ray gives the actor (of one node).
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 1.0
    max_replacements: int | None = None  # actors started to replace dead ones (default: 2 x workers)

    def __post_init__(self) -> None:
        check_workers(self.workers)
        if self.gpus_per_worker <= 0:
            raise UserError("--gpus-per-worker must be positive")


def check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs the ray package: pip install 'rewardlens[ray]'") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a `host:port` or `ray://host:port` address; None for `auto`."""
    text = address.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep:
        return None
    if not port.isdigit() or not host:
        raise UserError(f"--ray {address}: expected HOST:PORT, ray://HOST:PORT, auto or local")
    return host.strip("[]"), int(port)


def check_reachable(address: str) -> None:
    """Fail in seconds, with one line, where Ray itself would retry for a long time."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        reason = err.strerror or err.__class__.__name__
        raise UserError(f"cannot reach the Ray cluster at {address}: {reason}") from None


def connect_ray(address: str | None = None) -> str:
    """Join the Ray cluster at `address` (None or "local": join a local one, else start one); returns its name.

    A Ray already initialised in this process (a test fixture, a notebook) is used as it is.
    """
    ray = import_ray()
    if ray.is_initialized():
        return "initialised"
    quiet = {"log_to_driver": False, "logging_level": "ERROR"}
    if address in (None, "", LOCAL):
        try:
            ray.init(address="auto", **quiet)
            return "auto"
        except ConnectionError:
            ray.init(include_dashboard=False, **quiet)
            return LOCAL
    check_reachable(address)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        raise UserError(f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0][:200]}") from None
    return address


class _Worker:
    """The actor: loads its model once, then scores shards. Wrapped by `ray.remote` at first use."""

    def __init__(self, spec: str, load_options: ModelOptions | None, threads: int) -> None:
        self.spec = spec
        self.load_options = load_options
        self.threads = threads
        self.scorer: ModelScorer | None = None
        self.cache: dict[str, Any] = {}

    def load(self) -> ScorerFacts:
        import torch

        from rewardlens.scorers import load_scorer

        torch.set_num_threads(self.threads)
        self.scorer = load_scorer(self.spec, self.load_options)
        return scorer_facts(self.scorer)

    def run(self, task: ShardTask) -> pd.DataFrame:
        assert self.scorer is not None, "load() comes first"
        return task.score(self.scorer, self.cache)

    def pid(self) -> int:
        return os.getpid()


_REMOTE_WORKER: Any = None


def _remote_worker_class() -> Any:
    global _REMOTE_WORKER
    if _REMOTE_WORKER is None:
        _REMOTE_WORKER = import_ray().remote(_Worker)
    return _REMOTE_WORKER


@dataclass(frozen=True)
class WorkerShape:
    """How many actors, and what each asks of Ray."""

    workers: int
    num_cpus: float
    num_gpus: float
    threads: int


def worker_shape(options: RayOptions, resources: dict[str, float]) -> WorkerShape:
    """One actor per GPU (or `gpus_per_worker` GPUs), else one per CPU; `--workers` overrides the count."""
    gpus = float(resources.get("GPU", 0.0))
    cpus = max(1.0, float(resources.get("CPU", 1.0)))
    if gpus > 0:
        fit = int(gpus // options.gpus_per_worker)
        workers = options.workers or max(1, fit)
        if workers * options.gpus_per_worker > gpus:
            raise UserError(
                f"--workers {workers} x {options.gpus_per_worker:g} GPU(s) each: the cluster has {gpus:g} GPU(s)"
            )
        return WorkerShape(workers, num_cpus=1.0, num_gpus=options.gpus_per_worker, threads=1)
    workers = options.workers or int(cpus)
    # Fractional CPUs let more actors than cores start; threads keep the cores from being oversubscribed.
    share = cpus / workers
    return WorkerShape(workers, num_cpus=share, num_gpus=0.0, threads=max(1, int(share)))


def reraise_task_error(err: BaseException) -> NoReturn:
    """Re-raise a failed task's error: a UserError raised inside the task (Ray wraps it in a RayTaskError)
    becomes the one-line UserError it was; anything else goes on as Ray reported it."""
    cause = getattr(err, "cause", None) or err
    if isinstance(cause, UserError):
        raise UserError(str(cause)) from None
    raise err


class RayPool(ClosingPool):
    """Scoring actors of one model on a Ray cluster, and the shard queue that feeds them.

    Use as a context manager (the actors are killed on exit). `workers` holds the live actor handles.
    """

    def __init__(self, spec: str, load_options: ModelOptions | None, options: RayOptions | None = None) -> None:
        self.spec = spec
        self.load_options = load_options  # a frozen ModelOptions: every actor loads the model with all of them
        self.options = options or RayOptions()
        connect_ray(self.options.address)
        ray = import_ray()
        self.shape = worker_shape(self.options, ray.cluster_resources())
        self.stats = QueueStats()
        self.workers: list[Any] = []
        self._replacements_left = (
            self.options.max_replacements if self.options.max_replacements is not None else 2 * self.shape.workers
        )
        starting: dict[Any, Any] = {}
        for _ in range(self.shape.workers):
            actor = self._start()
            starting[actor.load.remote()] = actor
        self.facts = self._wait_loaded(starting)

    @property
    def size(self) -> int:
        """Live actors now (fewer than planned after a loss, until the replacement has loaded)."""
        return len(self.workers)

    @property
    def planned_workers(self) -> int:
        return self.shape.workers

    def _start(self) -> Any:
        threads = str(self.shape.threads)
        actor = (
            _remote_worker_class()
            .options(
                num_cpus=self.shape.num_cpus,
                num_gpus=self.shape.num_gpus,
                runtime_env={
                    "env_vars": {
                        "OMP_NUM_THREADS": threads,
                        "MKL_NUM_THREADS": threads,
                        "TOKENIZERS_PARALLELISM": "false",
                        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"),
                    }
                },
            )
            .remote(self.spec, self.load_options, self.shape.threads)
        )
        return actor

    def _wait_loaded(self, starting: dict[Any, Any]) -> ScorerFacts:
        """Wait until every actor has loaded the model; a load error is raised once, as the user's error."""
        ray = import_ray()
        facts: ScorerFacts | None = None
        for ref, actor in starting.items():
            try:
                loaded = ray.get(ref)
            except ray.exceptions.RayTaskError as err:
                self.workers = list(starting.values())
                self.close()
                reraise_task_error(err)
            except ray.exceptions.RayActorError as err:
                self.workers = list(starting.values())
                self.close()
                raise UserError(f"a Ray worker died while loading {self.spec}: {str(err).splitlines()[0]}") from None
            self.workers.append(actor)
            facts = facts or loaded
        assert facts is not None
        return facts

    def run(
        self,
        tasks: Sequence[ShardTask],
        on_result: Callable[[ShardTask, pd.DataFrame], None],
        progress: Progress = None,
    ) -> QueueStats:
        """Score every task; `on_result(task, frame)` is called once per task, in this process."""
        ray = import_ray()
        lost_errors: tuple[type[BaseException], ...] = (ray.exceptions.RayActorError,)
        if hasattr(ray.exceptions, "ActorUnavailableError"):  # Ray >= 2.24: an actor unreachable for now
            lost_errors += (ray.exceptions.ActorUnavailableError,)
        started = time.perf_counter()
        stats = QueueStats()
        pending: deque[ShardTask] = deque(tasks)
        idle: list[Any] = list(self.workers)
        running: dict[Any, tuple[Any, ShardTask]] = {}
        loading: dict[Any, Any] = {}

        def lose(actor: Any) -> None:
            stats.workers_lost += 1
            ray.kill(actor)  # an actor that is only unreachable must not come back and hold resources
            if actor in self.workers:
                self.workers.remove(actor)
            if self._replacements_left > 0 and pending:
                self._replacements_left -= 1
                replacement = self._start()
                stats.replacements += 1
                loading[replacement.load.remote()] = replacement

        while pending or running:
            while idle and pending:
                actor, task = idle.pop(), pending.popleft()
                running[actor.run.remote(task)] = (actor, task)
            if not running and not loading:
                raise UserError("every Ray worker died and none could be replaced; run the same command to resume")
            ready, _ = ray.wait([*running, *loading], num_returns=1)
            ref = ready[0]
            if ref in loading:
                actor = loading.pop(ref)
                try:
                    ray.get(ref)
                except lost_errors:
                    lose(actor)
                    continue
                self.workers.append(actor)
                idle.append(actor)
                continue
            actor, task = running.pop(ref)
            try:
                frame = ray.get(ref)
            except lost_errors:
                # The shard was not written (only the driver writes); score it again elsewhere.
                pending.appendleft(task)
                stats.requeued += 1
                lose(actor)
                continue
            except ray.exceptions.RayTaskError as err:
                reraise_task_error(err)
            on_result(task, frame)
            stats.shards += 1
            stats.rows += task.rows
            if progress:
                progress(task.rows)
            idle.append(actor)
        for actor in loading.values():  # replacements that arrived after the work was done
            ray.kill(actor)
        stats.seconds = time.perf_counter() - started
        self.stats = stats
        return stats

    def close(self) -> None:
        ray = import_ray()
        for actor in self.workers:
            ray.kill(actor)
        self.workers = []



__all__ = [
    "LOCAL",
    "RayOptions",
    "RayPool",
    "WorkerShape",
    "check_workers",
    "connect_ray",
    "import_ray",
    "reraise_task_error",
    "worker_shape",
]
