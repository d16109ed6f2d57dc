"""Bandit feedback: which arm answered which recent request, and the rewards clients post for those answers.

A request routed by a bandit (a graph's Bandit node, or a service whose rollout is a bandit) is remembered by its
request id (`x-request-id`, the client's or one the gateway made) with the arms it was sent to. A client then
posts `{"request_id": ID, "reward": R}` to the graph's or service's URL + `/feedback`; Seldon Core's shape
`{"response": {"meta": {"puid": ID}}, "reward": R}` is accepted too (its `puid` is the request id: copy the
answer's `x-request-id` there). An optional `truth` is the true output of the request: an object of output name ->
value per row, or a value (or list of values per row) of the model's one output (`output-0`, as the monitor names a
V1 answer's), forwarded to the model monitor as ground truth.

Each id earns one reward, which every arm the request went to gets (a request through several Bandit nodes; and
an id a client used for several requests, while it is unrewarded): a second is refused (409), as is an id never
routed by this bandit (404) or one older than the memory's time to live (410, for as long again; after that it is
forgotten, and unknown). The memory holds at most `capacity` ids, the oldest forgotten first. Remembering costs one OrderedDict insertion per routed request
(and an eviction once full); nothing here runs for requests that no bandit routes.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from wharf.errors import InvalidInput, WharfError


class FeedbackRefused(WharfError):
    """A reward for a request id that cannot earn one (unknown, expired, already rewarded)."""

    grpc_code = "FAILED_PRECONDITION"

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status


class Pull(NamedTuple):  # made per routed request: a tuple is the cheapest to make
    """One arm a request went to: the bandit's key, the arm, and the model answering there (for ground truth)."""

    bandit: str
    arm: str
    namespace: str
    model: str


@dataclass(frozen=True, slots=True)
class Feedback:
    """A client's reward for the answer to one request, and the request's true output where it knows it."""

    request_id: str
    reward: float
    truth: dict[str, list[Any]] | None = None


def parse_feedback(body: bytes) -> Feedback:
    """The feedback a body carries; InvalidInput naming the field that is wrong."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput('the feedback body must be JSON: {"request_id": ..., "reward": ...}') from None
    if not isinstance(doc, dict):
        raise InvalidInput('the feedback body must be a JSON object: {"request_id": ..., "reward": ...}')
    reward = doc.get("reward")
    if isinstance(reward, bool) or not isinstance(reward, int | float) or not math.isfinite(reward):
        raise InvalidInput(f"reward: must be a finite number, got {reward!r}")
    return Feedback(_request_id(doc), float(reward), _truth(doc["truth"]) if "truth" in doc else None)


def _request_id(doc: dict[str, Any]) -> str:
    if "request_id" in doc:
        request_id, field = doc["request_id"], "request_id"
    elif "response" in doc:
        response = doc["response"]
        meta = response.get("meta") if isinstance(response, dict) else None
        request_id = meta.get("puid") if isinstance(meta, dict) else None
        field = "response.meta.puid"
    else:
        raise InvalidInput("request_id: required (the answer's x-request-id), or Seldon's response.meta.puid")
    if not isinstance(request_id, str) or not request_id:
        raise InvalidInput(f"{field}: must be the answer's x-request-id (a non-empty string), got {request_id!r}")
    return request_id


def _truth(truth: Any) -> dict[str, list[Any]]:
    if isinstance(truth, dict):
        if not truth or not all(isinstance(k, str) and isinstance(v, list) and v for k, v in truth.items()):
            raise InvalidInput("truth: an object must map each output's name to its true values (a list per row)")
        return truth
    if truth is None or (isinstance(truth, list) and not truth):
        raise InvalidInput("truth: must be the true output (a value, a list per row, or an object by output name)")
    return {"output-0": truth if isinstance(truth, list) else [truth]}


class _Remembered:
    __slots__ = ("pulls", "expires", "rewarded")

    def __init__(self, pulls: list[Pull], expires: float) -> None:
        self.pulls = pulls
        self.expires = expires
        self.rewarded = False


class RecentRequests:
    """Request id -> the arms it went to, for `ttl_s` seconds (by `clock`), at most `capacity` ids."""

    def __init__(self, ttl_s: float, capacity: int, clock: Callable[[], float]) -> None:
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._clock = clock
        self._ids: OrderedDict[str, _Remembered] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def remember(self, request_id: str, pull: Pull) -> None:
        """`request_id` went to `pull`'s arm (a request that passes several Bandit nodes has several)."""
        ids = self._ids
        entry = ids.get(request_id)
        if entry is not None and not entry.rewarded and entry.expires > self._clock():
            entry.pulls.append(pull)
            return
        if entry is not None:  # an id used again: the newer request is the one remembered
            del ids[request_id]
        ids[request_id] = _Remembered([pull], self._clock() + self.ttl_s)
        if len(ids) > self.capacity:
            ids.popitem(last=False)

    def arms(self, request_id: str) -> str:
        """The arms `request_id` went to, comma-separated in the order chosen (the `x-wharf-arm` header)."""
        entry = self._ids.get(request_id)
        return ",".join(pull.arm for pull in entry.pulls) if entry is not None else ""

    def claim(
        self, request_id: str, bandits: Callable[[str], bool], check: Callable[[Pull], None] = lambda pull: None
    ) -> tuple[Pull, ...]:
        """The pulls of `request_id` whose bandit `bandits` accepts, now rewarded; FeedbackRefused saying why not,
        or what `check` raises of one of them (the id stays unrewarded then)."""
        now = self._clock()
        self._forget(now)
        entry = self._ids.get(request_id)
        pulls = tuple(p for p in entry.pulls if bandits(p.bandit)) if entry is not None else ()
        if not pulls:
            raise FeedbackRefused(
                f"request_id: {request_id!r} is unknown here (no answer of this bandit carried it"
                f" in the last {self.ttl_s:g} s)",
                404,
            )
        assert entry is not None
        if entry.rewarded:
            raise FeedbackRefused(f"request_id: {request_id!r} was already rewarded (one reward per answer)", 409)
        if entry.expires <= now:
            raise FeedbackRefused(
                f"request_id: {request_id!r} expired: rewards are taken for {self.ttl_s:g} s after the answer", 410
            )
        for pull in pulls:
            check(pull)
        entry.rewarded = True
        return pulls

    def _forget(self, now: float) -> None:
        """Drop the ids past twice their time to live (until then, an expired id is refused as expired)."""
        ids = self._ids
        while ids:
            first = next(iter(ids.values()))
            if first.expires + self.ttl_s > now:
                return
            ids.popitem(last=False)
