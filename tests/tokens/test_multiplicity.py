"""Holm and Benjamini-Hochberg adjustments against statsmodels' implementations."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from rewardlens.analysis.multiplicity import benjamini_hochberg, holm


@pytest.mark.parametrize(("ours", "theirs"), [(holm, "holm"), (benjamini_hochberg, "fdr_bh")])
def test_adjustment_matches_statsmodels_and_keeps_nan(ours, theirs):
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=30) ** 3, [np.nan, 0.04, 0.04]])  # ties included
    finite = np.isfinite(p)
    adjusted = ours(p)
    assert np.isnan(adjusted[~finite]).all()
    assert adjusted[finite] == pytest.approx(multipletests(p[finite], method=theirs)[1], abs=1e-12)
    assert ours([]).shape == (0,)
