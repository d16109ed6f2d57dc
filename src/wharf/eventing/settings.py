"""The Kafka consumer's settings (environment prefix `WHARF_KAFKA_`): one `ConsumerSettings` per consumer process,
which the control plane configures through the environment only.

What it reads (`bootstrap_servers`, `topics`, `group_id`, `initial_offset`), where it sends (`sink_url` with an
optional `sink_host` header and `sink_path_prefix`, the `model` the V1/V2 paths name), where answers and refusals go
(`reply_topic`, `dead_letter_topic`), how messages are read (`format`), how much is merged and in flight
(`max_batch`, `max_in_flight`), how long it waits and retries, the port of its status listener, and the client's
security settings, passed to the Kafka client as they are.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Format = Literal["auto", "v2", "v1", "cloudevent"]


class ConsumerSettings(BaseSettings):
    """One per consumer process."""

    model_config = SettingsConfigDict(env_prefix="WHARF_KAFKA_", extra="ignore")

    bootstrap_servers: str = Field(..., min_length=1, description="the brokers, `host:port[,host:port...]`")
    topics: Annotated[list[str], NoDecode] = Field(..., min_length=1, description="the topics read, a comma list")
    group_id: str = Field(..., min_length=1, description="the consumer group (Knative's consumerGroup)")
    initial_offset: Literal["earliest", "latest"] = Field(
        "latest", description="where a group with no committed offset starts"
    )
    sink_url: str = Field(
        ..., min_length=1, description="base URL of the gateway or of any V1/V2 server, e.g. http://127.0.0.1:8000"
    )
    sink_host: str | None = Field(None, description="the Host header the gateway routes by (None: the URL's)")
    sink_path_prefix: str = Field("", description="put before /v2/... and /v1/..., e.g. /serving/default/iris")
    model: str = Field(..., min_length=1, description="the model name in the V1/V2 paths")
    reply_topic: str | None = Field(None, description="where answers go (None: answers are dropped once received)")
    dead_letter_topic: str | None = Field(
        None, description="where undecodable messages and 4xx answers go (None: they are counted and skipped)"
    )
    format: Format = Field(
        "auto", description="how messages are read: auto (by content and ce_* headers), v2, v1 or cloudevent"
    )
    max_batch: int = Field(64, ge=1, le=100_000, description="consecutive messages of a partition merged in one call")
    max_in_flight: int = Field(8, ge=1, le=1024, description="infer calls in flight at once, over all partitions")
    max_buffered: int = Field(
        10_000, ge=1, description="messages fetched but not yet committed; fetching pauses beyond this"
    )
    request_timeout_s: float = Field(30.0, gt=0, description="one infer call's deadline")
    broker_timeout_s: float = Field(
        10.0, gt=0, description="a produce, commit or metadata request's deadline; past it the brokers count as down"
    )
    session_timeout_s: float = Field(
        10.0, gt=0, description="the group forgets a member that has not been heard from for this long"
    )
    fetch_wait_s: float = Field(
        0.05, gt=0, description="a fetch waits this long for records at most (some brokers always wait it out)"
    )
    commit_interval_s: float = Field(0.2, gt=0, description="answered offsets are committed this often")
    drain_timeout_s: float = Field(
        10.0, ge=0, description="on stop or rebalance, calls in flight get this long to finish and be committed"
    )
    retry_initial_s: float = Field(0.1, gt=0, description="first wait before retrying a 5xx, timeout or refused call")
    retry_max_s: float = Field(5.0, gt=0, description="the wait doubles up to this")
    max_retries: int = Field(
        10, ge=0, description="retries of one call; past them its messages go to the dead-letter topic"
    )
    reconnect_max_s: float = Field(10.0, gt=0, description="reconnecting to the brokers backs off up to this")
    status_host: str = Field("127.0.0.1", description="where the status listener listens")
    status_port: int = Field(0, ge=0, le=65535, description="its port (0: any free one, logged on the serving line)")
    log_level: str = Field("info", description="the log level")
    # The client's security settings, passed through as they are (aiokafka's names).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how the client talks to the brokers"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="the SASL mechanism, with SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_plain_username: str | None = Field(None, description="the SASL user (PLAIN and SCRAM)")
    sasl_plain_password: SecretStr | None = Field(None, description="its password (never logged)")
    ssl_cafile: str | None = Field(None, description="CA bundle the brokers' certificates are checked against")
    ssl_certfile: str | None = Field(None, description="client certificate (mutual TLS)")
    ssl_keyfile: str | None = Field(None, description="its key")
    ssl_check_hostname: bool = Field(True, description="whether the brokers' certificates must name their hosts")

    @model_validator(mode="after")
    def _sasl(self) -> ConsumerSettings:
        if self.security_protocol.startswith("SASL_") and (
            self.sasl_mechanism is None or not self.sasl_plain_username or self.sasl_plain_password is None
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism, sasl_plain_username and "
                "sasl_plain_password"
            )
        return self

    @field_validator("topics", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("sink_path_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        return value if not value or value.startswith("/") else "/" + value

    @field_validator("sink_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("sink_url must be an http:// or https:// URL")
        return value.rstrip("/")
