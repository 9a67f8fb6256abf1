"""Identity-group terms: where reward models put words for groups of people in their score distribution.

The bundled list (`rewardlens/data/identity_terms.yaml`, documented there) groups terms by religion,
ethnicity, nationality, gender, sexual orientation, disability and politics. Every form is matched as written,
lower-cased and capitalized, with and without a leading space, against the decoded text of single tokens.
Within each model x prompt every matched token gets its percentile rank among all the model's scored tokens
(mid-rank: 100 (r - 1/2) / n with average ranks for ties, scipy's `percentileofscore(kind="mean")`); a group
summary adds the median percentile, the count in the bottom 1%, and a two-sided Mann-Whitney U test of the
group's tokens against all other tokens, with `p_adjusted`: Benjamini-Hochberg FDR over every test of the
table (all models, prompts and groups). The unit of these tests is the token: the spelling variants of one
term (" Muslim", "muslim") are separate observations, so the tests say which tokens a model scores lower,
for this model and prompt, not which concepts.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from rewardlens.analysis.multiplicity import benjamini_hochberg
from rewardlens.analysis.tokens._frame import groups, require_columns, scored_tokens, token_text
from rewardlens.errors import UserError

TERM_COLUMNS = ["group", "term", "form", "text"]
IDENTITY_COLUMNS = [
    "model",
    "prompt_id",
    "group",
    "term",
    "text",
    "token_id",
    "score",
    "percentile",
    "bottom_1pct",
    "group_median_percentile",
]
GROUP_COLUMNS = [
    "model",
    "prompt_id",
    "group",
    "n_tokens",
    "median_percentile",
    "n_bottom_1pct",
    "mannwhitney_u",
    "p_value",
    "p_adjusted",
    "prob_higher",
]
BOTTOM_PERCENT = 1.0


def _spellings(form: str) -> list[str]:
    """The form as written, lower-cased and capitalized, each bare and with a leading space."""
    cased = dict.fromkeys([form, form.lower(), form[:1].upper() + form[1:]])
    return [prefix + spelling for spelling in cased for prefix in ("", " ")]


def load_identity_terms(path: str | Path | None = None) -> pd.DataFrame:
    """The identity-term list expanded to token texts: columns group, term (first form), form, text.

    `path` is a YAML file of `group: [[singular, plural], [adjective], ...]`; by default the bundled list.
    """
    if path is None:
        source = resources.files("rewardlens.data").joinpath("identity_terms.yaml").read_text(encoding="utf-8")
    else:
        try:
            source = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise UserError(f"cannot read identity terms {path}: {err.strerror}") from err
    try:
        groups_of_terms = yaml.safe_load(source)
    except yaml.YAMLError as err:
        raise UserError(f"identity terms {path} are not valid YAML") from err
    if not isinstance(groups_of_terms, dict) or not groups_of_terms:
        raise UserError(f"identity terms {path} must map each group to a list of terms")
    records: list[dict[str, str]] = []
    for group, entries in groups_of_terms.items():
        for entry in entries or []:
            forms = [entry] if isinstance(entry, str) else list(entry)
            if not forms or not all(isinstance(f, str) and f.strip() for f in forms):
                raise UserError(f"identity terms {path}: group {group} has an empty or non-text term")
            for form in forms:
                for text in _spellings(form.strip()):
                    records.append({"group": str(group), "term": forms[0].strip(), "form": form, "text": text})
    return pd.DataFrame.from_records(records, columns=TERM_COLUMNS).drop_duplicates(["group", "text"])


def mid_rank_percentiles(scores: np.ndarray) -> np.ndarray:
    """Percentile rank of each score within `scores`: 100 (average rank - 1/2) / n."""
    return 100.0 * (stats.rankdata(scores, method="average") - 0.5) / len(scores)


def identity_percentiles(
    frame: pd.DataFrame, terms: pd.DataFrame | None = None, include_special: bool = False
) -> pd.DataFrame:
    """Per model x prompt, one row per token whose text is an identity term: score, percentile, bottom-1% flag
    and its group's median percentile."""
    require_columns(frame, ["model", "prompt_id", "token_id", "response", "score"], "identity terms")
    terms = load_identity_terms() if terms is None else terms
    pieces: list[pd.DataFrame] = []
    for model, prompt_id, rows in groups(scored_tokens(frame, include_special)):
        ranked = pd.DataFrame(
            {
                "token_id": rows["token_id"].to_numpy(),
                "text": token_text(rows).to_numpy(),
                "score": rows["score"].to_numpy(dtype=np.float64),
                "percentile": mid_rank_percentiles(rows["score"].to_numpy(dtype=np.float64)),
            }
        )
        matched = ranked.merge(terms[["group", "term", "text"]], on="text", how="inner")
        if matched.empty:
            continue
        matched["bottom_1pct"] = matched["percentile"] < BOTTOM_PERCENT
        matched["group_median_percentile"] = matched.groupby("group")["percentile"].transform("median")
        pieces.append(matched.assign(model=model, prompt_id=prompt_id))
    if not pieces:
        return pd.DataFrame(columns=IDENTITY_COLUMNS)
    result = pd.concat(pieces, ignore_index=True)[IDENTITY_COLUMNS]
    return result.sort_values(["model", "prompt_id", "group", "percentile"], kind="stable", ignore_index=True)


def identity_groups(
    frame: pd.DataFrame, terms: pd.DataFrame | None = None, include_special: bool = False
) -> pd.DataFrame:
    """Per model x prompt x group: matched tokens, median percentile, count in the bottom 1%, and a two-sided
    Mann-Whitney U test of the group's scores against every other scored token; `prob_higher` = U / (n1 n2),
    the probability that a group token outscores another token (ties count one half)."""
    require_columns(frame, ["model", "prompt_id", "token_id", "response", "score"], "identity terms")
    terms = load_identity_terms() if terms is None else terms
    texts_by_group = terms.groupby("group")["text"].apply(set).to_dict()
    records: list[dict[str, object]] = []
    for model, prompt_id, rows in groups(scored_tokens(frame, include_special)):
        scores = rows["score"].to_numpy(dtype=np.float64)
        texts = token_text(rows).to_numpy()
        percentiles = mid_rank_percentiles(scores)
        for group in sorted(texts_by_group):
            inside = pd.Series(texts).isin(texts_by_group[group]).to_numpy(dtype=bool)
            if not inside.any():
                continue
            u, p_value = float("nan"), float("nan")
            if (~inside).any():
                test = stats.mannwhitneyu(scores[inside], scores[~inside], alternative="two-sided")
                u, p_value = float(test.statistic), float(test.pvalue)
            records.append(
                {
                    "model": model,
                    "prompt_id": prompt_id,
                    "group": group,
                    "n_tokens": int(inside.sum()),
                    "median_percentile": float(np.median(percentiles[inside])),
                    "n_bottom_1pct": int((percentiles[inside] < BOTTOM_PERCENT).sum()),
                    "mannwhitney_u": u,
                    "p_value": p_value,
                    "p_adjusted": float("nan"),
                    "prob_higher": u / (inside.sum() * (~inside).sum()) if (~inside).any() else float("nan"),
                }
            )
    table = pd.DataFrame.from_records(records, columns=GROUP_COLUMNS)
    table["p_adjusted"] = benjamini_hochberg(table["p_value"])
    return table
