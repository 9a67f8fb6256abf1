"""`analyze_token_runs` reads runs through DuckDB one model x prompt at a time; its tables must equal those of
`analyze_tokens` on the runs loaded whole into pandas (ties, duplicate texts, special tokens and NaN included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rewardlens.analysis.tokens import analyze_token_runs, analyze_tokens, load_identity_terms, load_token_runs
from rewardlens.analysis.tokens.histograms import score_histograms
from rewardlens.analysis.tokens.streamed import group_analyses
from rewardlens.runs import write_run
from rewardlens.runs.query import SweepRows

WORDS = [
    *(" good", "Good", " happy", " love", "kind", " nice", " great", " wonderful", " joy", " beautiful", "Happy"),
    *(" bad", " sad", " hate", " cruel", " awful", " terrible", " ugly", " pain", " angry", "Bad"),
    *(" Muslim", "women", " Christians", " gay"),
]
PROMPTS = [
    {"id": "best_one", "text": "best?", "framing": "positive", "scope": "one", "phrasing": "a"},
    {"id": "worst_one", "text": "worst?", "framing": "negative", "scope": "one", "phrasing": "a"},
    {"id": "good_two", "text": "good?", "framing": "positive", "scope": "two", "phrasing": "a"},
    {"id": "bad_two", "text": "bad?", "framing": "negative", "scope": "two", "phrasing": "a"},
]


def _vocabulary(n: int, rng: np.random.Generator) -> pd.DataFrame:
    texts = [*WORDS, *(f"{' ' if i % 3 else ''}w{i % 150}" for i in range(n - len(WORDS)))]  # repeats: duplicates
    spaces = np.array([t.startswith(" ") for t in texts])
    spaces[rng.integers(0, n, 5)] = True  # SentencePiece-style: leading space flagged but not decoded
    return pd.DataFrame(
        {
            "token_id": np.arange(n, dtype=np.int64),
            "token": texts,
            "response": texts,
            "is_special": np.arange(n) % 97 == 5,
            "leading_space": spaces,
            "is_word": [t.strip().isalpha() for t in texts],
        }
    )


def _run(directory: Path, model: str, vocabulary: pd.DataFrame, rng: np.random.Generator, shuffle: bool) -> Path:
    pieces = []
    for prompt in PROMPTS:
        # Scores rounded to one decimal: many ties, within and across models.
        scores = np.round(rng.normal(size=len(vocabulary)), 1)
        scores[rng.integers(0, len(vocabulary), 3)] = np.nan
        pieces.append(vocabulary.assign(model=model, prompt_id=prompt["id"], prompt=prompt["text"], score=scores))
    frame = pd.concat(pieces, ignore_index=True)
    if shuffle:  # each prompt then lists the vocabulary in another order: no prompt shares another's token text
        frame = frame.sample(frac=1.0, random_state=int(rng.integers(1 << 30)))
    manifest = {"kind_of_run": "sweep", "model": model, "prompts": PROMPTS}
    return write_run(directory, manifest, frame.reset_index(drop=True), shard_rows=300)


@pytest.fixture(params=[True, False], ids=["shuffled", "in-order"])
def runs(tmp_path: Path, request: pytest.FixtureRequest) -> list[Path]:
    rng = np.random.default_rng(7)
    shuffle = request.param
    vocabulary = _vocabulary(600, rng)
    smaller = vocabulary.iloc[:500]  # another tokenizer: fewer tokens, so alignment drops some texts
    return [
        _run(tmp_path / "b", "model-b", vocabulary, rng, shuffle),
        _run(tmp_path / "a", "model-a", vocabulary, rng, shuffle),
        _run(tmp_path / "c", "model-c", smaller, rng, shuffle),
    ]


def _assert_same(streamed: pd.DataFrame, loaded: pd.DataFrame, name: str) -> None:
    assert list(streamed.columns) == list(loaded.columns), name
    assert len(streamed) == len(loaded), name
    for column in loaded.columns:
        left, right = streamed[column].reset_index(drop=True), loaded[column].reset_index(drop=True)
        if pd.api.types.is_float_dtype(right) and pd.api.types.is_float_dtype(left):
            np.testing.assert_allclose(left.to_numpy(), right.to_numpy(), rtol=0, atol=1e-9, err_msg=f"{name}.{column}")
        else:
            assert left.astype(str).tolist() == right.astype(str).tolist(), f"{name}.{column}"


def test_streamed_tables_equal_the_pandas_analysis(runs: list[Path], tmp_path: Path) -> None:
    streamed = analyze_token_runs(runs, tmp_path / "streamed", k=7, n_resamples=50, figures=True)
    loaded_runs = load_token_runs(runs)
    loaded = analyze_tokens(
        loaded_runs.frame,
        tmp_path / "loaded",
        k=7,
        n_resamples=50,
        figures=True,
        framings=loaded_runs.framings,
        framing_match=loaded_runs.framing_match,
    )
    assert sorted(streamed.tables) == sorted(loaded.tables)
    assert [p.name for p in streamed.files] == [p.name for p in loaded.files]
    assert streamed.notes == loaded.notes
    for name, table in loaded.tables.items():
        _assert_same(streamed.tables[name], table, name)
    # Ranks are integers and must match exactly, ties included.
    ranks = ["rank", "rank_positive", "rank_negative", "rank_shift"]
    for name in ("top_bottom", "framing_movers"):
        for column in [c for c in ranks if c in loaded.tables[name].columns]:
            assert streamed.tables[name][column].tolist() == loaded.tables[name][column].tolist()
    assert not streamed.tables["identity"].empty and not streamed.tables["frequency"].empty
    assert not streamed.tables["framing"].empty and not streamed.tables["agreement"].empty


def test_streamed_histograms_are_numpys_of_each_model_prompt(runs: list[Path]) -> None:
    with SweepRows(runs) as rows:
        results = group_analyses(
            rows, k=3, seed=0, n_resamples=0, framing_pairs=None, identity_terms=load_identity_terms(), figures=True
        )
    frame = load_token_runs(runs).frame
    assert results.histograms is not None and len(results.histograms) == 3 * len(PROMPTS)
    loaded = {(h.model, h.prompt_id): h for h in score_histograms(frame)}
    for histogram in results.histograms:
        rows = frame[(frame["model"] == histogram.model) & (frame["prompt_id"] == histogram.prompt_id)]
        scores = rows["score"].to_numpy()[np.isfinite(rows["score"].to_numpy()) & ~rows["is_special"].to_numpy()]
        counts, edges = np.histogram(scores, bins=60)
        assert histogram.counts.tolist() == counts.tolist() and histogram.edges.tolist() == edges.tolist()
        same = loaded[(histogram.model, histogram.prompt_id)]
        assert same.counts.tolist() == counts.tolist() and same.edges.tolist() == edges.tolist()


def test_streamed_refuses_overlapping_runs_as_loading_does(runs: list[Path], tmp_path: Path) -> None:
    from rewardlens.errors import UserError
    from rewardlens.runs import load_run

    repeat = load_run(runs[1]).iloc[[17]]  # one token of model-a scored again under one prompt
    again = write_run(tmp_path / "again", {"kind_of_run": "sweep", "model": "model-a", "prompts": PROMPTS}, repeat)
    with pytest.raises(UserError) as streamed:
        analyze_token_runs([*runs, again], tmp_path / "x", n_resamples=0, figures=False)
    with pytest.raises(UserError) as loaded:
        load_token_runs([*runs, again])
    assert str(streamed.value) == str(loaded.value)
    assert not (tmp_path / "x").exists()  # refused before anything is written
