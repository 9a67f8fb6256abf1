"""`analyze_value_files` reads only the lexicon rows of a run (a SQL join); its tables must equal those of the
analysis of the runs loaded whole (`load_scored_inputs`), for sweeps over a vocabulary and for score CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rewardlens.analysis.family import assign_families
from rewardlens.analysis.values import analyze_values
from rewardlens.imports import load_scored_inputs
from rewardlens.lexicons import load_lexicon
from rewardlens.prompts import load_prompts
from rewardlens.runs import write_run
from rewardlens.values import analyze_value_files

PROMPT_IDS = ["best_ever_one", "worst_ever_one", "good_ever_one", "bad_ever_one"]


def _vocabulary(rng: np.random.Generator, mfd: bool) -> list[str]:
    words = load_lexicon("mfd2" if mfd else "big2-nouns").entries["word"].astype(str).tolist()
    chosen = [words[i] for i in rng.choice(len(words), 60, replace=False)]
    variants = [f" {w}" for w in chosen] + [w.capitalize() for w in chosen[:20]] + [f" {w.upper()}" for w in chosen[:5]]
    filler = [f" tok{i}" for i in range(400)] + [" careless", " abuser"]  # filler, and prefixes a wildcard may take
    return variants + filler


def _sweep(directory: Path, model: str, texts: list[str], rng: np.random.Generator) -> Path:
    prompts = [p for p in load_prompts("value54") if p.id in PROMPT_IDS]
    pieces = [
        pd.DataFrame(
            {
                "model": model,
                "prompt_id": prompt.id,
                "prompt": prompt.text,
                "token_id": np.arange(len(texts), dtype=np.int64),
                "response": texts,
                "score": np.round(rng.normal(size=len(texts)), 1),  # ties
            }
        )
        for prompt in prompts
    ]
    frame = pd.concat(pieces, ignore_index=True).sample(frac=1.0, random_state=3).reset_index(drop=True)
    manifest = {"kind_of_run": "sweep", "model": model, "prompts": [p.to_dict() for p in prompts]}
    return write_run(directory, manifest, frame, shard_rows=500)


@pytest.mark.parametrize("lexicon", ["big2-nouns", "mfd2"])
@pytest.mark.parametrize("words", ["common", "all"])
def test_lexicon_rows_give_the_tables_of_the_loaded_runs(tmp_path: Path, lexicon: str, words: str) -> None:
    rng = np.random.default_rng(11)
    texts = _vocabulary(rng, lexicon == "mfd2")
    inputs = [
        _sweep(tmp_path / "llama-rm", "org/Llama-3-RM", texts, rng),
        _sweep(tmp_path / "gemma-rm", "org/Gemma-2-RM", texts[5:], rng),
    ]
    csv = tmp_path / "third.csv"
    wide = pd.DataFrame({"response": texts[10:]})
    for prompt_id in PROMPT_IDS:
        wide[prompt_id] = np.round(rng.normal(size=len(wide)), 1)
    wide.to_csv(csv, index=False)
    inputs.append(csv)

    report = analyze_value_files(
        inputs, lexicon, tmp_path / "out", compare="categories", n_permutations=50, words=words
    )

    scored = load_scored_inputs(inputs)
    families = assign_families({item.model: item.aliases for item in scored}, {})
    frame = pd.concat([item.frame for item in scored], ignore_index=True)
    loaded = analyze_values(frame, load_lexicon(lexicon), families, "categories", 50, 0, words)
    streamed = report.analysis
    for name in ("ranked", "model_medians", "summary", "prompt_medians", "tests", "conclusions"):
        left, right = getattr(streamed, name), getattr(loaded, name)
        pd.testing.assert_frame_equal(
            left.reset_index(drop=True), right.reset_index(drop=True), check_dtype=False, atol=1e-9, rtol=0
        )
    assert streamed.notes == loaded.notes
    assert (streamed.ranked["rank"].to_numpy() == loaded.ranked["rank"].to_numpy()).all()
