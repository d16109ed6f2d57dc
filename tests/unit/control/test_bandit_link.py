"""Ground truth posted with a reward reaches a real model monitor over its HTTP API as the label of the logged
request; the gateway's report is applied and answered with the totals meanwhile."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.unit.monitor.test_api import log_exchange, serving, v2_request, v2_response
from wharf.bandit.arms import ArmStats
from wharf.control.bandit_link import BanditLink
from wharf.control.bandit_state import BanditState
from wharf.gateway.bandits import BanditReport, GroundTruth

pytestmark = pytest.mark.anyio
KEY = "InferenceGraph/default/g/root"


async def test_ground_truth_goes_to_the_monitor_as_a_label(tmp_path: Path) -> None:
    async with serving(tmp_path) as (monitor, client):
        await log_exchange(client, "r1", v2_request([5.1, 3.5, 1.4, 0.2]), v2_response(1))
        await monitor.store.flush()
        link = BanditLink(BanditState(tmp_path / "wharf.db"), str(client.base_url).rstrip("/"))
        try:
            counted = {KEY: {"iris": ArmStats("iris", pulls=1).rewarded(1.0)}}
            truth = GroundTruth("default", "iris", "r1", {"predict": [0]})
            totals, applied = link.received(BanditReport("g1", counted, (truth,)))
            assert totals == applied == counted
            deadline = time.monotonic() + 10
            while (await client.get("/info")).json()["iris"]["labelled"] != 1:
                assert time.monotonic() < deadline, "the label did not reach the monitor"
                await asyncio.sleep(0.05)
            assert monitor.store.labelled("iris")["ground_truth:predict"].tolist() == [0]
        finally:
            await link.close()
            link.state.close()
