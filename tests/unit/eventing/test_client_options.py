"""What the Kafka client is given: the brokers, the deadline and the security settings as they were set."""

from __future__ import annotations

import ssl

from wharf.eventing.consumer import client_options
from wharf.eventing.settings import ConsumerSettings

BASE = {"bootstrap_servers": "b:9093", "topics": "t", "group_id": "g", "sink_url": "http://s", "model": "m"}


def test_plaintext() -> None:
    options = client_options(ConsumerSettings(**BASE, broker_timeout_s=3))
    assert options == {
        "bootstrap_servers": "b:9093", "request_timeout_ms": 3000, "security_protocol": "PLAINTEXT", "client_id": "wharf-g",
    }  # fmt: skip


def test_sasl_over_tls_passes_the_credentials_and_a_checking_tls_context() -> None:
    settings = ConsumerSettings(
        **BASE, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
        sasl_plain_username="u", sasl_plain_password="secret",
    )  # fmt: skip
    options = client_options(settings)
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-256", "u", "secret",
    )  # fmt: skip
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert "secret" not in repr(settings)
