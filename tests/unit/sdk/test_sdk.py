"""The SDK (`Wharf`, `AsyncWharf`) against the real control API on a socket (a backend whose replicas are ready at
once): typed apply, get and list, errors, waits, rollouts and watches."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI, Response

from wharf.sdk import AsyncWharf, Wharf
from wharf.client.control import ControlClient, ControlError
from wharf.sdk import NotReady, Resource
from wharf.control.spec import InferenceGraph, InferenceService, SpecError, parse_manifest
from wharf.errors import InvalidInput, NotFound, RequestTimeout, ServerUnreachable

from .sdk_plane import BROKEN, control_api, manifest, serving


@pytest.fixture(autouse=True)
def no_daemon_around(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `wharf up` of this machine's environment is found by accident."""
    monkeypatch.setenv("WHARF_HOME", str(tmp_path / "no-home"))
    for variable in ("WHARF_CONTROL_URL", "WHARF_TOKEN", "WHARF_GATEWAY_URL"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with control_api(tmp_path) as running:
        yield running


@pytest.fixture
def wharf(url: str) -> Iterator[Wharf]:
    with Wharf(url, timeout_s=10) as client:
        yield client


def service(name: str, who: str = "a", canary: int | None = None, namespace: str = "default") -> InferenceService:
    parsed = parse_manifest(yaml.safe_load(manifest(name, who, canary, namespace)))
    assert isinstance(parsed, InferenceService)
    return parsed


# -- apply, get, list ---------------------------------------------------------------------------------------------


def test_apply_takes_models_dicts_text_and_files_and_get_reads_them_typed(wharf: Wharf, tmp_path: Path) -> None:
    applied = wharf.apply(service("who"))
    assert [(a.kind, a.namespace, a.name, a.result) for a in applied] == [
        ("InferenceService", "default", "who", "created")
    ]
    assert wharf.apply(service("who").to_manifest())[0].result == "unchanged"
    assert wharf.apply(manifest("who", "b"))[0].result == "configured"
    file = tmp_path / "other.yaml"
    file.write_text(manifest("other", namespace="team"))
    assert wharf.apply(file)[0].result == "created"
    assert wharf.apply(str(file))[0].result == "unchanged"
    assert wharf.apply(manifest("who", "c"), dry_run=True)[0].result == "configured"

    who = wharf.get("who")
    assert isinstance(who, Resource) and isinstance(who.manifest, InferenceService)
    assert who.manifest.spec.predictor.model is not None
    assert who.manifest.spec.predictor.model.env[0].value == "b"  # the dry run changed nothing
    assert (who.name, who.namespace, who.url) == ("who", "default", "http://who.default.example.com")
    assert who.ready and who.not_ready_because == ""
    assert who.traffic() == {"who-predictor-00002": 100}
    assert [(r.revision, r.ready) for r in who.replicas] == [("who-predictor-00002", True)]
    assert {c.type for c in who.conditions} >= {"Ready", "PredictorReady"}
    assert who.metadata.generation == 2 and who.status.observed_generation == 2

    assert [r.name for r in wharf.list()] == ["who"]
    assert sorted((r.namespace, r.name) for r in wharf.list(None)) == [("default", "who"), ("team", "other")]
    assert wharf.list("team")[0].manifest.namespace == "team"
    assert wharf.list(kind=InferenceGraph) == []


def test_a_bad_manifest_is_a_spec_error_naming_the_field(wharf: Wharf) -> None:
    bad = yaml.safe_load(manifest("who"))
    bad["spec"]["predictor"]["model"]["modelFormat"] = {"name": "nope"}
    with pytest.raises(SpecError) as refused:
        wharf.apply(bad)
    assert refused.value.problems[0][0] == "spec.predictor.model.modelFormat.name"
    with pytest.raises(SpecError, match="metadata.name"):
        wharf.apply(manifest("Not_A_Name"))
    with pytest.raises(SpecError, match="no manifest found"):
        wharf.apply("")
    assert wharf.list() == []


def test_what_the_control_plane_refuses_is_raised_typed_with_its_message_and_status(wharf: Wharf) -> None:
    with pytest.raises(NotFound, match="nope") as missing:
        wharf.get("nope")
    assert missing.value.http_status == 404 and missing.value.answered
    wharf.apply(manifest("who"))
    with pytest.raises(InvalidInput, match="would both answer at") as clash:  # valid alone, refused beside `who`
        wharf.apply(manifest("who-predictor"))
    assert clash.value.http_status == 400
    with pytest.raises(NotFound):
        wharf.delete("nope")


def test_an_unreachable_control_plane_is_a_typed_error_naming_it(tmp_path: Path) -> None:
    with Wharf("http://127.0.0.1:9", timeout_s=5) as wharf, pytest.raises(ServerUnreachable, match="127.0.0.1:9"):
        wharf.get("who")


def test_a_missing_file_is_a_configuration_error_not_a_manifest(wharf: Wharf, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="cannot read .*missing.yaml"):
        wharf.apply(str(tmp_path / "missing.yaml"))


# -- waits ----------------------------------------------------------------------------------------------------------


def test_wait_ready_returns_the_ready_resource_or_says_why_it_is_not(wharf: Wharf) -> None:
    wharf.apply(manifest("who"))
    assert wharf.wait_ready("who", timeout_s=5).ready
    wharf.apply(manifest("broken", "broken"))
    started = time.monotonic()
    with pytest.raises(NotReady) as late:
        wharf.wait_ready("broken", timeout_s=0.5)
    assert time.monotonic() - started < 5
    assert BROKEN in late.value.reason and BROKEN in str(late.value)
    assert "InferenceService default/broken was not ready after 0.5 s" in str(late.value)
    assert late.value.resource is not None and not late.value.resource.ready
    assert isinstance(late.value, RequestTimeout)
    with pytest.raises(NotFound, match="default/nope not found"):
        wharf.wait_ready("nope", timeout_s=5)


def test_delete_then_wait_deleted(wharf: Wharf) -> None:
    wharf.apply(manifest("who"))
    with pytest.raises(RequestTimeout, match="still there after 0.3 s"):
        wharf.wait_deleted("who", timeout_s=0.3)
    wharf.delete("who")
    wharf.wait_deleted("who", timeout_s=5)
    with pytest.raises(NotFound):
        wharf.get("who")


# -- rollouts -------------------------------------------------------------------------------------------------------


def test_canary_percent_promotion_and_rollback(wharf: Wharf) -> None:
    wharf.apply(service("who"))
    wharf.apply(service("who", "b", canary=20))
    assert wharf.get("who").traffic() == {"who-predictor-00002": 20, "who-predictor-00001": 80}
    split = wharf.set_canary("who", 50)
    assert split.traffic() == {"who-predictor-00002": 50, "who-predictor-00001": 50}
    assert split.manifest.spec.predictor.canary_traffic_percent == 50
    with pytest.raises(SpecError, match="spec.predictor.canaryTrafficPercent"):
        wharf.set_canary("who", 150)
    with pytest.raises(NotFound, match="no transformer"):
        wharf.set_canary("who", 10, component="transformer")
    promoted = wharf.promote("who")
    assert promoted.traffic() == {"who-predictor-00002": 100}
    assert promoted.manifest.spec.predictor.canary_traffic_percent is None
    rolled_back = wharf.rollback("who")
    assert rolled_back.traffic() == {"who-predictor-00001": 100}
    condition = rolled_back.status.condition("RolledBack")
    assert condition is not None and condition.reason == "RollbackRequested"


# -- watches --------------------------------------------------------------------------------------------------------


def test_watch_shows_what_is_there_then_each_change_once_across_reopened_streams(wharf: Wharf, url: str) -> None:
    wharf.apply(manifest("who"))
    wharf.apply(manifest("other", namespace="team"))
    with Wharf(url, timeout_s=10) as other:
        seen = []
        for event in wharf.watch(timeout_s=1.5, segment_s=0.3):  # two streams, a second apart
            seen.append((event.type, event.resource.name, event.resource.traffic()))
            if len(seen) == 1:
                other.apply(manifest("who", "b", canary=30))
    assert seen[0] == ("ADDED", "who", {"who-predictor-00001": 100})
    assert seen[-1] == ("MODIFIED", "who", {"who-predictor-00002": 30, "who-predictor-00001": 70})
    assert all(change == "MODIFIED" for change, _, _ in seen[1:])
    assert len(seen) == len({json.dumps(s) for s in seen})  # nothing shown twice
    assert [e.type for e in wharf.watch("team", "other", timeout_s=0.5)] == ["ADDED"]


def test_leaving_a_watch_early_closes_its_stream(wharf: Wharf) -> None:
    wharf.apply(manifest("who"))
    for _ in range(80):  # more than the API's 64 streams at once, were they left open
        for event in wharf.watch():
            assert event.type == "ADDED"
            break
    assert wharf.get("who").ready


def expiring_watch() -> tuple[Any, Callable[[], None]]:
    """A collection whose first watch sends a service, the end of the first events, then a 410 Expired ERROR as
    Kubernetes does to a watch that fell behind; later watches send the same service and end."""
    app = FastAPI()
    opened: list[int] = []
    who = service("who").to_manifest() | {"status": {"url": "http://who.default.example.com"}}
    expired = {"kind": "Status", "status": "Failure", "reason": "Expired", "code": 410, "message": "too old"}

    @app.get("/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices")
    async def watch() -> Response:
        opened.append(1)
        events = [("ADDED", who), ("BOOKMARK", {})] + ([("ERROR", expired)] if len(opened) == 1 else [])
        body = "".join(json.dumps({"type": kind, "object": obj}) + "\n" for kind, obj in events)
        return Response(body, media_type="application/json;stream=watch")

    app.state.opened = opened
    return app, lambda: None


def test_a_watch_that_fell_behind_lists_again_and_another_error_is_raised() -> None:
    made = expiring_watch()
    with serving(lambda: made) as url, Wharf(url, timeout_s=10) as wharf:
        events = list(wharf.watch(timeout_s=1.6, segment_s=10))
        assert [(e.type, e.resource.name) for e in events] == [("ADDED", "who")]  # shown once, across two streams
        assert len(made[0].state.opened) >= 2
    made[0].state.opened.clear()
    with serving(lambda: made) as url, ControlClient(url) as control:  # the ERROR as the CLI's client sees it
        with pytest.raises(ControlError, match="too old") as error:
            list(control.watch("isvc", "default"))
        assert error.value.status == 410


@pytest.mark.anyio
async def test_the_async_sdk_watches_while_it_rolls_out(url: str) -> None:
    async with AsyncWharf(url, timeout_s=10) as wharf:
        await wharf.apply(service("who"))
        await wharf.apply(service("who", "b", canary=10))
        changes = []
        async with aclosing(wharf.watch(name="who", timeout_s=5)) as events:
            async for event in events:
                changes.append(event.resource.traffic())
                if len(changes) == 1:
                    await wharf.promote("who")
                elif event.resource.traffic() == {"who-predictor-00002": 100}:
                    break
        assert changes[0] == {"who-predictor-00002": 10, "who-predictor-00001": 90}
        assert changes[-1] == {"who-predictor-00002": 100}
        assert (await wharf.wait_ready("who", timeout_s=5)).ready


# -- where the daemon is ----------------------------------------------------------------------------------------------


def test_the_home_daemon_gives_the_gateway_and_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    address = {
        "control_url": "http://127.0.0.1:8102",
        "gateway_url": "http://127.0.0.1:8100",
        "gateway_grpc": "127.0.0.1:8101",
        "token": "t",
    }
    (home / "daemon.json").write_text(json.dumps(address))
    monkeypatch.setenv("WHARF_HOME", str(home))
    with Wharf() as wharf:
        assert (wharf.url, wharf.gateway_url) == ("http://127.0.0.1:8102", "http://127.0.0.1:8100")
    with Wharf("http://127.0.0.1:9999", gateway_url="http://127.0.0.1:9998") as wharf:
        assert wharf.gateway_url == "http://127.0.0.1:9998"
    monkeypatch.setenv("WHARF_GATEWAY_URL", "http://gateway.example.com")
    with Wharf("http://127.0.0.1:9999") as wharf:
        assert wharf.gateway_url == "http://gateway.example.com"
