"""Manifests from YAML or JSON: each document dispatched by its apiVersion and kind, its problems reported.

What the server writes into a resource it shows (`status`, and metadata such as `resourceVersion` or `uid`) is
dropped from a document before it is read, as kubectl's apply does: `wharf get isvc NAME -o yaml | wharf apply -f -`
changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wharf.control.spec import batchjob, graph, inferenceservice, kafkasource, trainedmodel
from wharf.control.spec.batchjob import BatchJob
from wharf.control.spec.common import SpecError, validate
from wharf.control.spec.graph import InferenceGraph
from wharf.control.spec.inferenceservice import InferenceService
from wharf.control.spec.kafkasource import KafkaSource
from wharf.control.spec.paths import resolve_paths, resolve_trained_model_path
from wharf.control.spec.trainedmodel import TrainedModel
from wharf.control.spec.safe_yaml import load_documents

Manifest = InferenceService | InferenceGraph | BatchJob | TrainedModel | KafkaSource

#: kind -> (the apiVersion Wharf reads it in, its model)
KINDS: dict[str, tuple[str, type[Manifest]]] = {
    inferenceservice.KIND: (inferenceservice.API_VERSION, InferenceService),
    graph.KIND: (graph.API_VERSION, InferenceGraph),
    batchjob.KIND: (batchjob.API_VERSION, BatchJob),
    kafkasource.KIND: (kafkasource.API_VERSION, KafkaSource),
    trainedmodel.KIND: (trainedmodel.API_VERSION, TrainedModel),
}
#: Documents one text may hold unless the caller says otherwise.
MAX_DOCUMENTS = 100
#: Object metadata that the server sets: a document that carries it (one read back from the server) is applied
#: without it.
SERVER_METADATA = frozenset(
    {
        "uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink",
        "deletionTimestamp", "deletionGracePeriodSeconds",
    }
)  # fmt: skip
_KNOWN = " and ".join(f"{kind} ({api_version})" for kind, (api_version, _) in KINDS.items())


def parse_manifest(data: Any) -> Manifest:
    """One manifest (already decoded from YAML or JSON), validated and with its defaults, less what the server
    sets (`status`, `SERVER_METADATA`); raises SpecError."""
    if not isinstance(data, Mapping):
        raise SpecError([("", "a manifest must be a mapping with apiVersion, kind, metadata and spec")])
    data = {key: value for key, value in data.items() if key != "status"}
    if isinstance(data.get("metadata"), Mapping):
        data["metadata"] = {k: v for k, v in data["metadata"].items() if k not in SERVER_METADATA}
    kind = data.get("kind")
    if not kind:
        raise SpecError([("kind", "required")])
    if not isinstance(kind, str) or kind not in KINDS:
        raise SpecError([("kind", f"unknown kind {kind!r}; Wharf applies {_KNOWN}")])
    api_version, model = KINDS[kind]
    if data.get("apiVersion") != api_version:
        raise SpecError([("apiVersion", f"must be {api_version} for a {kind} (given: {data.get('apiVersion')!r})")])
    return validate(model, data)


def parse_manifests(
    text: str, max_documents: int = MAX_DOCUMENTS, documents_setting: str = "", base: Path | None = None
) -> list[Manifest]:
    """Every manifest in a YAML (or JSON) text of one or more documents (separated by `---`); raises SpecError.
    With `base` (an absolute directory: the file's), relative paths in the manifests are made absolute under it
    (`paths.resolve_paths`).

    The text is read within `safe_yaml`'s limits, and at most `max_documents` documents (`documents_setting` names
    what raises the limit). All documents are checked before anything is returned; when there are several, each
    problem's path starts with the document's position (from 1, as in the file) and, when known, its kind and
    name. Two documents for the same resource are an error. Empty documents are skipped; a text without any is an
    error.
    """
    documents = load_documents(text, max_documents, documents_setting)
    given = [(position, doc) for position, doc in enumerate(documents, start=1) if doc is not None]
    if not given:
        raise SpecError([("", "no manifest found")])
    manifests: list[Manifest] = []
    problems: list[tuple[str, str]] = []
    omitted = 0
    first_at: dict[tuple[str, str, str], int] = {}
    for position, document in given:
        label = _label(position, document) if len(given) > 1 else ""
        try:
            manifest = parse_manifest(document)
        except SpecError as e:
            problems += [(_within(label, path), reason) for path, reason in e.problems]
            omitted += e.omitted
            continue
        if base is not None and isinstance(manifest, InferenceService):
            resolve_paths(manifest, base)
        elif base is not None and isinstance(manifest, TrainedModel):
            resolve_trained_model_path(manifest, base)
        key = (manifest.kind, manifest.namespace, manifest.name)
        if key in first_at:
            problems.append((label, f"the same {manifest.kind} as document {first_at[key]}"))
        first_at.setdefault(key, position)
        manifests.append(manifest)
    if problems:
        raise SpecError(problems, omitted)
    return manifests


def _within(label: str, path: str) -> str:
    return f"{label}: {path}" if label and path else label or path


def _label(position: int, document: Any) -> str:
    """`document 2 (InferenceService sklearn-iris)`, or just `document 2` if it names no kind or name."""
    if isinstance(document, Mapping) and isinstance(document.get("metadata"), Mapping):
        kind, name = document.get("kind"), document["metadata"].get("name")
        if isinstance(kind, str) and isinstance(name, str):
            return f"document {position} ({kind} {name})"
    return f"document {position}"
