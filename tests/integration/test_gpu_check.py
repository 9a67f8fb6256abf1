"""`scripts/gpu-check` in CPU quick mode: one strict JSON line, also written to $OUT, every check with its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from rewardlens.bench.gpu import (
    CHECKS,
    LOCAL_TOKENIZER,
    Context,
    GpuCheckConfig,
    find_tokenizer,
    peak_bf16_tflops,
    run_check,
    save_tokenizer,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu-check"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"not strict JSON: {name}")


@pytest.fixture(scope="module")
def quick_run(real_tokenizer_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("gpu-check-out")
    env = {
        **os.environ,
        "OUT": str(out),
        "PYTHON": sys.executable,
        # Tiny models on a shared 2-core machine: a second thread only adds synchronisation.
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [str(SCRIPT), "--quick", "--device", "cpu", "--tokenizer", str(real_tokenizer_dir("llama3_1"))],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = done.stdout.splitlines()
    written = (out / "gpu-check.json").read_text(encoding="utf-8")
    return {"rc": done.returncode, "lines": lines, "written": written, "stderr": done.stderr}


def test_one_strict_json_line_printed_and_written_to_out(quick_run: dict[str, Any]) -> None:
    assert len(quick_run["lines"]) == 1, quick_run["stderr"][-2000:]
    line = json.loads(quick_run["lines"][0], parse_constant=_refuse_constant)
    assert json.loads(quick_run["written"]) == line
    assert quick_run["rc"] == (0 if line["pass"] else 1)


def test_every_check_passes_with_its_figures(quick_run: dict[str, Any]) -> None:
    line = json.loads(quick_run["lines"][0])
    assert line["device"] == "cpu" and line["config"]["quick"] is True
    failed = {name: line[name] for name in CHECKS if not line[name]["pass"]}
    assert not failed, failed
    assert line["pass"] is True

    dtype = line["bf16_auto_dtype"]
    assert dtype["auto_on_cuda"] == "bfloat16" and dtype["auto_here"] == dtype["loaded_weights"] == "float32"

    exact = line["cached_vs_reference"]
    assert exact["vocab"] == 128256 and exact["dtype"] == "bfloat16"
    # pad = end of turn: the model's own forward reads before <|eot_id|>, and every engine with it.
    assert exact["read_rule"] == {"rule": "rightmost-non-pad", "pad_token_id": 128009}
    assert (
        set(exact["bf16_max_abs_diff"])
        == set(exact["float32_max_abs_diff"])
        == {
            "cached",
            "cached_batch_7",
            "batched_batch_7",
        }
    )
    assert max(exact["float32_max_abs_diff"].values()) <= 1e-4

    sweep = line["sweep_throughput"]
    assert sweep["candidates"] == 2048 and sweep["batch_size"] == line["auto_batch_size"]["batch_size"]
    assert sweep["candidates_per_s"] > 0 and sweep["model_tflop_per_s"] > 0
    assert sweep["head_float32"] is True and sweep["distinct_scores"] > 1000
    assert sweep["peak_bf16_tflop_per_s"] is None  # no published GPU peak for a CPU
    assert str(line["auto_batch_size"]["batch_size"]) in line["auto_batch_size"]["scan_candidates_per_s"]

    similarity = line["similarity_cuda"]
    assert {"rv2", "linear-cka", "rsa", "linear-cka streamed"} <= set(similarity["max_abs_diff"])

    training = line["training_step"]
    assert training["steps"] == 2 and len(training["losses"]) == 2 and training["device"] == "cpu"


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("Tesla T4", None),
    ],
)
def test_peak_is_looked_up_by_device_name_variants_first(name: str, peak: float | None) -> None:
    assert peak_bf16_tflops(name) == peak


def test_a_check_that_raises_fails_alone_with_its_error(tmp_path: Path) -> None:
    def broken(ctx: Context) -> dict[str, Any]:
        raise ModuleNotFoundError("No module named 'trl'")

    ctx = Context(GpuCheckConfig(device="cpu"), torch.device("cpu"), tmp_path)
    result = run_check(broken, ctx)
    assert result["pass"] is False and result["error"] == "ModuleNotFoundError: No module named 'trl'"


def test_a_saved_tokenizer_is_found_where_a_carried_one_lies(
    real_tokenizer_dir: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = real_tokenizer_dir("llama3_1")
    saved = save_tokenizer(str(source), tmp_path / LOCAL_TOKENIZER)
    assert saved["vocab"] == 128256
    # The files are copied as they are (re-saving would double tokenizer.json).
    assert (tmp_path / LOCAL_TOKENIZER / "tokenizer.json").read_bytes() == (source / "tokenizer.json").read_bytes()
    monkeypatch.chdir(tmp_path)
    tokenizer, found = find_tokenizer(None)
    assert found == str(LOCAL_TOKENIZER) and len(tokenizer) == 128256
