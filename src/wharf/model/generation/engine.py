"""The generation loop of one model: one thread that admits, prefills and decodes sequences in a continuous batch.

Requests come in from the event loop (`submit`), are queued by the scheduler (`scheduler.Schedule`), and join the
running batch between decode steps; a finished or cancelled sequence leaves between steps too. Each step is one
forward pass over every running sequence (`batch.DecodeBatch`); torch releases the GIL inside its kernels, so the
event loop keeps answering while a step runs. Tokens reach each request as `Delta`s on an asyncio queue of its
own, ending with one `Done`; a step's events for every sequence cross to the event loop together, in one
`call_soon_threadsafe` (one wake-up of the loop per step, not one per token: at 16 sequences, a 16th of the
wake-ups that would otherwise take the cores from the step's own threads); a prefill's first token goes out as
soon as it is chosen.

`cancel` (the client went away) takes the sequence out before the next step: generation for it stops at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from wharf.errors import WharfError
from wharf.model.generation.batch import DecodeBatch, prefill
from wharf.model.generation.params import SamplingParams
from wharf.model.generation.sampling import generator_of, next_tokens
from wharf.model.generation.scheduler import Entry, Schedule
from wharf.model.generation.stops import TextStream

log = logging.getLogger(__name__)
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class Delta:
    """New text of a sequence (it may span several tokens, or be held back: see `stops`)."""

    text: str


@dataclass(frozen=True, slots=True)
class Done:
    """The sequence ended: why, and how many tokens it read and wrote."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class Failed:
    """The model failed during a step: the sequence ends without an answer."""

    reason: str


class Generation:
    """One request's sequence as its consumer sees it: iterate it for `Delta`s; `done` is set at the end."""

    def __init__(self, engine: Engine, id: int, prompt: list[int], params: SamplingParams) -> None:
        self.engine, self.id, self.prompt, self.params = engine, id, prompt, params
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[Delta | Done | Failed] = asyncio.Queue()
        self.done: Done | None = None

    async def __aiter__(self) -> AsyncIterator[Delta]:
        while self.done is None:
            event = await self.events.get()
            if isinstance(event, Done):
                self.done = event
            elif isinstance(event, Failed):
                raise WharfError(f"generation failed: {event.reason}")
            else:
                yield event

    async def text(self) -> str:
        """The whole text, once the sequence has ended."""
        return "".join([delta.text async for delta in self])

    def cancel(self) -> None:
        """Stop generating for this sequence (nothing more is sent)."""
        if self.done is None:
            self.engine.cancel(self.id)


class _Sequence:
    """The engine thread's state of one sequence."""

    __slots__ = ("request", "generator", "text", "generated", "next")

    def __init__(self, request: Generation, tokenizer: Any) -> None:
        self.request = request
        self.generator = generator_of(request.params)
        self.text = TextStream(tokenizer, request.params.stop)
        self.generated = 0
        self.next = 0

    @property
    def entry(self) -> Entry:
        return Entry(self.request.id, len(self.request.prompt) + self.request.params.max_tokens)


