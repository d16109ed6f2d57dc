"""The KafkaSource resource: Knative's fields read as Knative writes them, Wharf's annotations, and what is refused
with the reason (naming the field path)."""

from __future__ import annotations

from typing import Any

import pytest

from wharf.control.spec import SpecError, parse_manifest, parse_manifests
from wharf.control.spec.kafkasource import MemberBounds, iso_duration_s, sink_label, sink_uri_parts

ISVC_REF = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "name": "iris"}


def source(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    given = {"bootstrapServers": ["127.0.0.1:9092"], "topics": ["requests"], "sink": {"ref": ISVC_REF}} | spec
    metadata: dict[str, Any] = {"name": "iris-kafka", "annotations": annotations or {}}
    return {"apiVersion": "sources.knative.dev/v1beta1", "kind": "KafkaSource", "metadata": metadata, "spec": given}


def problems(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as raised:
        parse_manifest(document)
    return dict(raised.value.problems)


KNATIVE_MANIFEST = """
apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata:
  name: kafka-source
spec:
  consumerGroup: knative-group
  bootstrapServers:
  - my-cluster-kafka-bootstrap.kafka:9092
  topics:
  - knative-demo-topic
  initialOffset: earliest
  consumers: 3
  delivery:
    retry: 5
    backoffPolicy: exponential
    backoffDelay: PT0.2S
    timeout: PT10S
  net:
    sasl:
      enable: false
    tls:
      enable: true
  sink:
    ref:
      apiVersion: serving.kserve.io/v1beta1
      kind: InferenceService
      name: mnist
      namespace: models
"""


def test_a_knative_manifest_applies_unchanged_with_its_defaults() -> None:
    (parsed,) = parse_manifests(KNATIVE_MANIFEST)
    manifest = parsed.to_manifest()
    assert manifest["spec"]["consumerGroup"] == "knative-group"
    assert manifest["spec"]["ordering"] == "ordered"
    assert parsed.spec.net is not None and parsed.spec.net.security_protocol == "SSL"
    assert parsed.bounds == MemberBounds(least=1, most=3, lag_threshold=100)  # consumers: the most members
    assert sink_label(manifest["spec"]) == "InferenceService/models/mnist"
    assert parse_manifest(manifest).to_manifest() == manifest  # what is stored reads back the same


def test_the_consumer_group_defaults_to_one_named_for_the_source_and_the_offset_to_latest() -> None:
    manifest = parse_manifest(source()).to_manifest()
    assert manifest["spec"]["consumerGroup"] == "wharf-kafkasource-default-iris-kafka"
    assert manifest["spec"]["initialOffset"] == "latest"


def test_wharf_annotations_and_the_keda_bounds_are_read() -> None:
    parsed = parse_manifest(
        source(
            {
                "kafka.wharf.dev/reply-topic": "answers",
                "kafka.wharf.dev/dead-letter-topic": "refused",
                "kafka.wharf.dev/format": "v2",
                "kafka.wharf.dev/max-batch": "128",
                "autoscaling.eventing.knative.dev/min-scale": "2",
                "autoscaling.eventing.knative.dev/max-scale": "6",
                "autoscaling.eventing.knative.dev/lag-threshold": "500",
                "autoscaling.eventing.knative.dev/class": "keda.autoscaling.knative.dev",
            }
        )
    )
    ext = parsed.extensions
    assert (ext.reply_topic, ext.dead_letter_topic, ext.format, ext.max_batch) == ("answers", "refused", "v2", 128)
    assert parsed.bounds == MemberBounds(2, 6, 500)


@pytest.mark.parametrize(
    ("document", "path", "reason"),
    [
        (source(topics=[]), "spec.topics", "at least 1"),
        (source(topics=["a b"]), "spec.topics", "a Kafka topic name"),
        (source(bootstrapServers=["nowhere"]), "spec.bootstrapServers", "host:port"),
        (source(initialOffset="middle"), "spec.initialOffset", "'earliest' or 'latest'"),
        (source(consumers=0), "spec.consumers", ">= 1"),
        (source(sink={}), "spec.sink", "exactly one of ref"),
        (source(sink={"ref": {**ISVC_REF, "kind": "Service"}}), "spec.sink.ref.kind", "InferenceService"),
        (source(sink={"ref": {**ISVC_REF, "apiVersion": "v1"}}), "spec.sink.ref.apiVersion", "serving.kserve.io"),
        (source(sink={"uri": "http://127.0.0.1:8080/"}), "spec.sink.uri", "names no model"),
        (source(sink={"uri": "ftp://x/v2/models/m/infer"}), "spec.sink.uri", "http://"),
        (source(sink={"ref": ISVC_REF, "CACerts": "..."}), "spec.sink.CACerts", "SSL_CERT_FILE"),
        (source(ceOverrides={"extensions": {}}), "spec.ceOverrides", "not CloudEvents"),
        (source(delivery={"deadLetterSink": {"uri": "http://x"}}), "spec.delivery.deadLetterSink", "dead-letter-topic"),
        (source(delivery={"backoffPolicy": "linear"}), "spec.delivery.backoffPolicy", "exponentially"),
        (source(delivery={"backoffDelay": "soon"}), "spec.delivery.backoffDelay", "ISO 8601"),
        (source(ordering="unordered"), "spec.ordering", "in order per partition"),
        (source(topic="requests"), "spec.topic", "did you mean topics"),
        (source(partitions=3), "spec.partitions", "unknown field"),
        (
            source(net={"sasl": {"enable": True, "user": {"secretKeyRef": {"name": "s", "key": "user"}}}}),
            "spec.net.sasl.user.secretKeyRef",
            "WHARF_KAFKA_SASL_PLAIN_USERNAME",
        ),
        (source({"kafka.wharf.dev/replies": "x"}), 'metadata.annotations["kafka.wharf.dev/replies"]', "known:"),
        (source({"kafka.wharf.dev/format": "xml"}), 'metadata.annotations["kafka.wharf.dev/format"]', "auto, v2"),
        (source({"kafka.wharf.dev/max-batch": "0"}), 'metadata.annotations["kafka.wharf.dev/max-batch"]', "from 1"),
        (
            source({"autoscaling.eventing.knative.dev/min-scale": "0"}),
            'metadata.annotations["autoscaling.eventing.knative.dev/min-scale"]',
            "from 1",
        ),
        (
            source(
                {"autoscaling.eventing.knative.dev/min-scale": "5", "autoscaling.eventing.knative.dev/max-scale": "2"}
            ),
            'metadata.annotations["autoscaling.eventing.knative.dev/min-scale"]',
            "must be <=",
        ),
    ],
)
def test_what_is_wrong_or_unsupported_is_refused_naming_the_field(document: dict, path: str, reason: str) -> None:
    found = problems(document)
    assert path in found, found
    assert reason in found[path]


def test_a_sink_uri_names_its_model_by_its_path_or_by_annotation() -> None:
    assert sink_uri_parts("http://h:8080/v2/models/iris/infer") == ("http://h:8080", "", "iris")
    assert sink_uri_parts("http://h/serving/default/iris/v1/models/iris:predict") == (
        "http://h",
        "/serving/default/iris",
        "iris",
    )
    assert sink_uri_parts("https://h/base/") == ("https://h", "/base", None)
    parsed = parse_manifest(source({"kafka.wharf.dev/model": "iris"}, sink={"uri": "http://h:9000/"}))
    assert parsed.extensions.model == "iris"


@pytest.mark.parametrize(("text", "seconds"), [("PT0.2S", 0.2), ("PT2M", 120), ("P1DT1H", 90000), ("PT1M30S", 90)])
def test_iso_durations(text: str, seconds: float) -> None:
    assert iso_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["P", "PT", "2s", "PT-1S", ""])
def test_iso_durations_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        iso_duration_s(text)
