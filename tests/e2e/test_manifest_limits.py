"""Hostile and careless manifests against a real `wharf up`: refused with 400 and the reason, quickly, without the
daemon's memory growing; what the policy forbids is named with its field and setting; the test models still run."""

from __future__ import annotations

import time

import httpx

from tests.e2e.conftest import Daemon, manifest, ready, who_answers

ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris}
spec:
  predictor:
    model: {modelFormat: {name: sklearn}, storageUri: models/iris.joblib}
"""


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def apply(client: httpx.Client, text: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = client.post("/apis/apply", content=text.encode(), headers={"content-type": "application/yaml"})
    return answer, time.perf_counter() - started


def test_hostile_manifests_are_refused_quickly_and_in_little_memory(daemon: Daemon) -> None:
    # an alias bomb of 39 KB: a 20 KB string named 4,500 times (90 MB of args once expanded)
    strings = ISVC.replace("{name: iris}", "{name: iris, labels: {a: &s " + "x" * 20_000 + "}}").replace(
        "iris.joblib}", "iris.joblib, args: [" + ", ".join(["*s"] * 4_500) + "]}"
    )
    laughs = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    laughs += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    million_errors = ISVC.replace("iris.joblib}", "iris.joblib, args: [" + ", ".join(["[]"] * 1_000_000) + "]}")
    cases = {
        "strings": (strings, "aliases expand the text to more than 10 times what is written in it"),
        "laughs": ("\n".join(laughs) + "\n" + ISVC, "aliases expand the text to more than 10 times"),
        "deep YAML": ("".join("  " * i + "a:\n" for i in range(1000)) + "  " * 1000 + "b: 1\n", "nested more than 64"),
        "deep JSON": ('{"spec": ' + "[" * 1000 + "]" * 1000 + "}", "nested more than 64 levels deep"),
        "a million errors": (million_errors, "more than 100000 values"),
    }
    assert 38_000 < len(strings) < 40_000
    before = rss_bytes(daemon.proc.pid)
    with daemon.control() as client:
        for name, (text, reason) in cases.items():
            answer, took_s = apply(client, text)
            assert answer.status_code == 400, (name, answer.text[:300])
            assert reason in answer.json()["error"], name
            assert len(answer.content) < 2_000 and took_s < 5.0, (name, len(answer.content), took_s)
        many = ISVC.replace("iris.joblib}", "iris.joblib, args: [" + ", ".join(["[]"] * 50_000) + "]}")
        answer, took_s = apply(client, many)
        assert answer.status_code == 400 and took_s < 5.0
        assert answer.json()["error"].endswith(f"... and {50_000 - 20} more") and len(answer.content) < 2_000
        assert client.get("/apis/serving.kserve.io/v1beta1/inferenceservices").json()["items"] == []
    assert rss_bytes(daemon.proc.pid) - before < 100 * 2**20


def test_what_the_policy_forbids_is_named_with_its_field_and_setting(daemon: Daemon) -> None:
    evil = manifest("evil", "x").replace("{name: WHO, value: x}", "{name: PYTHONPATH, value: /tmp/evil}")
    pickle_over_http = ISVC.replace("models/iris.joblib", "http://127.0.0.1:9/model.joblib")
    refusals = {
        evil: "spec.predictor.model.env[0].value: PYTHONPATH names /tmp/evil, outside the directories code loads"
        " from: ",
        pickle_over_http: "(WHARF_POLICY_PICKLE_SCHEMES)",
        manifest("big", "x", predictor={"minReplicas": 1_000_000}): "spec.predictor.minReplicas: this Wharf runs at"
        " most 64 replicas of a revision (WHARF_POLICY_MAX_REPLICAS_PER_REVISION)",
        manifest("preload", "x").replace("name: WHO", "name: LD_PRELOAD"): "spec.predictor.model.env[0].name:"
        " LD_PRELOAD may not be set by a manifest",
        ISVC.replace("models/iris.joblib", "/etc/passwd"): "(WHARF_POLICY_STORAGE_ROOTS, or WHARF_HOME/models)",
    }
    with daemon.control() as client:
        for text, reason in refusals.items():
            answer, _ = apply(client, text)
            assert answer.status_code == 400 and reason in answer.json()["error"], answer.text
    run = daemon.wharf("apply", "-f", "-", stdin=evil, check=False)
    assert run.returncode == 1 and "WHARF_POLICY_CODE_ROOTS" in run.stderr

    # the defaults let a custom class found under the daemon's working directory run
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    daemon.wait("who", ready)
    assert set(who_answers(daemon, "who.default.example.com", 3)) == {"a"}
