"""What the daemon does with its gateway's bandit reports: their counts go to `BanditState` (the one place they
add up), the totals of every gateway go back to the gateway (`GatewayProcess.on_bandit`), and the ground truths
clients posted with their rewards go to the model monitor over its HTTP API (`POST /data/labels`, the label of
one logged request), each in a task of its own with a timeout, never holding up the reply. Without a monitor, or
when it refuses a label (a request it has no log of), the truth is dropped and the log says why.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from wharf.control.bandit_state import BanditState
from wharf.gateway.bandits import ArmTable, BanditReport, GroundTruth

log = logging.getLogger(__name__)
LABEL_TIMEOUT_S = 5.0
_MAX_POSTING = 256  # labels on their way to the monitor at once; more are dropped


class BanditLink:
    def __init__(self, state: BanditState, monitor_url: str | None) -> None:
        self.state = state
        self._monitor_url = monitor_url
        self._http = httpx.AsyncClient(timeout=LABEL_TIMEOUT_S) if monitor_url else None
        self._posting: set[asyncio.Task[None]] = set()

    def received(self, report: BanditReport) -> tuple[ArmTable, ArmTable]:
        """Apply `report`; every gateway's totals, and those of the reporting gateway's counts they include."""
        applied = self.state.apply(report)
        for truth in report.truths:
            self._label(truth)
        return self.state.totals(), applied

    async def close(self) -> None:
        for task in self._posting:
            task.cancel()
        await asyncio.gather(*self._posting, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    def _label(self, truth: GroundTruth) -> None:
        if self._http is None or len(self._posting) >= _MAX_POSTING:
            log.info("ground truth dropped: no model monitor, or too many labels on their way to it")
            return
        task = asyncio.get_running_loop().create_task(self._post(self._http, truth))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def _post(self, http: httpx.AsyncClient, truth: GroundTruth) -> None:
        body = {"modelId": truth.model, "requestId": truth.request_id, "labels": truth.labels}
        try:
            answer = await http.post(f"{self._monitor_url}/data/labels", json=body)
        except httpx.HTTPError as e:
            log.warning("the model monitor did not take a ground truth", extra={"reason": str(e)})
            return
        if answer.status_code >= 400:
            log.warning(
                "the model monitor refused a ground truth",
                extra={"model": truth.model, "request_id": truth.request_id, "reason": answer.text[:500]},
            )
