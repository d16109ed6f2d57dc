"""A fake `Call` for the graph runner's tests: canned answers per target, and a record of every call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import cycle

import orjson

from wharf.graph import CallTarget, ServiceTarget, StepAnswer, service_call


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"{}"
    delay_s: float = 0.0
    error: Exception | None = None


Script = Answer | Callable[[bytes], Answer]


def echo(name: str) -> Script:
    """What a scripted service answers by default: its name and the JSON it got."""
    return lambda body: Answer(body=orjson.dumps({"by": name, "got": orjson.loads(body)}))


@dataclass
class FakeCall:
    """Answers each call by its target's name (a service's name or a URL) from `script`, else by `echo`; a service
    speaks the protocol `protocols` gives it (v1 by default), serving the model of its name, as the gateway says."""

    script: Mapping[str, Script] = field(default_factory=dict)
    protocols: Mapping[str, str] = field(default_factory=dict)
    calls: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    async def __call__(self, target: CallTarget, body: bytes, headers: Mapping[str, str]) -> StepAnswer:
        name = target.name if isinstance(target, ServiceTarget) else target.url
        self.calls.append((name, body, dict(headers)))
        scripted = self.script.get(name, echo(name))
        answer = scripted(body) if callable(scripted) else scripted
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        if answer.error is not None:
            raise answer.error
        if not isinstance(target, ServiceTarget):
            return StepAnswer(answer.status, answer.body)
        return StepAnswer(answer.status, answer.body, service_call(self.protocols.get(name, "v1"), name).described)

    @property
    def called(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    def body_of(self, name: str) -> object:
        """The decoded body of the (one) call to `name`."""
        (body,) = [body for called, body, _ in self.calls if called == name]
        return orjson.loads(body)


class ScriptedRng:
    """Answers `randrange(100)` with `points`, in turn, forever."""

    def __init__(self, points: Iterable[int]) -> None:
        self._points = cycle(points)

    def randrange(self, stop: int, /) -> int:
        point = next(self._points)
        assert 0 <= point < stop
        return point
