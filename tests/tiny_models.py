"""Tiny random models with a tokenizer trained on the spot, saved as ordinary model directories."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CORPUS = [
    "What, in one word, is the greatest thing ever?",
    "What is the best thing in the world? Please answer in one word only.",
    "love family freedom honesty kindness power success wealth peace justice courage",
    "The quick brown fox jumps over the lazy dog. Hello world, hello there!",
    "agency communion ambition warmth competence trust friendship achievement",
] * 20

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n{{ message['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

SPECIALS = {
    "llama": (["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"], LLAMA3),
    "gemma2": (["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<pad>"], GEMMA),
    "qwen2": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], CHATML),
}


def train_tokenizer(arch: str, vocab_size: int = 320, chat_template: bool = True):  # type: ignore[no-untyped-def]
    """A byte-level BPE tokenizer with the special tokens and chat template of `arch`."""
    from transformers import PreTrainedTokenizerFast

    specials, template = SPECIALS[arch]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    if arch in ("llama", "gemma2"):
        # Llama and Gemma tokenizers add BOS themselves; their templates render it too (the double-BOS trap).
        from tokenizers import processors

        bos = specials[0]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tokenizer.token_to_id(bos))]
        )
    names = {
        "llama": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<|eot_id|>"},
        "gemma2": {"bos_token": "<bos>", "eos_token": "<end_of_turn>", "pad_token": "<pad>"},
        "qwen2": {"eos_token": "<|im_end|>", "pad_token": "<|im_end|>"},
    }[arch]
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **names)
    if chat_template:
        fast.chat_template = template
    return fast


def tiny_config(arch: str, vocab_size: int, tokenizer) -> object:  # type: ignore[no-untyped-def]
    from transformers import Gemma2Config, LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=1,
    )
    if arch == "llama":
        return LlamaConfig(**common)
    if arch == "gemma2":
        # A window shorter than the prompts exercises the sliding-window layers.
        return Gemma2Config(**common, head_dim=8, sliding_window=6, query_pre_attn_scalar=8)
    return Qwen2Config(**common)


def build_tiny_model(path: Path, arch: str, head: str, seed: int = 0, chat_template: bool = True) -> Path:
    """Save a tiny `arch` model with a `head` ('reward' or 'lm') and its tokenizer to `path`."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    tokenizer = train_tokenizer(arch, chat_template=chat_template)
    config = tiny_config(arch, len(tokenizer), tokenizer)
    torch.manual_seed(seed)
    auto = AutoModelForSequenceClassification if head == "reward" else AutoModelForCausalLM
    model = auto.from_config(config)
    # Random init gives near-zero scores; larger weights make score differences visible.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
