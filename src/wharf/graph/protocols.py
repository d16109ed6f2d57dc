"""Which path a graph's step calls an InferenceService at: the predict path of the service's protocolVersion, as
KServe's graph controller resolves a `serviceName` step (the protocol of the service's transformer when it has
one, else its predictor's).

- `v1`: `POST /v1/models/{model}:predict`
- `v2` and `grpc-v2`: `POST /v2/models/{model}/infer` (the graph speaks HTTP; a Wharf model server answers the
  Open Inference Protocol over REST whichever protocol its service names)

The step's data goes as it is: the graph converts no body from one protocol to the other (neither does KServe's
router), so a graph's services should speak the protocol of the data it is sent. A V1 body (`instances`) sent to
a V2 service is refused (400: no `inputs`); a V2 body sent to a V1 service is read as V1, whose `inputs` are rows,
which a model refuses unless it takes such rows. Either way the graph answers the service's 4xx, its error naming
the step, the service, its protocol and the path.
"""

from __future__ import annotations

from typing import NamedTuple

_PATHS = {"v1": "/v1/models/{}:predict", "v2": "/v2/models/{}/infer", "grpc-v2": "/v2/models/{}/infer"}


class ServiceCall(NamedTuple):
    """Where a step POSTs its data on a service, and how errors name that call."""

    path: str
    described: str  # e.g. "protocol v2: POST /v2/models/iris/infer"


def service_call(protocol: str, model: str) -> ServiceCall:
    """The call of a step to a service of `protocol` (`v1`, `v2` or `grpc-v2`) serving `model`."""
    path = _PATHS[protocol].format(model)
    return ServiceCall(path, f"protocol {protocol}: POST {path}")
