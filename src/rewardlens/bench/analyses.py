"""`bench analyses`: memory and time of `analyze tokens` and `analyze values` on a synthetic study.

A study of M models x P prompts x T tokens is written once, with the run store's own writer, as M sweep runs
(cached under ~/.cache/rewardlens-bench/, keyed by the sizes, and reused). Each analysis then runs in a fresh
Python process, so that its peak resident memory is its own: `os.wait4` returns the child's `ru_maxrss`
(the peak of that process alone, threads included). The vocabulary holds the words of the lexicon, identity
terms and AFINN words, so that lexicon matching, identity terms and the frequency fits all find their tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rewardlens.errors import UserError
from rewardlens.progress import PhaseProgress, no_progress

# Rows per shard file: a few million keeps the writer's frame and the Parquet footers small.
SHARD_ROWS = 2_000_000
BENCH_FORMAT = 1  # part of the cache key: a change of the synthetic data must not reuse old runs
_SPECIAL_TEXTS = ["<bos>", "<eos>", "<pad>"]
_BYTES_PER_GB = 1e9


@dataclass(frozen=True)
class StudySize:
    """How large the synthetic study is."""

    models: int
    prompts: int
    tokens: int

    def __post_init__(self) -> None:
        if self.models < 1 or self.prompts < 1 or self.tokens < 1:
            raise UserError("--models, --prompts and --tokens must each be at least 1")

    @property
    def rows(self) -> int:
        return self.models * self.prompts * self.tokens

    @property
    def key(self) -> str:
        return f"m{self.models}-p{self.prompts}-t{self.tokens}-v{BENCH_FORMAT}"


def default_cache() -> Path:
    return Path.home() / ".cache" / "rewardlens-bench"


def _afinn_words() -> list[str]:
    from rewardlens.analysis.tokens.frequency import afinn_lexicon

    return sorted(afinn_lexicon())


def synthetic_vocabulary(tokens: int, lexicon: str = "big2-nouns") -> pd.DataFrame:
    """`tokens` distinct token texts: a few specials, the lexicon's words (spaced and capitalised), identity
    terms, AFINN words, then filler; columns as a sweep writes them."""
    from rewardlens.analysis.tokens.identity import load_identity_terms
    from rewardlens.lexicons import load_lexicon

    words = load_lexicon(lexicon).entries["word"].astype(str).tolist()
    identity = load_identity_terms()["text"].astype(str).tolist()
    named = [
        *_SPECIAL_TEXTS,
        *(f" {w}" for w in words),
        *identity,
        *(f" {w}" for w in _afinn_words()),
        *(w[:1].upper() + w[1:] for w in words),
    ]
    texts = list(dict.fromkeys(named))[:tokens]
    texts += [f"{' ' if i % 2 else ''}t{i}" for i in range(tokens - len(texts))]
    response = pd.Series(texts, dtype="str")
    stripped = response.str.strip()
    return pd.DataFrame(
        {
            "token_id": np.arange(tokens, dtype=np.int64),
            "token": response.str.replace(" ", "\u0120", regex=False),
            "response": response,
            "is_special": np.isin(np.arange(tokens), np.arange(min(tokens, len(_SPECIAL_TEXTS)))),
            "leading_space": response.str.startswith(" ").to_numpy(dtype=bool),
            "is_word": stripped.str.isalpha().to_numpy(dtype=bool),
        }
    )


def _prompts(n: int) -> list[dict[str, str]]:
    """The value54 prompts (framed, with scope and phrasing), then numbered ones of alternating framing."""
    from rewardlens.prompts import load_prompts

    bundled = [prompt.to_dict() for prompt in load_prompts("value54")][:n]
    extra = [
        {"id": f"extra_{i:04d}", "text": f"Prompt {i}?", "framing": "positive" if i % 2 == 0 else "negative"}
        for i in range(n - len(bundled))
    ]
    return bundled + extra


def _model_name(index: int) -> str:
    # Two families, so that `analyze values` compares them as it would real RMs.
    return f"bench/{'Llama' if index % 2 == 0 else 'Gemma'}-RM-{index:02d}"


def build_study(
    size: StudySize, cache: Path, lexicon: str = "big2-nouns", phase: PhaseProgress = no_progress
) -> list[Path]:
    """The run directories of the synthetic study, written (or finished) when the cache lacks them."""
    from rewardlens.runs import RunStore, count_rows, has_run, read_manifest

    root = cache / f"{size.key}-{lexicon}"
    prompts = _prompts(size.prompts)
    per_shard = max(1, SHARD_ROWS // size.tokens)
    shards = [(start, min(start + per_shard, size.prompts)) for start in range(0, size.prompts, per_shard)]
    directories = [root / f"model-{m:03d}" for m in range(size.models)]
    pending = [
        d
        for d in directories
        if not (has_run(d) and read_manifest(d).get("complete") and count_rows(d) == size.prompts * size.tokens)
    ]
    if not pending:
        return directories
    vocabulary = synthetic_vocabulary(size.tokens, lexicon)
    advance = phase("writing synthetic runs", len(directories) * len(shards), 0)
    advance((len(directories) - len(pending)) * len(shards))
    for m, directory in enumerate(directories):
        if directory not in pending:
            continue
        manifest = {
            "kind_of_run": "sweep",
            "model": _model_name(m),
            "model_spec": _model_name(m),
            "prompts": prompts,
            "tokens": f"0:{size.tokens}",
            "include_special": True,
            "rows_expected": size.prompts * size.tokens,
            "synthetic": True,
        }
        store = RunStore(directory, manifest, identity_keys=("kind_of_run", "model", "prompts", "tokens"))
        # A model's taste (one score per token) plus noise per prompt, sign flipped under negative framing.
        rng = np.random.default_rng([BENCH_FORMAT, m])
        taste = rng.normal(size=size.tokens)
        for start, stop in shards:
            name = f"prompts-{start:04d}-{stop:04d}"
            if store.is_done(name):
                advance(1)
                continue
            pieces = []
            for p in range(start, stop):
                sign = -1.0 if prompts[p].get("framing") == "negative" else 1.0
                noise = np.random.default_rng([BENCH_FORMAT, m, p]).normal(size=size.tokens)
                pieces.append(
                    vocabulary.assign(
                        model=_model_name(m),
                        prompt_id=prompts[p]["id"],
                        prompt=prompts[p]["text"],
                        score=np.round(sign * taste + 0.5 * noise, 4),  # rounded: ties, as real scores have
                    )
                )
            store.write_shard(name, pd.concat(pieces, ignore_index=True))
            advance(1)
        store.finish()
    return directories


def _run_child(kind: str, arguments: dict[str, Any]) -> dict[str, float]:
    """Run one analysis in a fresh interpreter; its wall time and the peak RSS of that process alone."""
    command = [sys.executable, "-m", "rewardlens.bench.analyses", kind, json.dumps(arguments)]
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - began
    if child.returncode != 0:
        last = errors.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise UserError(f"bench analyses: analyze {kind} failed (exit {child.returncode}): {last[0]}")
    # Linux reports ru_maxrss in KiB.
    return {"seconds": round(seconds, 2), "peak_rss_gb": round(usage.ru_maxrss * 1024 / _BYTES_PER_GB, 3)}


@dataclass(frozen=True)
class AnalysesBench:
    """Options of the benchmark: the study's size, where its runs are cached, and the analyses' options."""

    models: int = 10
    prompts: int = 54
    tokens: int = 262_144
    cache: Path | None = None
    lexicon: str = "big2-nouns"
    resamples: int = 1000
    permutations: int = 1000
    figures: bool = True


def benchmark_analyses(options: AnalysesBench, phase: PhaseProgress = no_progress) -> dict[str, Any]:
    """Build (or reuse) the study, run each analysis in its own process; the JSON record of `bench analyses`."""
    size = StudySize(options.models, options.prompts, options.tokens)
    cache = options.cache or default_cache()
    runs = [str(d) for d in build_study(size, cache, options.lexicon, phase)]
    analyses: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="rewardlens-bench-analyses-") as out:
        common = {"runs": runs, "figures": options.figures}
        tokens = {**common, "out": f"{out}/tokens", "resamples": options.resamples}
        analyses["tokens"] = _run_child("tokens", tokens)
        values = {**common, "out": f"{out}/values", "lexicon": options.lexicon, "permutations": options.permutations}
        analyses["values"] = _run_child("values", values)
    return {
        "models": size.models,
        "prompts": size.prompts,
        "tokens": size.tokens,
        "rows": size.rows,
        "peak_rss_gb": max(result["peak_rss_gb"] for result in analyses.values()),
        "analyses": analyses,
        "options": {
            k: v for k, v in asdict(options).items() if k in ("lexicon", "resamples", "permutations", "figures")
        },
        "cache": str(cache / f"{size.key}-{options.lexicon}"),
    }


def _child(kind: str, arguments: dict[str, Any]) -> None:
    """The analysis a child process runs (what `rewardlens analyze tokens|values` would)."""
    if kind == "tokens":
        from rewardlens.analysis.tokens import analyze_token_runs

        analyze_token_runs(
            arguments["runs"], arguments["out"], n_resamples=arguments["resamples"], figures=arguments["figures"]
        )
    elif kind == "values":
        from rewardlens.values import analyze_value_files

        analyze_value_files(
            arguments["runs"], arguments["lexicon"], arguments["out"], n_permutations=arguments["permutations"]
        )
    else:
        raise ValueError(f"unknown analysis {kind!r}")


def main(argv: Sequence[str]) -> None:
    kind, arguments = argv
    _child(kind, json.loads(arguments))


if __name__ == "__main__":
    main(sys.argv[1:])
