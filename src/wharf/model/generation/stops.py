"""Token ids to text, delta by delta, cut at the first stop sequence.

Each new token decodes the sequence's generated ids again (a fast tokenizer: microseconds for a few hundred tokens)
so that multi-token characters and tokenizer spacing come out right; text that ends in a partial character, or that
could still be the start of a stop sequence, is held back until the next token settles it.
"""

from __future__ import annotations

from typing import Any


class TextStream:
    """The text of one sequence's generated tokens, handed out in deltas that never include a stop sequence."""

    def __init__(self, tokenizer: Any, stop: tuple[str, ...]) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.ids: list[int] = []
        self.sent = 0  # characters handed out
        self.stopped = False

    def add(self, token: int) -> str:
        """The new text that `token` settles ('' if none yet); `stopped` is set once a stop sequence shows up."""
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cut = self._stop_at(text)
        if cut is not None:
            self.stopped = True
            return self._send(text, cut)
        if text.endswith("\ufffd"):  # a character split across tokens
            return ""
        return self._send(text, len(text) - self.hold)

    def rest(self) -> str:
        """What was held back, handed out when the sequence ends without a stop sequence."""
        if self.stopped:
            return ""
        return self._send(self.tokenizer.decode(self.ids, skip_special_tokens=True), None)

    def _stop_at(self, text: str) -> int | None:
        start = max(0, self.sent - self.hold)
        found = [i for i in (text.find(s, start) for s in self.stop) if i >= 0]
        return min(found) if found else None

    def _send(self, text: str, end: int | None) -> str:
        end = len(text) if end is None else end
        if end <= self.sent:
            return ""
        delta, self.sent = text[self.sent : end], end
        return delta
