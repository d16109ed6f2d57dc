"""What a detector is configured with (the bodies of `POST /detectors/outliers` and `POST /detectors/adversarial`,
camelCase, unknown fields refused) and how configurations are kept: the table `detectors` of the monitor's SQLite
file, beside the store's tables, through a connection of its own opened per operation (configuring is rare and
never on the path of logged events).

A kept configuration holds its body and what its fit found that a restart needs without calling the model again
(feature squeezing: the threshold and the reference's range); outlier detectors are fitted again on their
reference rows at start-up (the fit is seeded, so they come back the same).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from wharf.monitor.side_table import SideTable

log = logging.getLogger(__name__)

Kind = Literal["outliers", "adversarial"]
KINDS: tuple[Kind, ...] = ("outliers", "adversarial")


class DetectorBody(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    model_id: str = Field(min_length=1, description="the model (its InferenceService) whose logged rows are checked")
    reference_tag: str = Field("TRAINING", min_length=1, description="the data tag of the reference rows to fit on")
    reply_url: str | None = Field(
        None, pattern=r"^https?://\S+$", description="where findings go as CloudEvents (None: WHARF_MONITOR_REPLY_URL)"
    )


class OutlierBody(DetectorBody):
    method: Literal["isolation_forest", "elliptic_envelope"] = "isolation_forest"
    contamination: float = Field(0.01, gt=0, le=0.5, description="the share of reference rows scored as outliers")


class AdversarialBody(DetectorBody):
    squeezers: str = Field("levels:5,levels:8", min_length=1, description="levels:N, bits:B or round:STEP, by commas")
    fpr: float = Field(0.05, gt=0, lt=1, description="the false-positive rate the threshold is fitted for")
    sample_rate: float = Field(1.0, ge=0, le=1, description="the share of logged inferences checked")
    namespace: str = Field("default", min_length=1, description="the InferenceService's namespace")
    output: str = Field("predict_proba", min_length=1, description="the model's output of class probabilities")
    protocol: Literal["v1", "v2"] = Field("v2", description="how the predictor is called through the gateway")


BODIES: dict[Kind, type[DetectorBody]] = {"outliers": OutlierBody, "adversarial": AdversarialBody}


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    id: str
    kind: Kind
    body: DetectorBody
    created: float  # Unix seconds
    kept: dict[str, Any] = field(default_factory=dict)  # what the fit found that a restart needs

    @property
    def model(self) -> str:
        return self.body.model_id


_SCHEMA = """
CREATE TABLE IF NOT EXISTS detectors (
    id TEXT PRIMARY KEY,        -- a UUID
    kind TEXT NOT NULL,         -- outliers, adversarial
    body TEXT NOT NULL,         -- the configuration as JSON, camelCase
    kept TEXT NOT NULL,         -- what its fit found that a restart needs, JSON
    created REAL NOT NULL       -- Unix seconds
)
"""


class DetectorTable:
    """The configurations kept in the SQLite file `database`."""

    def __init__(self, database: str | Path, busy_timeout_s: float = 10.0) -> None:
        self._table = SideTable(database, _SCHEMA, busy_timeout_s)

    def put(self, config: DetectorConfig, replaces: str | None = None) -> None:
        """Keep `config`, in place of configuration `replaces` (if any), in one transaction."""
        body = orjson.dumps(config.body.model_dump(mode="json", by_alias=True)).decode()
        with self._table.transaction() as connection:
            if replaces is not None:
                connection.execute("DELETE FROM detectors WHERE id = ?", (replaces,))
            connection.execute(
                "INSERT INTO detectors (id, kind, body, kept, created) VALUES (?, ?, ?, ?, ?)",
                (config.id, config.kind, body, orjson.dumps(config.kept).decode(), config.created),
            )

    def remove(self, config_id: str) -> None:
        with self._table.transaction() as connection:
            connection.execute("DELETE FROM detectors WHERE id = ?", (config_id,))

    def load(self) -> list[DetectorConfig]:
        """Every kept configuration, oldest first (one whose kind or body is no longer understood is left out)."""
        with self._table.transaction() as connection:
            found = connection.execute("SELECT id, kind, body, kept, created FROM detectors ORDER BY rowid").fetchall()
        configs = []
        for config_id, kind, body, kept, created in found:
            try:
                parsed = BODIES[kind].model_validate(orjson.loads(body))
            except (KeyError, ValidationError):
                log.warning("detector %s not restored: its kind or configuration is not understood", config_id)
                continue
            configs.append(DetectorConfig(config_id, kind, parsed, created, orjson.loads(kept)))
        return configs
