"""The controller and the reconciler over a real store, with a backend that starts nothing and a gateway that
only records what it is handed; the control API in front of them."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from wharf.control.api import create_app
from wharf.control.controller import Controller
from wharf.control.daemon import _log_failure
from wharf.control.plan import ISVC_KIND, parse
from wharf.control.policy import ManifestPolicy
from wharf.control.store import revision_prefix
from wharf.errors import ConfigurationError

from .fakes import control_plane


def isvc(name: str, namespace: str = "default", who: str = "a", canary: int | None = None) -> str:
    percent = f"    canaryTrafficPercent: {canary}\n" if canary is not None else ""
    return (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  predictor:\n{percent}    model:\n      modelFormat: {{name: custom}}\n"
        f"      storageUri: models:WhoAmI\n      env: [{{name: WHO, value: {who}}}]\n"
    )


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    return control_plane(tmp_path)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def rollout(controller: Controller, name: str) -> dict[str, Any]:
    resource = controller.store.get(ISVC_KIND, "default", name)
    assert resource is not None
    return resource.status["rollout"]["predictor"]


# -- revision names ----------------------------------------------------------------------------------------------


def test_revision_prefixes_name_revisions() -> None:
    assert revision_prefix("default", "a-b", "predictor") == revision_prefix("b", "a", "predictor") == "a-b-predictor"


def test_services_whose_revisions_would_share_names_are_refused(controller: Controller) -> None:
    run(controller.apply(isvc("a-b")))
    with pytest.raises(ConfigurationError) as refused:
        run(controller.apply(isvc("a", namespace="b")))
    message = refused.value.message
    assert "InferenceService b/a" in message and "InferenceService default/a-b" in message
    assert "a-b-predictor" in message
    assert controller.store.get(ISVC_KIND, "b", "a") is None
    run(controller.reconciler.resync())  # the daemon's next pass still works


def test_a_revision_name_clash_within_one_apply_is_refused(controller: Controller) -> None:
    with pytest.raises(ConfigurationError, match="would both name their revisions a-b-predictor"):
        run(controller.apply(isvc("a", namespace="b") + "---\n" + isvc("a-b")))
    assert controller.store.list(ISVC_KIND) == []


def test_reapplying_a_service_is_no_clash_with_itself(controller: Controller) -> None:
    run(controller.apply(isvc("iris", namespace="prod")))
    assert run(controller.apply(isvc("iris", namespace="prod", who="b")))[0]["result"] == "configured"


def graph_named(name: str, namespace: str = "default") -> str:
    return (
        "apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceGraph\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        "spec:\n  nodes: {root: {routerType: Sequence, steps: [{serviceName: iris}]}}\n"
    )


def with_transformer(text: str) -> str:
    return text + "  transformer:\n    model: {modelFormat: {name: custom}, storageUri: models:T}\n"


@pytest.mark.parametrize("tag", ["latest", "prev"])
def test_a_name_that_is_another_services_tag_host_is_refused_naming_both(controller: Controller, tag: str) -> None:
    run(controller.apply(isvc("iris")))
    with pytest.raises(ConfigurationError) as refused:
        run(controller.apply(isvc(f"{tag}-iris")))
    assert refused.value.message == (
        f"InferenceService default/{tag}-iris and InferenceService default/iris would both answer at"
        f" {tag}-iris.default.example.com (the {tag} tag of iris); rename one"
    )
    with pytest.raises(ConfigurationError, match=f"InferenceGraph default/{tag}-iris and InferenceService"):
        run(controller.apply(graph_named(f"{tag}-iris")))
    run(controller.apply(isvc(f"{tag}-iris", namespace="other")))  # another namespace: other hosts


def test_a_service_named_after_the_tag_of_a_later_one_is_refused_too(controller: Controller) -> None:
    run(controller.apply(isvc("latest-iris")))
    with pytest.raises(ConfigurationError, match="InferenceService default/iris and InferenceService default/latest"):
        run(controller.apply(isvc("iris")))
    with pytest.raises(ConfigurationError, match=r"\(the latest tag of iris\)"):
        run(controller.apply(isvc("iris") + "---\n" + isvc("latest-iris", who="b")))


def test_the_tag_hosts_of_a_predictor_behind_a_transformer_are_taken(controller: Controller) -> None:
    run(controller.apply(with_transformer(isvc("iris"))))
    with pytest.raises(ConfigurationError, match=r"latest-iris-predictor.default.example.com \(the latest tag of"):
        run(controller.apply(isvc("latest-iris-predictor")))


def test_names_that_clash_among_stored_resources_alone_do_not_block_an_apply(controller: Controller) -> None:
    for doc in parse(isvc("iris") + "---\n" + isvc("latest-iris")):  # as an older Wharf, which allowed it, left them
        controller.store.put(doc.kind, doc.namespace, doc.name, doc.manifest)
    assert run(controller.apply(isvc("other")))[0]["result"] == "created"
    with pytest.raises(ConfigurationError, match="latest-iris"):
        run(controller.apply(isvc("iris", who="b")))


# -- warnings, round trips and the manifest's directory -------------------------------------------------------------

PLACED = "    nodeSelector: {gpu: a100}\n    serviceAccountName: sa\n    tolerations: [{key: gpu, operator: Exists}]\n"


def placed(name: str) -> str:
    return isvc(name).replace("  predictor:\n", "  predictor:\n" + PLACED)


def test_fields_without_effect_are_warned_about_at_apply_and_in_the_status(controller: Controller) -> None:
    expected = [
        "spec.predictor.nodeSelector has no effect on the local backend (it places pods on Kubernetes nodes;"
        " it applies to the Ray backend only, by Ray nodes' labels)",
        "spec.predictor.tolerations has no effect on the local backend (it places pods on Kubernetes nodes;"
        " it applies to the Ray backend only, by Ray nodes' labels)",
        "spec.predictor.serviceAccountName has no effect on the local backend (it is a pod's Kubernetes identity;"
        " replicas run as the daemon's user, and storage credentials come from the daemon's environment)",
    ]
    [result] = run(controller.apply(placed("who")))
    assert (result["result"], result["warnings"]) == ("created", expected)
    assert controller.get(ISVC_KIND, "default", "who")["status"]["warnings"] == expected
    assert controller.get(ISVC_KIND, "default", "who")["spec"]["predictor"]["nodeSelector"] == {"gpu": "a100"}
    [plain] = run(controller.apply(isvc("plain")))
    assert plain["warnings"] == [] and "warnings" not in controller.get(ISVC_KIND, "default", "plain")["status"]


def test_a_shown_resource_applies_unchanged(controller: Controller) -> None:
    run(controller.apply(with_transformer(placed("who"))))
    shown = controller.get(ISVC_KIND, "default", "who")
    assert shown["status"]["warnings"] and shown["status"]["components"]
    shown["metadata"].update(resourceVersion="7", uid="u-1", creationTimestamp="2024-01-01T00:00:00Z")
    for text in (yaml.safe_dump(shown, sort_keys=False), json.dumps(shown)):
        [result] = run(controller.apply(text))
        assert result["result"] == "unchanged", result


def test_relative_paths_are_read_from_the_base_the_apply_names(controller: Controller, tmp_path: Path) -> None:
    controller.policy = ManifestPolicy(storage_roots=(tmp_path,))
    text = isvc("iris").replace("modelFormat: {name: custom}", "modelFormat: {name: sklearn}")
    text = text.replace("storageUri: models:WhoAmI", "storageUri: ./model.joblib")
    run(controller.apply(text, base=tmp_path / "manifests"))
    stored = controller.get(ISVC_KIND, "default", "iris")["spec"]["predictor"]["model"]["storageUri"]
    assert stored == str(tmp_path / "manifests/model.joblib")
    with TestClient(create_app(controller)) as client:  # the API passes its base on (refused before any store read)
        elsewhere = client.post("/apis/apply", params={"base": "/srv/manifests"}, content=text)
        assert elsewhere.status_code == 400
        assert elsewhere.json()["error"].startswith(
            "spec.predictor.model.storageUri: /srv/manifests/model.joblib is outside the directories models load from"
        )
        for wrong in ("", "/a\x00b"):
            assert client.post("/apis/apply", params={"base": wrong}, content=text).status_code == 400
        relative = client.post("/apis/apply", params={"base": "manifests"}, content=text)
        assert relative.status_code == 400
        assert (
            relative.json()["error"] == "base: must be the manifest file's directory as an absolute path, not manifests"
        )


def test_a_class_beside_the_manifest_must_lie_under_a_code_root(controller: Controller, tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text("")
    controller.policy = ManifestPolicy(code_roots=(tmp_path / "code",))
    with pytest.raises(ConfigurationError) as refused:
        run(controller.apply(isvc("who"), base=tmp_path))
    assert refused.value.message == (
        f"spec.predictor.model.env[1].value: PYTHONPATH names {tmp_path} (the manifest's directory, where the class's"
        f" module is), outside the directories code loads from: {tmp_path / 'code'} (WHARF_POLICY_CODE_ROOTS)"
    )
    controller.policy = ManifestPolicy(code_roots=(tmp_path,))
    run(controller.apply(isvc("who"), base=tmp_path))
    env = controller.get(ISVC_KIND, "default", "who")["spec"]["predictor"]["model"]["env"]
    assert env == [{"name": "WHO", "value": "a"}, {"name": "PYTHONPATH", "value": str(tmp_path)}]
    spec = next(iter(controller.reconciler.backend.specs.values()))  # type: ignore[attr-defined]
    assert spec.env["PYTHONPATH"] == str(tmp_path)


# -- rollback ----------------------------------------------------------------------------------------------------


def test_a_rollback_with_nothing_to_roll_back_is_refused(controller: Controller) -> None:
    run(controller.apply(isvc("who")))
    before = rollout(controller, "who")
    with pytest.raises(ConfigurationError, match="no canary or earlier revision to roll back to"):
        run(controller.rollback("default", "who"))
    assert rollout(controller, "who") == before and before["rolled_back"] is None


def test_a_canary_and_a_promoted_revision_still_roll_back(controller: Controller) -> None:
    run(controller.apply(isvc("who")))
    run(controller.apply(isvc("who", who="b", canary=30)))
    run(controller.rollback("default", "who"))
    assert rollout(controller, "who")["rolled_back"] == "who-predictor-00002"
    with pytest.raises(ConfigurationError):  # the canary is out of traffic already: nothing left to roll back
        run(controller.rollback("default", "who"))

    run(controller.apply(isvc("who", who="c")))  # promoted: who-predictor-00003 takes everything
    assert rollout(controller, "who")["latest_rolled_out"] == "who-predictor-00003"
    run(controller.rollback("default", "who"))
    assert rollout(controller, "who")["latest_rolled_out"] == "who-predictor-00001"


def test_the_reconcilers_automatic_rollback_of_a_canary_still_works(controller: Controller) -> None:
    run(controller.apply(isvc("who")))
    run(controller.apply(isvc("who", who="b", canary=30)))
    run(controller.reconciler.rollback("default", "who", "too many errors", "predictor"))
    saved = rollout(controller, "who")
    assert (saved["rolled_back"], saved["rollback_reason"]) == ("who-predictor-00002", "too many errors")


def _traffic(controller: Controller, name: str) -> dict[str, int]:
    """The split the predictor wants (this backend starts no replica, so none is served yet)."""
    resource = controller.store.get(ISVC_KIND, "default", name)
    assert resource is not None
    return resource.status["routing"]["components"]["predictor"]["desired"]


def test_promote_or_a_new_canary_percent_brings_a_rolled_back_revision_back(controller: Controller) -> None:
    run(controller.apply(isvc("who")))
    run(controller.apply(isvc("who", who="b", canary=30)))
    run(controller.promote("default", "who"))
    run(controller.rollback("default", "who"))
    assert _traffic(controller, "who") == {"who-predictor-00001": 100}
    run(controller.promote("default", "who"))  # it used to say "promoted" and change nothing
    assert _traffic(controller, "who") == {"who-predictor-00002": 100}
    assert rollout(controller, "who")["rolled_back"] is None

    run(controller.apply(isvc("who", who="c", canary=20)))
    run(controller.rollback("default", "who"))
    run(controller.apply(isvc("who", who="c", canary=20)))  # the same spec again: still rolled back
    assert _traffic(controller, "who") == {"who-predictor-00002": 100}
    run(controller.apply(isvc("who", who="c", canary=40)))  # a new percent: the canary tries again
    assert _traffic(controller, "who") == {"who-predictor-00003": 40, "who-predictor-00002": 60}


# -- adoption ----------------------------------------------------------------------------------------------------


def test_the_specs_for_adoption_are_those_replicas_start_with_a_transformers_included(
    controller: Controller,
) -> None:
    transformed = isvc("who").replace(
        "spec:\n", "spec:\n  transformer:\n    model: {modelFormat: {name: custom}, storageUri: models:Scale}\n"
    )
    run(controller.apply(transformed))
    started = controller.reconciler.backend.specs  # type: ignore[attr-defined]
    assert sorted(started) == ["who-predictor-00001", "who-transformer-00001"]
    assert controller.reconciler.adoptable_specs() == started
    assert started["who-transformer-00001"].env["WHARF_PREDICTOR_URL"] == "http://127.0.0.1:1"


# -- writes ------------------------------------------------------------------------------------------------------


def test_an_unchanged_status_and_unchanged_replicas_are_not_written_again(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(controller.apply(isvc("who")))
    writes: list[str] = []
    store = controller.store
    set_status, save_replicas = store.set_status, store.save_replicas
    monkeypatch.setattr(store, "set_status", lambda *a: (writes.append("status"), set_status(*a)))
    monkeypatch.setattr(store, "save_replicas", lambda r: (writes.append("replicas"), save_replicas(r)))
    run(controller.reconciler.resync())
    assert writes == ["replicas"]  # the status is what the apply wrote; the replicas were never saved
    run(controller.reconciler.resync())
    run(controller.reconciler.reconcile())
    assert writes == ["replicas"]
    run(controller.apply(isvc("who", who="b", canary=30)))
    assert writes == ["replicas", "status"]


# -- the control API ---------------------------------------------------------------------------------------------


def test_a_body_that_is_not_utf8_is_a_client_error(controller: Controller) -> None:
    with TestClient(create_app(controller)) as client:
        answer = client.post("/apis/apply", content=b"\xff\xfe name: x")
    assert answer.status_code == 400
    assert "must be UTF-8 YAML or JSON" in answer.json()["error"]


def test_a_manifest_body_over_the_limit_is_refused(controller: Controller, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("wharf.control.api.MAX_MANIFEST_BYTES", 1000)
    with TestClient(create_app(controller)) as client:
        answer = client.post("/apis/apply", content=b"#" * 1001)
    assert answer.status_code == 413 and "exceeds the limit of 1000 bytes" in answer.json()["error"]


def test_an_unexpected_error_answers_json(controller: Controller, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("wharf.control.kube.resources.listed", broken)
    with TestClient(create_app(controller), raise_server_exceptions=False) as client:
        answer = client.get("/apis/serving.kserve.io/v1beta1/inferenceservices")
    assert answer.status_code == 500  # a Kubernetes route: a Status, with Wharf's error beside its message
    assert answer.json()["error"] == answer.json()["message"] == "internal error: RuntimeError: disk on fire"
    assert answer.json()["kind"] == "Status" and answer.json()["reason"] == "InternalError"


# -- the daemon's background work --------------------------------------------------------------------------------


def test_a_failed_background_reconcile_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def failing() -> None:
        raise RuntimeError("UNIQUE constraint failed")

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(failing())
        task.add_done_callback(_log_failure)
        await asyncio.wait([task])
        await asyncio.sleep(0)  # done callbacks run on the next turn of the loop

    with caplog.at_level(logging.ERROR, logger="wharf.daemon"):
        asyncio.run(main())
    [record] = [r for r in caplog.records if r.name == "wharf.daemon"]
    assert record.message == "background reconcile failed" and "UNIQUE" in str(record.exc_info[1])
