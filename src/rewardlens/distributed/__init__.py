"""Scale-out: sweeps and word runs scored by a pool of workers (Ray actors, or this process).

`RayPool` loads a model once per actor and feeds the actors shards from a queue; the driver writes every
shard into the ordinary run store, so a distributed run equals a single-process one shard for shard.
Ray itself is imported only when a `RayPool` is opened.
"""

from rewardlens.distributed.jobs import implicit_on_ray, sweep_on_ray, sweep_with_pool, words_on_ray, words_with_pool
from rewardlens.distributed.ray_runner import (
    LocalPool,
    Pool,
    QueueStats,
    RayOptions,
    RayPool,
    check_workers,
    connect_ray,
    open_pool,
)

__all__ = [
    "LocalPool",
    "Pool",
    "QueueStats",
    "RayOptions",
    "RayPool",
    "check_workers",
    "connect_ray",
    "implicit_on_ray",
    "open_pool",
    "sweep_on_ray",
    "sweep_with_pool",
    "words_on_ray",
    "words_with_pool",
]
