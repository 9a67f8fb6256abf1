"""Every token id of a tokenizer with the metadata a sweep filters and reports on.

Columns: `token_id`, `token` (the raw vocabulary string, e.g. `Ġhello` or `▁hello`), `response` (the
text of that single id as the model reads it), `is_special` (control, added and unused/reserved
tokens), `leading_space`, `is_word` (letters only after one optional leading space).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from rewardlens.errors import UserError

# Unused/reserved slots that tokenizers ship as ordinary-looking entries: `<unused12>`,
# `<|reserved_special_token_3|>`, `[unused5]`, `<extra_id_7>`, `<|extra_0|>`.
_RESERVED = re.compile(r"^(<\|?(unused|reserved|extra)[\w-]*\|?>|\[unused\d+\])$", re.IGNORECASE)
# Letters only (any script), after at most one leading space.
_WORD = re.compile(r" ?[^\W\d_]+")
# Leading-space markers of SentencePiece (`▁`) and byte-level BPE (`Ġ`) vocabularies.
_SPACE_MARKERS = ("\u2581", "\u0120")

def vocabulary_size(tokenizer: Any) -> int:
    """Ids 0 .. len(tokenizer)-1: the base vocabulary plus added tokens."""
    return len(tokenizer)


def _special_ids(tokenizer: Any) -> set[int]:
    special = {int(i) for i in getattr(tokenizer, "all_special_ids", []) if i is not None}
    # Added tokens count as special whether or not they are flagged so (chat markers, tool tags, ...).
    special.update(int(i) for i in getattr(tokenizer, "added_tokens_decoder", {}))
    return special


def _response_text(token: str | None, decoded: str) -> str:
    # Some SentencePiece decoders strip the leading space of a sequence's first token; the response
    # sits after the prompt in the conversation, where the space is real, so restore it.
    if token and token.startswith(_SPACE_MARKERS) and not decoded.startswith(" "):
        return " " + decoded
    return decoded


def vocabulary_table(tokenizer: Any, token_ids: range | None = None) -> pd.DataFrame:
    """The metadata of `token_ids` (default: the whole vocabulary), one row per id, in id order."""
    ids = range(vocabulary_size(tokenizer)) if token_ids is None else token_ids
    id_list = list(ids)
    tokens = tokenizer.convert_ids_to_tokens(id_list)
    decoded = tokenizer.batch_decode([[i] for i in id_list], clean_up_tokenization_spaces=False)
    special_ids = _special_ids(tokenizer)
    responses = [_response_text(tok, text) for tok, text in zip(tokens, decoded, strict=True)]
    raw = ["" if tok is None else str(tok) for tok in tokens]
    is_special = [i in special_ids or bool(_RESERVED.match(tok)) for i, tok in zip(id_list, raw, strict=True)]
    return pd.DataFrame(
        {
            "token_id": np.asarray(id_list, dtype=np.int64),
            "token": raw,
            "response": responses,
            "is_special": np.asarray(is_special, dtype=bool),
            "leading_space": np.asarray([text.startswith(" ") for text in responses], dtype=bool),
            "is_word": np.asarray([bool(_WORD.fullmatch(text)) for text in responses], dtype=bool),
        }
    )


def parse_token_filter(spec: str, size: int) -> range | str:
    """`all`, `words`, or `START:END` (ids START .. END-1; either side may be omitted)."""
    if spec in ("all", "words"):
        return spec
    start_text, sep, end_text = spec.partition(":")
    if not sep:
        raise UserError(f"--tokens {spec!r}: use all, words or START:END")
    try:
        start = int(start_text) if start_text.strip() else 0
        end = int(end_text) if end_text.strip() else size
    except ValueError as err:
        raise UserError(f"--tokens {spec!r}: START and END must be integers") from err
    if not 0 <= start < end <= size:
        raise UserError(f"--tokens {spec}: outside the vocabulary (ids 0..{size - 1}) or empty")
    return range(start, end)


def select_tokens(tokenizer: Any, tokens: str = "all", include_special: bool = False) -> pd.DataFrame:
    """The candidates of a sweep: the vocabulary (or an id range, or the words), specials left out
    unless `include_special`. Only the ids of a range are decoded."""
    chosen = parse_token_filter(tokens, vocabulary_size(tokenizer))
    table = vocabulary_table(tokenizer, chosen if isinstance(chosen, range) else None)
    keep = np.ones(len(table), dtype=bool)
    if not include_special:
        keep &= ~table["is_special"].to_numpy()
    if chosen == "words":
        keep &= table["is_word"].to_numpy()
    selected = table[keep].reset_index(drop=True)
    if selected.empty:
        raise UserError(f"--tokens {tokens}: no candidate tokens left after filtering")
    return selected
