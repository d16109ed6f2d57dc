"""Specs shown to people keep no secret: env values, secret-named fields and flags, URL credentials and queries are
hidden behind a fingerprint that says only whether the value changed."""

from __future__ import annotations

import copy

from wharf.control.redaction import HIDDEN, redacted


def fingerprinted(shown: object) -> bool:
    return isinstance(shown, str) and shown.startswith(HIDDEN) and len(shown) == len(HIDDEN) + 8


def test_env_values_are_hidden_in_both_shapes_and_references_stay() -> None:
    spec = {
        "predictor": {
            "model": {
                "env": [
                    {"name": "AWS_SECRET_ACCESS_KEY", "value": "wJalrXUtnFEMI"},
                    {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                ]
            }
        }
    }
    before = copy.deepcopy(spec)
    shown = redacted(spec)
    env = shown["predictor"]["model"]["env"]
    assert env[0]["name"] == "AWS_SECRET_ACCESS_KEY" and fingerprinted(env[0]["value"])
    assert env[1] == {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
    assert spec == before  # the input is left alone
    revision = redacted({"env": {"TOKEN": "t0k3n", "LEVEL": "debug"}})
    assert all(fingerprinted(v) for v in revision["env"].values()) and "debug" not in str(revision)


def test_a_fingerprint_says_whether_a_value_changed_and_nothing_more() -> None:
    first, same, other = (redacted({"env": {"WHO": who}})["env"]["WHO"] for who in ("a", "a", "b"))
    assert first == same != other
    assert all(c in "0123456789abcdef" for c in first.removeprefix(HIDDEN))  # an HMAC's first digits


def test_secret_named_fields_and_flags_are_hidden_others_stay() -> None:
    shown = redacted(
        {
            "apiKey": "k-123",
            "serviceAccountToken": "eyJ",
            "password": "hunter2",
            "args": ["--access-key=AKIA", "--workers=4", "--api_key", "plain"],
            "minReplicas": 2,
            "name": "iris",
        }
    )
    assert all(fingerprinted(shown[k]) for k in ("apiKey", "serviceAccountToken", "password"))
    assert shown["args"][0].startswith("--access-key=" + HIDDEN) and shown["args"][1:] == [
        "--workers=4",
        "--api_key",
        "plain",
    ]
    assert shown["minReplicas"] == 2 and shown["name"] == "iris"


def test_urls_lose_their_credentials_and_query_and_keep_the_rest() -> None:
    shown = redacted(
        {
            "storageUri": "https://user:pa55@models.example.com:8443/iris/model.tar.gz?X-Amz-Signature=abc#v1",
            "plain": "s3://bucket/models/iris",
            "ipv6": "http://[::1]:9000/m?sig=1",
            "relative": "examples/iris/model.joblib",
        }
    )
    uri = shown["storageUri"]
    assert uri.startswith("https://" + HIDDEN) and "@models.example.com:8443/iris/model.tar.gz?" + HIDDEN in uri
    assert "pa55" not in uri and "abc" not in uri and uri.endswith("#v1")
    assert shown["plain"] == "s3://bucket/models/iris"
    assert shown["ipv6"].startswith("http://[::1]:9000/m?" + HIDDEN)
    assert shown["relative"] == "examples/iris/model.joblib"
