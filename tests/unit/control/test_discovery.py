"""`GET /prometheus/targets` over a real store and controller: the daemon's processes, then every serving replica
named by its revision's service, namespace and component."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from wharf.control.api import create_app
from wharf.control.backends import ReplicaState
from wharf.control.discovery import PATH, ScrapeTargets, discovery_url

from .fakes import Backend, control_plane
from .test_controller import isvc


class Running(Backend):
    """A backend whose revisions each have one serving replica (port 40000 + n) and one still starting (port 0),
    plus a replica of a revision no store knows."""

    def replicas(self, revision: str | None = None) -> list[ReplicaState]:
        states = []
        for n, name in enumerate(sorted(self.scaled), start=1):
            states.append(ReplicaState(f"{name}-r{n}", name, 100 + n, 40000 + n, 41000 + n, True, 0, None, 0.0))
            states.append(ReplicaState(f"{name}-starting", name, 200 + n, 0, 0, False, 0, None, 0.0))
        return [*states, ReplicaState("gone-r1", "gone-predictor-00001", 300, 45000, 45001, True, 0, None, 0.0)]


def test_every_process_and_serving_replica_with_its_labels(tmp_path: Path) -> None:
    backend = Running()
    controller = control_plane(tmp_path, backend)
    asyncio.run(controller.apply(isvc("who") + "---\n" + isvc("iris", namespace="team-a")))
    asyncio.run(controller.apply(isvc("who", who="b", canary=20)))  # a canary: a second predictor revision
    targets = ScrapeTargets.of_daemon(
        controller.store, backend, "http://0.0.0.0:8000", "http://127.0.0.1:8002", "http://127.0.0.1:8003"
    )
    answer = asyncio.run(_get(create_app(controller, targets=targets), PATH))  # in this thread: the store's
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    groups = answer.json()
    assert [(g["targets"], g["labels"]["job"]) for g in groups[:3]] == [
        (["127.0.0.1:8000"], "wharf-gateway"),  # the gateway listens on every address: reached on loopback
        (["127.0.0.1:8002"], "wharf-control"),
        (["127.0.0.1:8003"], "wharf-monitor"),
    ]
    replicas = {g["labels"]["revision"]: (g["targets"], g["labels"]) for g in groups[3:]}
    assert set(replicas) == {"iris-team-a-predictor-00001", "who-predictor-00001", "who-predictor-00002"}
    targets_, labels = replicas["iris-team-a-predictor-00001"]
    assert targets_ == ["127.0.0.1:40001"]
    assert labels == {
        "__metrics_path__": "/metrics",
        "job": "wharf-replica",
        "namespace": "team-a",
        "service": "iris",
        "component": "predictor",
        "revision": "iris-team-a-predictor-00001",
        "replica": "iris-team-a-predictor-00001-r1",
    }
    assert {replicas[name][1]["service"] for name in ("who-predictor-00001", "who-predictor-00002")} == {"who"}


def test_without_a_monitor_and_the_discovery_url_a_local_prometheus_asks() -> None:
    targets = ScrapeTargets.of_daemon(None, Running(), "http://127.0.0.1:8000", "http://[::1]:8002", None)  # type: ignore[arg-type]
    assert [target.job for target in targets.processes] == ["wharf-gateway", "wharf-control"]
    assert discovery_url("0.0.0.0", 8002) == "http://127.0.0.1:8002/prometheus/targets"
    assert discovery_url("::1", 8002) == "http://[::1]:8002/prometheus/targets"


async def _get(app: object, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        return await client.get(path)
