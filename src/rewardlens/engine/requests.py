"""What the engines score: a prompt part whose KV can be shared, and a continuation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreRequest:
    """One sequence to score: `prompt_ids + continuation_ids`.

    Requests with the same `prompt_ids` share one prompt forward pass in the cached engine.
    `continuation_ids` is never empty.
    """

    prompt_ids: tuple[int, ...]
    continuation_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.continuation_ids:
            raise ValueError("a score request needs at least one continuation token")
        if not self.prompt_ids:
            raise ValueError("a score request needs at least one prompt token")

    @property
    def ids(self) -> list[int]:
        return [*self.prompt_ids, *self.continuation_ids]

    @classmethod
    def split(cls, ids: Sequence[int], prompt_ids: Sequence[int]) -> ScoreRequest:
        """Split a full sequence after its longest common prefix with `prompt_ids`.

        The prompt KV is reused only where the prompt ids are an exact prefix of the sequence;
        at least one token always stays in the continuation.
        """
        shared = 0
        limit = min(len(prompt_ids), len(ids) - 1)
        while shared < limit and ids[shared] == prompt_ids[shared]:
            shared += 1
        shared = max(shared, 1)
        return cls(tuple(ids[:shared]), tuple(ids[shared:]))


def group_by_prompt(requests: Sequence[ScoreRequest]) -> dict[tuple[int, ...], list[int]]:
    """Indices of the requests that share each prompt, in first-seen order."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, request in enumerate(requests):
        groups[request.prompt_ids].append(index)
    return dict(groups)
