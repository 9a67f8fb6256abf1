"""Token-level analyses of vocabulary sweeps: optimal/pessimal tokens, distribution shape, agreement across
models and tokenizers, framing, frequency bias and identity-group terms. Pure functions on run DataFrames."""

from rewardlens.analysis.tokens.agreement import (
    agreement,
    agreement_mds,
    align_tokens,
    alignment_report,
    classical_mds,
    mean_tau_matrix,
    rank_biased_overlap,
)
from rewardlens.analysis.tokens.api import (
    TokenReport,
    TokenRuns,
    analyze_token_runs,
    analyze_tokens,
    load_token_runs,
    parse_framings,
)
from rewardlens.analysis.tokens.framing import framing, framing_analysis, framing_movers
from rewardlens.analysis.tokens.frequency import frequency_bias, word_features
from rewardlens.analysis.tokens.identity import identity_groups, identity_percentiles, load_identity_terms
from rewardlens.analysis.tokens.moments import moments
from rewardlens.analysis.tokens.top_bottom import top_bottom

__all__ = [
    "TokenReport",
    "TokenRuns",
    "agreement",
    "agreement_mds",
    "align_tokens",
    "alignment_report",
    "analyze_token_runs",
    "analyze_tokens",
    "classical_mds",
    "framing",
    "framing_analysis",
    "framing_movers",
    "frequency_bias",
    "identity_groups",
    "identity_percentiles",
    "load_identity_terms",
    "load_token_runs",
    "mean_tau_matrix",
    "moments",
    "parse_framings",
    "rank_biased_overlap",
    "top_bottom",
    "word_features",
]
