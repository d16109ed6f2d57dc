"""Wharf's own `wharf.dev/v1alpha1` BatchJob: a `wharf batch` run that the control plane starts and watches.

`spec.model` is what `wharf batch` scores with: an artifact path or URI, or `isvc/NAME` (an InferenceService of the
job's namespace, through the gateway). `input` and `output` are paths or URIs the storage layer reads and writes;
`workers`, `batchSize`, `chunkRows`, `outputs`, `keep` and `idColumn` are the command's options of the same names
(unset: its defaults). A job runs once: changing a finished job's spec does not run it again (delete it and apply
it anew); deleting a running one stops it. Its status says how far it got (`rowsDone` of `rowsTotal`, `errors`: the
bad rows set aside) and how it ended (conditions Running, Succeeded, Failed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from wharf.control.spec.common import Problem, SpecModel, TopLevelResource, check_resource_name

API_VERSION = "wharf.dev/v1alpha1"
KIND = "BatchJob"
SERVICE_PREFIX = "isvc/"


class BatchJobSpec(SpecModel):
    """What to score, with what, and where the predictions go."""

    model: str = Field(min_length=1, description="an artifact path or URI, or isvc/NAME (a service to call)")
    input: str = Field(min_length=1, description="a file, a directory of parts, or a URI (CSV, Parquet, JSONL, NPY)")
    output: str = Field(min_length=1, description="where the parts and the manifest are written")
    workers: int | None = Field(None, ge=1, le=1024, description="processes scoring chunks (default: the cores)")
    batch_size: int | None = Field(None, ge=1, description="rows per predict call")
    chunk_rows: int | None = Field(None, ge=1, description="rows per chunk (each written to a part of its own)")
    outputs: list[str] = Field(default_factory=list, description="the model outputs written (default: all)")
    keep: list[str] = Field(default_factory=list, description="input columns copied to the output")
    id_column: str | None = Field(None, min_length=1, description="the input column that identifies a row")

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        for field in ("model", "input", "output", "id_column"):
            if "\x00" in (getattr(self, field) or ""):
                yield (field,), "must not contain a NUL character"
        if self.model.startswith(SERVICE_PREFIX):
            try:
                check_resource_name(self.model[len(SERVICE_PREFIX) :])
            except ValueError as e:
                yield ("model",), f"isvc/NAME: the name {e}"
        if self.input.rstrip("/") == self.output.rstrip("/"):
            yield ("output",), "must not be the input"
        for field in ("outputs", "keep"):
            for position, name in enumerate(getattr(self, field)):
                if not name or "," in name:
                    yield (field, position), "a column name, not empty and without ','"


class BatchJob(TopLevelResource):
    api_version: Literal["wharf.dev/v1alpha1"]
    kind: Literal["BatchJob"]
    spec: BatchJobSpec

    def to_manifest(self) -> dict[str, Any]:
        """The manifest as given, without the options left unset."""
        return self.model_dump(mode="json", exclude_none=True)
