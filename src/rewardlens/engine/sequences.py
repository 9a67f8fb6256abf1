"""Which ids each response is scored as: the score requests of a scorer, built from its template alone.

Requests need no weights, so `rewardlens render` shows exactly what a scorer would score without loading
a model. Under `sequences="exact"` (the default) a single-token response is `prefix_ids + [id] + end`,
built from ids; a text response is the tokenization of the rendered conversation. Under `"published"`
every response is the published pipeline's re-tokenized text (see `models.templates`), so published
optimal/pessimal numbers can be reproduced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rewardlens.engine.requests import ScoreRequest
from rewardlens.errors import UserError
from rewardlens.models.templates import ConversationTemplate


@dataclass(frozen=True)
class RequestBuilder:
    """The requests of a scorer of `kind` (`reward` or `lm`) with `template`."""

    template: ConversationTemplate
    kind: str
    include_end: bool = False
    max_length: int | None = None

    def end_ids(self) -> list[int]:
        """The tokens scored after the response: the whole suffix for an RM, at most its first token for an LM."""
        if self.kind == "reward":
            return list(self.template.suffix_ids)
        return self.template.suffix_ids[:1] if self.include_end else []

    def token_requests(self, prompt: str, token_ids: Sequence[int]) -> list[ScoreRequest]:
        """One request per single-token response."""
        if self.template.sequences == "published":
            sequences = self.template.published_token_ids(prompt, token_ids)
            return self._split(sequences, self.template.prompt_ids(prompt))
        prefix = tuple(self.template.prefix_ids(prompt))
        end = tuple(self.end_ids())
        self.check_length(len(prefix) + 1 + len(end))
        return [ScoreRequest(prefix, (int(token_id), *end)) for token_id in token_ids]

    def text_requests(self, prompt: str, responses: Sequence[str]) -> list[ScoreRequest]:
        """One request per text response."""
        if self.template.sequences == "published":
            sequences = self.template.published_ids(prompt, responses)
        else:
            sequences = [self.template.conversation_ids(prompt, response) for response in responses]
        return self._split(sequences, self.template.prompt_ids(prompt))

    def _split(self, sequences: Sequence[list[int]], prompt_ids: Sequence[int]) -> list[ScoreRequest]:
        # A language model scores the response (and, with include_end, the end of turn), not the whole suffix.
        suffix = self.template.suffix_ids
        requests = []
        for ids in sequences:
            if self.kind == "lm" and suffix and ids[-len(suffix) :] == suffix:
                ids = ids[: len(ids) - len(suffix)] + self.end_ids()
            self.check_length(len(ids))
            requests.append(ScoreRequest.split(ids, prompt_ids))
        return requests

    def check_length(self, n_tokens: int) -> None:
        if self.max_length is not None and n_tokens > self.max_length:
            raise UserError(
                f"prompt plus response is {n_tokens} tokens, longer than the model's context of {self.max_length}"
            )
