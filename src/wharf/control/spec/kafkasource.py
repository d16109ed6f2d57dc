"""Knative's `sources.knative.dev/v1beta1` KafkaSource: topics read by consumers that the control plane runs, each
message sent as an inference request to an InferenceService or InferenceGraph (or any V1/V2 server) and answered
to a topic.

The fields are Knative's (`KafkaSourceSpec`), as a Knative manifest writes them:
- `bootstrapServers` (`host:port` each) and `topics` (at least one), `consumerGroup` (default
  `wharf-kafkasource-NAMESPACE-NAME`, so that a source applied again resumes where it stopped) and `initialOffset`
  (`earliest` or `latest`, Knative's default: where a group with no committed offset starts).
- `sink`: `ref` to an InferenceService (`serving.kserve.io/v1beta1`) or InferenceGraph (`serving.kserve.io/v1alpha1`)
  by name (its namespace defaults to the source's), called through the gateway at its host; or `uri`, any server
  that speaks V1 or V2 (`http://host:port/v2/models/NAME/infer` or `.../v1/models/NAME:predict` name the model,
  else the `kafka.wharf.dev/model` annotation does; a host under the gateway's domain goes through the gateway).
- `consumers`: the most consumer-group members (Wharf scales them with the lag, as Knative does with KEDA; see
  below); `ordering`: only `ordered` (the default: Wharf answers in order per partition).
- `delivery`: `retry` (retries of a call that failed with a 5xx or a timeout), `backoffDelay` (the first wait, an
  ISO 8601 duration such as `PT0.2S`; it doubles: `backoffPolicy` `exponential`, the default), `timeout` (one call's
  deadline, ISO 8601). A `deadLetterSink` is an HTTP address in Knative; Wharf's dead letters go to a topic
  (`kafka.wharf.dev/dead-letter-topic`), so it is refused, as are `retryAfterMax` and `format`.
- `net`: `sasl.enable` and `tls.enable` choose the security protocol. Secrets (`secretKeyRef`) cannot be read on one
  machine: the credentials are given to `wharf up` as WHARF_KAFKA_SASL_MECHANISM, WHARF_KAFKA_SASL_PLAIN_USERNAME,
  WHARF_KAFKA_SASL_PLAIN_PASSWORD, WHARF_KAFKA_SSL_CAFILE, WHARF_KAFKA_SSL_CERTFILE, WHARF_KAFKA_SSL_KEYFILE (every
  consumer inherits them, and passes them to the Kafka client as they are), and a secret reference is refused
  saying so.
- `ceOverrides` and a sink's `CACerts` and `audience` are refused: Wharf sends inference requests, not CloudEvents.

Wharf's extensions, as annotations on `metadata.annotations` (an unknown `kafka.wharf.dev/` one is an error):
- `kafka.wharf.dev/reply-topic`: where each answer goes, with the request's key, an id header and the source
  offset (unset: answers are received and dropped).
- `kafka.wharf.dev/dead-letter-topic`: where a message that cannot be decoded, or that the model refuses (4xx), goes
  with the reason (unset: such messages are counted and skipped).
- `kafka.wharf.dev/format`: how messages are read: `auto` (the default: by content and `ce_*` headers), `v2`, `v1`
  or `cloudevent`.
- `kafka.wharf.dev/max-batch`: consecutive messages of a partition merged into one inference call (default 64;
  1 sends each alone).
- `kafka.wharf.dev/model`: the model name in the V1/V2 paths of a `sink.uri` that does not name one.

Knative's KEDA annotations say how many members run (`autoscaling.eventing.knative.dev/`): `min-scale` (at least
1, the default: a source keeps one member to read its lag), `max-scale` (default `consumers`, else
`DEFAULT_MAX_MEMBERS`) and `lag-threshold` (messages of lag per member, default 100, Knative's); `class` is
accepted and ignored (Wharf always scales members by lag). Members are never more than the topics' partitions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from wharf.control.spec import graph, inferenceservice
from wharf.control.spec.common import (
    HttpUrl,
    Problem,
    ResourceName,
    SpecModel,
    TopLevelResource,
    _check_namespace,
    invalid,
)
from wharf.eventing.settings import ConsumerSettings, Format

API_VERSION = "sources.knative.dev/v1beta1"
KIND = "KafkaSource"
PREFIX = "kafka.wharf.dev/"
REPLY_TOPIC = PREFIX + "reply-topic"
DEAD_LETTER_TOPIC = PREFIX + "dead-letter-topic"
FORMAT = PREFIX + "format"
MAX_BATCH = PREFIX + "max-batch"
MODEL = PREFIX + "model"
SCALING_PREFIX = "autoscaling.eventing.knative.dev/"
MIN_SCALE = SCALING_PREFIX + "min-scale"
MAX_SCALE = SCALING_PREFIX + "max-scale"
LAG_THRESHOLD = SCALING_PREFIX + "lag-threshold"
SCALING_CLASS = SCALING_PREFIX + "class"
FORMATS: tuple[str, ...] = get_args(Format)
DEFAULT_MAX_MEMBERS = 4
DEFAULT_LAG_THRESHOLD = 100
MAX_BATCH_LIMIT: int = next(m.le for m in ConsumerSettings.model_fields["max_batch"].metadata if hasattr(m, "le"))
#: The sinks a `sink.ref` may name: kind -> its apiVersion.
SINK_KINDS = {inferenceservice.KIND: inferenceservice.API_VERSION, graph.KIND: graph.API_VERSION}

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_SERVER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")
_GROUP = re.compile(r"[\x21-\x7e]{1,255}")  # printable, no spaces
_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile(rf"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>{_NUMBER})H)?(?:(?P<m>{_NUMBER})M)?(?:(?P<s>{_NUMBER})S)?)?")
_V2_PATH = re.compile(r"(?P<prefix>.*)/v2/models/(?P<model>[^/]+)(?:/versions/[^/]+)?/infer")
_V1_PATH = re.compile(r"(?P<prefix>.*)/v1/models/(?P<model>[^/:]+):predict")
_SECRETS = (
    "Kubernetes secrets cannot be read by a local Wharf: give the credentials to `wharf up` as WHARF_KAFKA_*"
    " settings (WHARF_KAFKA_SASL_MECHANISM, WHARF_KAFKA_SASL_PLAIN_USERNAME, WHARF_KAFKA_SASL_PLAIN_PASSWORD,"
    " WHARF_KAFKA_SSL_CAFILE, WHARF_KAFKA_SSL_CERTFILE, WHARF_KAFKA_SSL_KEYFILE), which every consumer passes to the"
    " Kafka client"
)


def iso_duration_s(text: str) -> float:
    """An ISO 8601 duration (`PT0.5S`, `PT2M`, `P1DT1H`) in seconds; raises ValueError."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        raise ValueError(f"must be an ISO 8601 duration such as PT0.5S or PT2M (given: {text[:40]!r})")
    d, h, m, s = (float(match[part] or 0) for part in "dhms")
    return d * 86400 + h * 3600 + m * 60 + s


