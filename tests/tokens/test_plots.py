from pathlib import Path

import numpy as np
import pandas as pd

from rewardlens.analysis.tokens import agreement, agreement_mds, mean_tau_matrix, moments
from rewardlens.analysis.tokens.histograms import score_histograms
from rewardlens.report import token_plots


def test_figures_are_written_for_many_prompts_and_models(sweep, texts, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vocab = texts(60)
    prompts = {f"p{i}": rng.normal(size=60) for i in range(12)}  # more prompts than a legend shows
    frame = pd.concat([sweep(m, vocab, prompts) for m in ("A", "B", "C")], ignore_index=True)
    shape = moments(frame, n_resamples=10)
    pairs = agreement(frame)
    written = [
        token_plots.plot_score_histograms(score_histograms(frame), shape, tmp_path / "h.png"),
        token_plots.plot_agreement_heatmap(mean_tau_matrix(pairs), tmp_path / "a.png"),
        token_plots.plot_agreement_mds(agreement_mds(pairs), tmp_path / "m.png"),
    ]
    for path in written:
        assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG"