class Engine:
    """Continuous batching for one causal LM. `running` and `waiting` are the sequence counts, for metrics."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        stop_tokens: Iterable[int],
        max_sequences: int,
        max_tokens: int,
        name: str = "model",
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.stop_tokens = frozenset(stop_tokens)
        self.schedule = Schedule(max_sequences, max_tokens)
        self.on_step: Callable[[int], None] | None = None  # told each decode step's batch size
        self.on_end: Callable[[int, int], None] | None = None  # told each sequence's prompt and generated tokens
        self.running = self.waiting = 0
        self._ids = itertools.count()
        self._wake = threading.Condition()
        self._incoming: list[_Sequence] = []
        self._cancelled: set[int] = set()
        self._closed = False
        self._sequences: dict[int, _Sequence] = {}
        self._rows: list[_Sequence] = []
        self._outbox: list[tuple[Generation, Delta | Done | Failed]] = []  # this turn's events, sent at its end
        self._batch = DecodeBatch(model)
        self._thread = threading.Thread(target=self._run, name=f"generate-{name}", daemon=True)
        self._thread.start()

    def fits(self, tokens: int) -> bool:
        """Whether a sequence reserving `tokens` (prompt + most new tokens) can ever run."""
        return self.schedule.fits(Entry(-1, tokens))

    def submit(self, prompt: list[int], params: SamplingParams) -> Generation:
        """Queue the prompt's generation (call from the event loop; `fits` must hold)."""
        generation = Generation(self, next(self._ids), prompt, params)
        sequence = _Sequence(generation, self.tokenizer)
        with self._wake:
            self._incoming.append(sequence)
            self._wake.notify()
        return generation

    def cancel(self, id: int) -> None:
        with self._wake:
            self._cancelled.add(id)
            self._wake.notify()

    def close(self) -> None:
        """Stop the loop (sequences still running get no `Done`); returns once the thread has ended."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._incoming or self._cancelled or self._rows or self._closed):
                    self._wake.wait()
                if self._closed:
                    return
                incoming, self._incoming = self._incoming, []
                cancelled, self._cancelled = self._cancelled, set()
            try:
                self._turn(incoming, cancelled)
            except Exception as e:  # a fault of the model: every sequence it held fails, the loop goes on
                log.exception("generation step failed")
                for sequence in list(self._sequences.values()):
                    self._outbox.append((sequence.request, Failed(f"{type(e).__name__}: {e}")))
                    self._forget(sequence)
                self._rows, self._batch = [], DecodeBatch(self.model)
                self.running, self.waiting = 0, 0
            self._flush()

    def _flush(self) -> None:
        """Hand the turn's events to their consumers: one call into each event loop they live on."""
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, []
        loops = {request.loop for request, _ in outbox}
        for loop in loops:
            mine = outbox if len(loops) == 1 else [(r, e) for r, e in outbox if r.loop is loop]
            try:
                loop.call_soon_threadsafe(_deliver, mine)
            except RuntimeError:  # that event loop has closed: nobody is left to read its events
                pass

    def _turn(self, incoming: list[_Sequence], cancelled: set[int]) -> None:
        """Between two steps: take in new and cancelled sequences, admit, prefill those admitted, then one step."""
        for sequence in incoming:
            self._sequences[sequence.request.id] = sequence
            self.schedule = self.schedule.submitted(sequence.entry)
        for id in cancelled:
            if id in self._sequences:
                self._leave(self._sequences[id])
        self.schedule, joining = self.schedule.admitted()
        for entry in joining:
            self._prefill(self._sequences[entry.id])
            self._flush()  # its first token goes out now, not after the other prefills
        if self._rows:
            self._step()
        self.running, self.waiting = len(self.schedule.running), len(self.schedule.waiting)

    def _prefill(self, sequence: _Sequence) -> None:
        prompt = sequence.request.prompt
        cache, logits = prefill(self.model, prompt)
        token = next_tokens(logits.unsqueeze(0), [sequence.request.params], [sequence.generator])[0]
        if not self._advance(sequence, token):
            self._batch.join(cache, len(prompt))
            self._rows.append(sequence)

    def _step(self) -> None:
        rows = self._rows
        if self.on_step is not None:
            self.on_step(len(rows))
        logits = self._batch.step([s.next for s in rows])
        chosen = next_tokens(logits, [s.request.params for s in rows], [s.generator for s in rows])
        keep = [i for i, (s, token) in enumerate(zip(rows, chosen, strict=True)) if not self._advance(s, token)]
        self._batch.keep(keep)
        self._rows = [rows[i] for i in keep]

    def _advance(self, sequence: _Sequence, token: int) -> bool:
        """Take the sequence's next token; whether it has ended (then it has left the schedule)."""
        sequence.generated += 1
        request = sequence.request
        if token in self.stop_tokens:
            self._send(sequence, sequence.text.rest())
            self._finish(sequence, "stop")
            return True
        self._send(sequence, sequence.text.add(token))
        if sequence.text.stopped:
            self._finish(sequence, "stop")
            return True
        if sequence.generated >= request.params.max_tokens:
            self._send(sequence, sequence.text.rest())
            self._finish(sequence, "length")
            return True
        sequence.next = token
        return False

    def _send(self, sequence: _Sequence, text: str) -> None:
        if text:
            self._outbox.append((sequence.request, Delta(text)))

    def _finish(self, sequence: _Sequence, reason: FinishReason) -> None:
        request = sequence.request
        self._outbox.append((request, Done(reason, len(request.prompt), sequence.generated)))
        self._forget(sequence)

    def _leave(self, sequence: _Sequence) -> None:
        """A cancelled sequence: out of the queue or the batch, with no more events."""
        if sequence in self._rows:
            keep = [i for i, s in enumerate(self._rows) if s is not sequence]
            self._batch.keep(keep)
            self._rows = [self._rows[i] for i in keep]
        self._forget(sequence)

    def _forget(self, sequence: _Sequence) -> None:
        """The sequence leaves (finished, cancelled or failed): counted, out of the schedule."""
        self.schedule = self.schedule.left(sequence.request.id)
        self._sequences.pop(sequence.request.id, None)
        if self.on_end is not None:
            self.on_end(len(sequence.request.prompt), sequence.generated)


def _deliver(events: list[tuple[Generation, Delta | Done | Failed]]) -> None:
    """On the event loop: put each event on its request's queue, in the order they came."""
    for request, event in events:
        request.events.put_nowait(event)
