"""Wharf's model server as a KServe serving runtime: the `ClusterServingRuntime` (`serving.kserve.io/v1alpha1`)
and the Dockerfile of its image.

KServe starts a runtime's container with the arguments the runtime declares. Like KServe's own Python runtimes
(kserve-sklearnserver, kserve-xgbserver), Wharf's declares the model's name (`{{.Name}}`: KServe fills in the
InferenceService's name, the name Wharf serves a model under too), the directory KServe's storage initializer
downloads the model into (`/mnt/models`), and the ports: HTTP 8080 (Knative's) and gRPC 8081. `wharf serve` takes
them under KServe's option names (`--model_name`, `--model_dir`, `--http_port`, `--grpc_port`) and finds the
model's format from the artifact, as on this machine. KServe appends the predictor's own `args` to these, so
Wharf's batching options carry over. The image listens on every interface (`WHARF_HOST=0.0.0.0`) as a user that
is not root, as KServe's runtimes run (`runAsNonRoot`).

A runtime serves the model formats of the services exported with it, and its image installs Wharf with only the
extras those formats need. It is named after them (`wharf-sklearn`, `wharf-sklearn-xgboost`), so exporting other
services later makes another runtime instead of replacing one that services already use. `autoSelect` is off:
only the services that name the runtime (`spec.predictor.model.runtime`, which the export sets) run on it. Each
format is listed without a version, and again with each version a service names: KServe matches a model's
`name:version` exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wharf import __version__
from wharf.errors import ConfigurationError

API_VERSION = "serving.kserve.io/v1alpha1"
KIND = "ClusterServingRuntime"
MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts a model
HTTP_PORT = 8080
GRPC_PORT = 8081
PROTOCOLS = ("v1", "v2", "grpc-v2")
CONTAINER = "kserve-container"  # the name KServe looks for in a runtime
ENTRYPOINT = ("wharf", "serve")
ARGS = ("--model_name={{.Name}}", f"--model_dir={MODEL_DIR}", f"--http_port={HTTP_PORT}", f"--grpc_port={GRPC_PORT}")
BASE_IMAGE = "python:3.11-slim"
USER_ID = 1000
#: A model format -> the extra of Wharf's package that serves it.
EXTRAS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "onnx": "onnx",
    "pytorch": "torch",
    "tensorflow": "tensorflow",
    "huggingface": "huggingface",
}
#: What KServe's own runtimes ask of a node by default; a component's `resources` take their place.
_RESOURCES = {"cpu": "1", "memory": "2Gi"}

FormatVersion = tuple[str, str | None]  # a model format, and the version a service names (None: none)


@dataclass(frozen=True, slots=True)
class ServingRuntime:
    """The runtime that serves `formats` (sorted, each once): its name, and the image it runs."""

    name: str
    image: str
    formats: tuple[FormatVersion, ...]

    @property
    def format_names(self) -> list[str]:
        return sorted({name for name, _ in self.formats})

    @property
    def extras(self) -> list[str]:
        """Wharf's extras the image installs."""
        return sorted({EXTRAS[name] for name in self.format_names})

    @property
    def requirement(self) -> str:
        return f"wharf[{','.join(self.extras)}]=={__version__}"


def serving_runtime(
    formats: Iterable[FormatVersion], name: str | None = None, image: str | None = None
) -> ServingRuntime:
    """The runtime for models of `formats`; unnamed, it is `wharf-FORMAT-...`, running the image `NAME:VERSION`
    (Wharf's version)."""
    given = tuple(sorted(set(formats), key=lambda f: (f[0], f[1] or "")))
    names = sorted({f for f, _ in given})
    if not names:
        raise ConfigurationError("no model formats to serve: a runtime needs at least one")
    unknown = [f for f in names if f not in EXTRAS]
    if unknown:
        raise ConfigurationError(f"Wharf's runtime image serves {', '.join(EXTRAS)}; not {', '.join(unknown)}")
    name = name or "wharf-" + "-".join(names)
    return ServingRuntime(name, image or f"{name}:{__version__}", given)


def cluster_serving_runtime(runtime: ServingRuntime) -> dict[str, Any]:
    """The ClusterServingRuntime manifest of `runtime`."""
    formats = [{"name": name, "autoSelect": False} for name in runtime.format_names]
    formats += [{"name": name, "version": version, "autoSelect": False} for name, version in runtime.formats if version]
    container = {
        "name": CONTAINER,
        "image": runtime.image,
        "args": list(ARGS),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"requests": dict(_RESOURCES), "limits": dict(_RESOURCES)},
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": runtime.name, "labels": {"app.kubernetes.io/managed-by": "wharf"}},
        "spec": {
            "annotations": {"prometheus.kserve.io/port": str(HTTP_PORT), "prometheus.kserve.io/path": "/metrics"},
            "supportedModelFormats": formats,
            "protocolVersions": list(PROTOCOLS),
            "containers": [container],
        },
    }


def dockerfile(runtime: ServingRuntime) -> str:
    """The Dockerfile of `runtime`'s image."""
    entrypoint = ", ".join(f'"{part}"' for part in ENTRYPOINT)
    return f"""\
# The image of KServe's ClusterServingRuntime {runtime.name}: Wharf's model server for {", ".join(runtime.format_names)}.
# Build it and push it where the cluster pulls images from, under the name the runtime gives:
#   docker build -t {runtime.image} . && docker push {runtime.image}
# WHARF_REQUIREMENT is what pip installs: this release of Wharf from the package index, or another build, e.g.
#   --build-arg WHARF_REQUIREMENT="wharf[{",".join(runtime.extras)}] @ https://.../wharf-{__version__}-py3-none-any.whl"
FROM {BASE_IMAGE}
ARG WHARF_REQUIREMENT="{runtime.requirement}"
RUN pip install --no-cache-dir "$WHARF_REQUIREMENT" \\
 && useradd --uid {USER_ID} --create-home --shell /usr/sbin/nologin wharf
USER {USER_ID}
WORKDIR /home/wharf
# A container listens on every interface; the runtime passes the model's name and directory, and the ports.
ENV WHARF_HOST=0.0.0.0
EXPOSE {HTTP_PORT} {GRPC_PORT}
ENTRYPOINT [{entrypoint}]
"""
