"""The detectors' API, a FastAPI router the monitor's app mounts (errors answer `{"error": ...}` there):

- `POST /detectors/outliers` (`configs.OutlierBody`) and `POST /detectors/adversarial` (`configs.AdversarialBody`):
  fit the detector on the model's reference rows and run it on the model's logged rows, in place of the model's
  detector of that kind; answers the detector as listed, with `replaced` (the id of the one it replaced, or None).
- `GET /detectors`: `{"detectors": [...]}`, oldest first; `GET /detectors/{id}`: one.
- `DELETE /detectors/{id}`: stop and forget one; answers it as it was.
A detector is listed as `{"id", "type", <its configuration, camelCase>, "created", "state", "error", "fitted",
"counts": {"inspected", "detected", "failed", "dropped"}}` (see `running.RunningDetector.described`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from wharf.monitor.detectors.configs import AdversarialBody, OutlierBody
from wharf.monitor.detectors.running import RunningDetectors


def detectors_router(detectors: RunningDetectors) -> APIRouter:
    router = APIRouter(tags=["detectors"])

    @router.post("/detectors/outliers", summary="Detect outliers among a model's logged rows")
    async def outliers(body: OutlierBody) -> dict[str, Any]:
        running, replaced = await detectors.add("outliers", body)
        return {**running.described(), "replaced": replaced}

    @router.post("/detectors/adversarial", summary="Detect adversarial inputs by feature squeezing")
    async def adversarial(body: AdversarialBody) -> dict[str, Any]:
        running, replaced = await detectors.add("adversarial", body)
        return {**running.described(), "replaced": replaced}

    @router.get("/detectors", summary="Every detector, with its state and counts")
    async def listed() -> dict[str, Any]:
        return {"detectors": [running.described() for running in detectors.listed()]}

    @router.get("/detectors/{detector_id}", summary="One detector")
    async def one(detector_id: str) -> dict[str, Any]:
        return detectors.get(detector_id).described()

    @router.delete("/detectors/{detector_id}", summary="Stop and forget a detector")
    async def delete(detector_id: str) -> dict[str, Any]:
        return (await detectors.delete(detector_id)).described()

    return router