def _check_topic(value: str) -> str:
    if not _TOPIC.fullmatch(value) or value in (".", ".."):
        raise ValueError("a Kafka topic name: letters, digits, '.', '_' and '-', at most 249 characters")
    return value


# -- Knative's fields --------------------------------------------------------------------------------------------


class SecretKeySelector(SpecModel):
    name: str = ""
    key: str = ""
    optional: bool | None = None


class SecretValueFromSource(SpecModel):
    secret_key_ref: SecretKeySelector | None = None

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        if self.secret_key_ref is not None:
            yield ("secretKeyRef",), _SECRETS


class SaslSpec(SpecModel):
    enable: bool = False
    user: SecretValueFromSource | None = None
    password: SecretValueFromSource | None = None
    type: SecretValueFromSource | None = None


class TlsSpec(SpecModel):
    enable: bool = False
    cert: SecretValueFromSource | None = None
    key: SecretValueFromSource | None = None
    ca_cert: SecretValueFromSource | None = Field(None, alias="caCert")


class NetSpec(SpecModel):
    sasl: SaslSpec = Field(default_factory=SaslSpec)
    tls: TlsSpec = Field(default_factory=TlsSpec)

    @property
    def security_protocol(self) -> str:
        """The Kafka client's security protocol that `sasl.enable` and `tls.enable` choose."""
        return {(False, False): "PLAINTEXT", (True, False): "SASL_PLAINTEXT", (False, True): "SSL"}.get(
            (self.sasl.enable, self.tls.enable), "SASL_SSL"
        )


class KReference(SpecModel):
    """Knative's reference to an object: here an InferenceService or InferenceGraph."""

    kind: str
    name: ResourceName
    api_version: str = Field(alias="apiVersion")
    namespace: Annotated[str, AfterValidator(_check_namespace)] | None = None

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        if self.kind not in SINK_KINDS:
            known = " or ".join(f"{kind} ({version})" for kind, version in SINK_KINDS.items())
            yield ("kind",), f"a KafkaSource's sink on Wharf is an {known}, or a uri (given: {self.kind!r})"
        elif self.api_version != SINK_KINDS[self.kind]:
            yield ("apiVersion",), f"must be {SINK_KINDS[self.kind]} for an {self.kind}"


