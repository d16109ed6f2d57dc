"""Prometheus HTTP service discovery: the scrape targets of one Wharf, as Prometheus' `http_sd_configs` reads them.

The answer is a JSON list of target groups, `{"targets": ["HOST:PORT"], "labels": {...}}`, one group per target
(each has labels of its own). Every target serves Prometheus' text format at `/metrics` (`__metrics_path__`), and
its `job` label says what it is:
- `wharf-replica`: a model-server replica, labelled `namespace`, `service` (the InferenceService), `component`
  (predictor, transformer or explainer), `revision` and `replica` (its id, as `wharf logs` names it);
- `wharf-gateway`, `wharf-control` (the control plane), `wharf-monitor` (the model monitor): one target each.

The labels a target gets never clash with the labels of its own metrics, so that Prometheus keeps both without
renaming (`exported_*`) whether or not a scrape job sets `honor_labels`: a replica's metrics are labelled `model`,
`protocol`, `status`, `version` and `step`, none of a replica target's; the gateway, the control plane and the
monitor label their metrics `namespace`, `service`, `revision` (and `component`, `replica` for the cost figures)
themselves, and their targets get no label but `job`.

Pure: addresses and names in, JSON-ready data out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

METRICS_PATH = "/metrics"
REPLICA_JOB = "wharf-replica"
GATEWAY_JOB = "wharf-gateway"
CONTROL_JOB = "wharf-control"
MONITOR_JOB = "wharf-monitor"


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    """One process Prometheus scrapes: where (`HOST:PORT`), its job and its other labels."""

    address: str
    job: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def group(self) -> dict[str, Any]:
        """The target as one target group of an http_sd answer."""
        return {
            "targets": [self.address],
            "labels": {"__metrics_path__": METRICS_PATH, "job": self.job, **self.labels},
        }


def replica_target(
    address: str, namespace: str, service: str, component: str, revision: str, replica: str
) -> ScrapeTarget:
    """A model-server replica of a service's component revision, serving at `address`."""
    labels = {"namespace": namespace, "service": service, "component": component, "revision": revision}
    return ScrapeTarget(address, REPLICA_JOB, {**labels, "replica": replica})


def http_sd(targets: Iterable[ScrapeTarget]) -> list[dict[str, Any]]:
    """The answer of the discovery endpoint: one target group per target, in the order given."""
    return [target.group() for target in targets]


def local_address(host: str, port: int) -> str:
    """`HOST:PORT` where a process on this machine reaches a listener on `host`: loopback for a wildcard
    (0.0.0.0, ::), an IPv6 address in brackets."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:  # a host name
        return f"{host}:{port}"
    if ip.is_unspecified:
        ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def url_address(url: str) -> str:
    """`local_address` of an `http://HOST:PORT` URL (port 80 when it names none)."""
    parts = urlsplit(url)
    return local_address(parts.hostname or "127.0.0.1", parts.port or 80)
