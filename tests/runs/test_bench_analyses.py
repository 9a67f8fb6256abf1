"""`rewardlens bench analyses` on a tiny study: one JSON line with the sizes and each analysis's time and memory."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rewardlens.bench.analyses import StudySize, build_study, synthetic_vocabulary
from rewardlens.runs import load_run, read_manifest


def test_bench_analyses_prints_one_json_line(tmp_path: Path, run_cli: Callable[..., object]) -> None:
    args = ["bench", "analyses", "--models", "2", "--prompts", "2", "--tokens", "500", "--json"]
    result = run_cli(*args, "--cache", str(tmp_path), "--resamples", "5", "--permutations", "20")
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    lines = result.stdout.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert (record["models"], record["prompts"], record["tokens"], record["rows"]) == (2, 2, 500, 2000)
    assert set(record["analyses"]) == {"tokens", "values"}
    for measured in record["analyses"].values():
        assert set(measured) == {"seconds", "peak_rss_gb"}
        assert measured["peak_rss_gb"] > 0
    assert record["peak_rss_gb"] == max(m["peak_rss_gb"] for m in record["analyses"].values())


def test_synthetic_study_is_cached_and_holds_the_lexicon_words(tmp_path: Path) -> None:
    size = StudySize(models=2, prompts=3, tokens=400)
    runs = build_study(size, tmp_path)
    stamps = [p.stat().st_mtime_ns for run in runs for p in sorted((run / "shards").iterdir())]
    assert build_study(size, tmp_path) == runs  # reused, not rewritten
    assert stamps == [p.stat().st_mtime_ns for run in runs for p in sorted((run / "shards").iterdir())]
    frame = load_run(runs[0])
    assert len(frame) == 3 * 400 and read_manifest(runs[0])["complete"]
    assert frame.groupby("prompt_id")["token_id"].nunique().eq(400).all()
    vocabulary = synthetic_vocabulary(400)
    assert vocabulary["response"].is_unique and " accuracy" in set(vocabulary["response"])
