"""A replica spec's digest, which tells a restarted daemon whether a running replica runs the spec it would start."""

from __future__ import annotations

import dataclasses

from wharf.control.backends import ReplicaResources, ReplicaSpec, ReplicaState
from wharf.control.backends.node_selection import NodeSelection

SPEC = ReplicaSpec("iris-00001", "iris", "/models/iris.joblib", "sklearn", {"A": "1", "B": "2"}, ("--x", "1"))


def test_equal_specs_have_one_digest_whatever_the_order_of_their_environment() -> None:
    again = ReplicaSpec("iris-00001", "iris", "/models/iris.joblib", "sklearn", {"B": "2", "A": "1"}, ("--x", "1"))
    assert SPEC.digest == again.digest and len(SPEC.digest) == 64


def test_a_change_to_any_field_changes_the_digest() -> None:
    changes = {
        "revision": "iris-00002",
        "model_name": "other",
        "model_uri": "/models/other.joblib",
        "runtime": None,
        "env": {"A": "1", "B": "3"},
        "args": ("--x", "2"),
        "resources": ReplicaResources(memory=1 << 30),
        "nodes": NodeSelection((("disk", "ssd"),)),
    }
    assert set(changes) == {f.name for f in dataclasses.fields(ReplicaSpec)}
    digests = {dataclasses.replace(SPEC, **{name: value}).digest for name, value in changes.items()}
    assert len(digests) == len(changes) and SPEC.digest not in digests


def test_a_spec_without_limits_or_node_selection_keeps_the_digest_it_had_before_specs_had_them() -> None:
    assert SPEC.digest == "3cd59005e465e607ac0ac3af09217eea83d50be74bed4f5fddef202d1aa0b845"  # computed before


def test_a_record_saved_without_a_digest_loads_with_an_empty_one() -> None:
    record = {
        "id": "iris-00001-abcdef", "revision": "iris-00001", "pid": 10, "http_port": 1, "grpc_port": 2,
        "ready": True, "restarts": 0, "last_exit": None, "started_at": 0.0, "last_error": None,
    }  # fmt: skip
    assert ReplicaState(**record).spec_digest == ""
