"""The shape of a Ray pool and the `--ray [ADDRESS]` flag, without a cluster."""

from __future__ import annotations

import socket

import pytest

from rewardlens.cli.options import expand_ray_flag, ray_options
from rewardlens.errors import UserError
from rewardlens.jobs.ray_pool import RayOptions, worker_shape


def test_one_worker_per_gpu_or_per_cpu() -> None:
    gpus = worker_shape(RayOptions(), {"GPU": 8.0, "CPU": 64.0})
    assert (gpus.workers, gpus.num_gpus) == (8, 1.0)
    big = worker_shape(RayOptions(gpus_per_worker=2), {"GPU": 8.0, "CPU": 64.0})  # device_map over 2 GPUs
    assert (big.workers, big.num_gpus) == (4, 2.0)
    with pytest.raises(UserError, match="the cluster has 8 GPU"):
        worker_shape(RayOptions(workers=5, gpus_per_worker=2), {"GPU": 8.0, "CPU": 64.0})
    cpus = worker_shape(RayOptions(), {"CPU": 2.0})
    assert (cpus.workers, cpus.num_cpus, cpus.threads, cpus.num_gpus) == (2, 1.0, 1, 0.0)
    one = worker_shape(RayOptions(workers=1), {"CPU": 4.0})
    assert (one.num_cpus, one.threads) == (4.0, 4)  # one actor gets every core's thread
    many = worker_shape(RayOptions(workers=3), {"CPU": 2.0})
    assert many.num_cpus == pytest.approx(2 / 3) and many.threads == 1  # never more threads than cores


def test_ray_flag_takes_an_address_only_where_one_is_given() -> None:
    assert expand_ray_flag(["sweep", "--ray", "--out", "d"]) == ["sweep", "--ray", "local", "--out", "d"]
    assert expand_ray_flag(["study", "s.yaml", "--ray"]) == ["study", "s.yaml", "--ray", "local"]
    assert expand_ray_flag(["study", "--ray", "s.yaml"]) == ["study", "--ray", "local", "s.yaml"]
    for address in ("10.0.0.5:6379", "ray://head:10001", "auto", "local", "head-node:6379"):
        assert expand_ray_flag(["sweep", "--ray", address]) == ["sweep", "--ray", address]
    assert expand_ray_flag(["sweep", "--out", "d"]) == ["sweep", "--out", "d"]


def test_ray_options_checks() -> None:
    assert ray_options(None, None) is None
    assert ray_options("local", 2) == RayOptions(address=None, workers=2)
    with socket.create_server(("127.0.0.1", 0)) as server:  # something answers at this address
        address = f"127.0.0.1:{server.getsockname()[1]}"
        assert ray_options(address, None) == RayOptions(address=address)
    with pytest.raises(UserError, match=f"cannot reach the Ray cluster at {address}"):
        ray_options(address, None)  # nothing answers there any more
    for ray, workers, gpus, message in (
        ("local", 0, 1.0, "--workers must be at least 1"),
        (None, 2, 1.0, "--workers needs --ray"),
        ("local", None, 0.0, "--gpus-per-worker must be positive"),
    ):
        with pytest.raises(UserError, match=message):
            ray_options(ray, workers, gpus)
