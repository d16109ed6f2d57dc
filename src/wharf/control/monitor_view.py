"""What the web console may read of the model monitor, through the control API, and the monitor's figures over time.

The browser cannot ask the monitor itself: it listens on another port, without the control API's token. So the
control API passes on a few of the monitor's read-only answers (`PATHS`: GET only, no query but `type`), under the
control API's own authentication, with whatever could be a secret hidden (`get`; `wharf.control.redaction`). And
since the monitor keeps only each metric's latest value, `sample` (called by the daemon once a resync; it asks the
monitor every `History.interval_s`) records into the `History`:
- `metric/ID`: each scheduled metric request's value (`value`, or one field per column of `namedValues`);
- `detector/ID`: each detector's rows `inspected` and `detected` so far.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx

from wharf.control.history import History
from wharf.control.redaction import redacted
from wharf.errors import InvalidInput, NotFound, ServerUnreachable

log = logging.getLogger(__name__)
ASK_TIMEOUT_S = 5.0
#: The monitor's answers the console reads: its status per model, the models' schemas, the scheduled metrics with
#: their latest values, and the detectors with their counts.
PATHS = re.compile(r"status|info|info/tags|metrics/all/requests|detectors|detectors/[\w-]{1,64}")
METRIC = "metric/"
DETECTOR = "detector/"


class MonitorView:
    def __init__(self, url: str | None, history: History) -> None:
        """`url`: the monitor's (None: `wharf up` runs none)."""
        self.url = url
        self.history = history
        self._http = httpx.AsyncClient(timeout=ASK_TIMEOUT_S)
        self._sampled: float | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def get(self, path: str, type_: str | None = None) -> Any:
        """The monitor's answer to `GET /{path}` (one of `PATHS`); NotFound for another path, ServerUnreachable when
        there is no monitor or it does not answer. The monitor's own errors are passed on as they are."""
        if not PATHS.fullmatch(path):
            raise NotFound(f"the console reads only the monitor's {PATHS.pattern.replace('|', ', ')}; not {path!r}")
        if self.url is None:
            raise ServerUnreachable("no model monitor runs with this `wharf up` (WHARF_MONITOR_ENABLED=false)")
        params = {"type": type_} if type_ is not None else {}
        try:
            answer = await self._http.get(f"{self.url}/{path}", params=params)
            body = answer.json()
        except (httpx.HTTPError, ValueError) as e:
            raise ServerUnreachable(f"the model monitor at {self.url} did not answer: {e}") from None
        if answer.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            raise _error(answer.status_code, error or answer.text)
        return redacted(body)  # a detector's reply URL, say, may carry a token

    async def sample(self, now: float) -> None:
        """Record the monitor's metric values and detector counts, once every `History.interval_s`."""
        if self.url is None or (self._sampled is not None and now - self._sampled < self.history.interval_s):
            return
        self._sampled = now
        try:
            requests = (await self.get("metrics/all/requests"))["requests"]
            detectors = (await self.get("detectors"))["detectors"]
        except (ServerUnreachable, KeyError, TypeError) as e:  # restarting, or busy: the next sample tries again
            log.debug("monitor figures not sampled", extra={"reason": str(e)})
            return
        for request in requests:
            values = _metric_values(request.get("status") or {})
            if values:
                self.history.record(METRIC + request["id"], now, values)
        for detector in detectors:
            counts = detector.get("counts") or {}
            self.history.record(
                DETECTOR + detector["id"],
                now,
                {"inspected": counts.get("inspected"), "detected": counts.get("detected")},
            )


def _metric_values(status: dict[str, Any]) -> dict[str, float | None]:
    """A scheduled metric's latest value(s) as a sample: `value`, or one field per column (none before the first
    computation)."""
    if status.get("namedValues"):
        return dict(status["namedValues"])
    if status.get("value") is not None:
        return {"value": status["value"]}
    return {}


def _error(status: int, message: str) -> Exception:
    """The monitor's refusal, as the control API answers it: 404 and other 4xx as such, a 5xx as a bad gateway."""
    if status == 404:
        return NotFound(f"model monitor: {message}")
    if status < 500:
        return InvalidInput(f"model monitor: {message}")
    return ServerUnreachable(f"model monitor answered {status}: {message}")