class Destination(SpecModel):
    """Knative's Destination: a `ref` or a `uri`."""

    ref: KReference | None = None
    uri: HttpUrl | None = None

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        if (self.ref is None) == (self.uri is None):
            yield (), "give exactly one of ref (an InferenceService or InferenceGraph) or uri"


class DeliverySpec(SpecModel):
    """What Knative's delivery settings map to: the consumer's retries, their first wait and each call's deadline."""

    retry: int | None = Field(None, ge=0, le=1000)
    backoff_policy: Literal["exponential"] | None = None
    backoff_delay: str | None = None
    timeout: str | None = None

    @field_validator("backoff_delay", "timeout")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and iso_duration_s(value) <= 0:
            raise ValueError("must be a duration longer than zero")
        return value


class KafkaSourceSpec(SpecModel):
    bootstrap_servers: list[str] = Field(min_length=1)
    topics: list[str] = Field(min_length=1)
    consumer_group: str | None = None
    initial_offset: Literal["earliest", "latest"] = "latest"
    consumers: int | None = Field(None, ge=1, le=1024)
    ordering: Literal["ordered"] = "ordered"
    net: NetSpec | None = None
    delivery: DeliverySpec | None = None
    sink: Destination

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: list[str]) -> list[str]:
        for position, server in enumerate(value):
            match = _SERVER.fullmatch(server)
            if match is None or not 0 < int(match[2]) < 65536:
                raise ValueError(f"[{position}] must be host:port (given: {server[:80]!r})")
        return value

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: list[str]) -> list[str]:
        for position, topic in enumerate(value):
            try:
                _check_topic(topic)
            except ValueError as e:
                raise ValueError(f"[{position}] {e}") from None
        if len(set(value)) != len(value):
            raise ValueError("names a topic twice")
        return value

    @field_validator("consumer_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not _GROUP.fullmatch(value):
            raise ValueError("printable characters without spaces, at most 255")
        return value


_REFUSED = {
    "deadLetterSink": "a dead letter goes to a Kafka topic on Wharf: set the kafka.wharf.dev/dead-letter-topic"
    " annotation",
    "retryAfterMax": "is not supported: a 429 or 503 is retried with the backoff of backoffDelay",
    "format": "Wharf sends inference requests, not CloudEvents: read messages with the kafka.wharf.dev/format"
    " annotation",
    "ceOverrides": "Wharf sends inference requests, not CloudEvents: CloudEvent overrides have nothing to change",
    "CACerts": "give the CA bundle to `wharf up` (SSL_CERT_FILE) instead",
    "audience": "OIDC audiences are not supported: the gateway authenticates with the service's API keys",
}


# -- Wharf's annotations -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Extensions:
    """What the `kafka.wharf.dev/` annotations set (see the module docstring)."""

    reply_topic: str | None = None
    dead_letter_topic: str | None = None
    format: str = "auto"
    max_batch: int | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class MemberBounds:
    """How many consumer-group members run: between `least` and `most`, one per `lag_threshold` messages of lag."""

    least: int = 1
    most: int = DEFAULT_MAX_MEMBERS
    lag_threshold: int = DEFAULT_LAG_THRESHOLD


def _whole(text: str, least: int, most: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if not least <= value <= most:
        raise ValueError(f"must be a whole number from {least} to {most}")
    return value


def _name(text: str) -> str:
    if not text or "/" in text or any(c.isspace() for c in text):
        raise ValueError("a model name, without '/' or spaces")
    return text


def _format(text: str) -> str:
    if text not in FORMATS:
        raise ValueError(f"must be one of {', '.join(FORMATS)}")
    return text


_EXTENSIONS = {
    REPLY_TOPIC: ("reply_topic", _check_topic),
    DEAD_LETTER_TOPIC: ("dead_letter_topic", _check_topic),
    FORMAT: ("format", _format),
    MAX_BATCH: ("max_batch", lambda text: _whole(text, 1, MAX_BATCH_LIMIT)),
    MODEL: ("model", _name),
}
_SCALING = {
    MIN_SCALE: ("least", lambda text: _whole(text, 1, 1024)),
    MAX_SCALE: ("most", lambda text: _whole(text, 1, 1024)),
    LAG_THRESHOLD: ("lag_threshold", lambda text: _whole(text, 1, 10**9)),
}


def _read(
    annotations: Mapping[str, str], prefix: str, known: dict[str, Any], accepted: tuple[str, ...] = ()
) -> tuple[dict[str, Any], list[Problem]]:
    """The values of the annotations under `prefix` that `known` reads (key -> (attribute, reader)), and the
    problems of the others; `accepted` keys are taken and ignored."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, text in annotations.items():
        if not key.startswith(prefix) or key in accepted:
            continue
        if key not in known:
            problems.append(((key,), f"unknown annotation; known: {', '.join([*known, *accepted])}"))
            continue
        attribute, read = known[key]
        try:
            values[attribute] = read(text)
        except ValueError as e:
            problems.append(((key,), str(e)))
    return values, problems


class KafkaSource(TopLevelResource):
    api_version: Literal["sources.knative.dev/v1beta1"]
    kind: Literal["KafkaSource"]
    spec: KafkaSourceSpec

    @model_validator(mode="before")
    @classmethod
    def _refused(cls, data: Any) -> Any:
        """Knative's fields Wharf cannot honour, refused with the reason (before pydantic calls them unknown)."""
        spec = data.get("spec") if isinstance(data, Mapping) else None
        if not isinstance(spec, Mapping):
            return data
        problems: list[Problem] = []
        places: list[tuple[tuple[str, ...], Any]] = [(("spec",), spec)]
        for field in ("delivery", "sink"):
            if isinstance(spec.get(field), Mapping):
                places.append((("spec", field), spec[field]))
        if isinstance(spec.get("delivery"), Mapping) and spec["delivery"].get("backoffPolicy") == "linear":
            problems.append((("spec", "delivery", "backoffPolicy"), "Wharf's consumer backs off exponentially only"))
        if spec.get("ordering") == "unordered":
            problems.append((("spec", "ordering"), "Wharf answers in order per partition: only ordered is supported"))
        for at, mapping in places:
            problems += [((*at, key), _REFUSED[key]) for key in mapping if key in _REFUSED]
        if problems:
            raise invalid(problems)
        return data

    @property
    def extensions(self) -> Extensions:
        return Extensions(**_read(self.metadata.annotations, PREFIX, _EXTENSIONS)[0])

    @property
    def bounds(self) -> MemberBounds:
        values = _read(self.metadata.annotations, SCALING_PREFIX, _SCALING, (SCALING_CLASS,))[0]
        values.setdefault("most", self.spec.consumers or max(DEFAULT_MAX_MEMBERS, values.get("least", 1)))
        return MemberBounds(**values)

    @property
    def consumer_group(self) -> str:
        return self.spec.consumer_group or default_group(self.namespace, self.name)

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        annotations = self.metadata.annotations
        for prefix, known, accepted in ((PREFIX, _EXTENSIONS, ()), (SCALING_PREFIX, _SCALING, (SCALING_CLASS,))):
            yield from (
                (("metadata", "annotations", *loc), reason)
                for loc, reason in _read(annotations, prefix, known, accepted)[1]
            )
        values = _read(annotations, SCALING_PREFIX, _SCALING, (SCALING_CLASS,))[0]
        if "least" in values and "most" in values and values["least"] > values["most"]:
            yield ("metadata", "annotations", MIN_SCALE), f"must be <= {MAX_SCALE} ({values['most']})"
        uri = self.spec.sink.uri
        if uri is not None and sink_uri_parts(uri)[2] is None and MODEL not in annotations:
            yield (
                ("spec", "sink", "uri"),
                f"names no model: end it with /v2/models/NAME/infer or /v1/models/NAME:predict, or set {MODEL}",
            )

    def to_manifest(self) -> dict[str, Any]:
        """The manifest with its defaults (the consumer group among them), in Knative's field names."""
        manifest = self.model_dump(mode="json", exclude_none=True)
        manifest["spec"]["consumerGroup"] = self.consumer_group
        return manifest


def default_group(namespace: str, name: str) -> str:
    return f"wharf-kafkasource-{namespace}-{name}"


def sink_uri_parts(uri: str) -> tuple[str, str, str | None]:
    """A `sink.uri` as (base URL `scheme://host:port`, path prefix before `/v2/` or `/v1/`, the model its path names
    or None)."""
    parts = urlsplit(uri)
    base = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    for pattern in (_V2_PATH, _V1_PATH):
        if (match := pattern.fullmatch(path)) is not None:
            return base, match["prefix"], match["model"]
    return base, path, None


def duration_s(text: str | None) -> float | None:
    """An ISO 8601 duration of the (validated) spec in seconds; None for None."""
    return None if text is None else iso_duration_s(text)


def sink_label(spec: Mapping[str, Any]) -> str:
    """A stored source's sink in a few words, for tables: `InferenceService/iris` (`.../NAMESPACE/NAME` when
    elsewhere), or its uri."""
    sink = spec.get("sink") or {}
    ref = sink.get("ref")
    if not ref:
        return str(sink.get("uri", ""))
    return "/".join(part for part in (ref.get("kind"), ref.get("namespace"), ref.get("name")) if part)
