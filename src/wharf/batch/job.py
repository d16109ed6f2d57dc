"""A batch job's description, its parts' names, and its manifest: what lets a rerun resume.

The output is a directory: `part-NNNNNN.<ext>` for chunk NNNNNN (the chunk's rows, in input order), `manifest.json`
naming the job and the chunks finished (rows written, rows refused with their reasons), and `errors.jsonl` (one
`{"row": ..., "reason": ...}` per refused row, in row order) once the job ends with refused rows.

A part is written before its chunk enters the manifest, and the manifest is replaced whole (atomically), so a job
stopped at any moment (kill -9 included) leaves finished parts the manifest may not know yet, never a manifest that
names a missing part. A rerun of the same job does again only the chunks the manifest lacks, writing the same part
names again: no row is ever written twice. A rerun of a different job (another model, input or options) into the
same directory is refused. Each save costs one write of the whole manifest (a few bytes a chunk).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from fsspec import AbstractFileSystem

from wharf.batch.formats import FORMATS, BadRow, write_atomically
from wharf.errors import ConfigurationError

MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a job does; two runs of equal specs write the same output."""

    model: str
    input: str
    output: str
    input_format: str | None = None
    output_format: str | None = None
    runtime: str | None = None
    chunk_rows: int = 100_000
    batch_size: int | None = None  # None: the model's (predictor.py)
    outputs: list[str] | None = None
    keep: list[str] = field(default_factory=list)
    id_column: str = "id"

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the run that wrote the manifest (the batch size changes nothing)."""
        return {k: v for k, v in asdict(self).items() if k != "batch_size"}


def part_name(index: int, fmt: str) -> str:
    return f"part-{index:06d}{FORMATS[fmt]}"


@dataclass(frozen=True, slots=True)
class ChunkDone:
    rows: int
    bad: list[BadRow]

    def as_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "bad": [[b.row, b.reason] for b in self.bad]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ChunkDone:
        return cls(doc["rows"], [BadRow(row, reason) for row, reason in doc["bad"]])


@dataclass(frozen=True, slots=True)
class Manifest:
    """The job and the chunks it finished, by index."""

    job: dict[str, Any]
    chunks: int
    done: dict[int, ChunkDone] = field(default_factory=dict)

    def finished(self, index: int, outcome: ChunkDone) -> Manifest:
        return Manifest(self.job, self.chunks, {**self.done, index: outcome})

    def pending(self) -> list[int]:
        return [i for i in range(self.chunks) if i not in self.done]

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.done.values())

    def bad_rows(self) -> list[BadRow]:
        return sorted((b for d in self.done.values() for b in d.bad), key=lambda b: b.row)

    def as_json(self) -> bytes:
        doc = {
            "job": self.job,
            "chunks": self.chunks,
            "done": {str(i): d.as_json() for i, d in sorted(self.done.items())},
        }
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        doc = json.loads(data)
        return cls(doc["job"], doc["chunks"], {int(i): ChunkDone.from_json(d) for i, d in doc["done"].items()})


def begin(fs: AbstractFileSystem, directory: str, spec: JobSpec, chunks: int) -> Manifest:
    """The manifest to go on from: the one in `directory` when it is this job's, else a new one."""
    path = f"{directory}/{MANIFEST}"
    if not fs.exists(path):
        return Manifest(spec.identity(), chunks)
    with fs.open(path, "rb") as f:
        found = Manifest.from_json(f.read())
    if found.job != json.loads(json.dumps(spec.identity())) or found.chunks != chunks:
        raise ConfigurationError(
            f"{spec.output} holds the output of another job (its {MANIFEST} differs); choose another OUTPUT"
        )
    return found


def save(fs: AbstractFileSystem, directory: str, manifest: Manifest) -> None:
    write_atomically(fs, f"{directory}/{MANIFEST}", manifest.as_json())


def save_errors(fs: AbstractFileSystem, directory: str, bad: list[BadRow]) -> None:
    lines = b"".join(json.dumps({"row": b.row, "reason": b.reason}).encode() + b"\n" for b in bad)
    write_atomically(fs, f"{directory}/{ERRORS}", lines)
