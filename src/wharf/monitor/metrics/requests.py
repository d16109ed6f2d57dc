"""The request bodies of the metrics API, in TrustyAI's field names (camelCase JSON).

Every body names a model (`modelId`), optionally a request name (a label of its gauge), the metric (`metricName`,
which scheduling clients send; it must name the endpoint's metric) and how many of the latest inferences to read
(`batchSize`, 5000 when absent, TrustyAI's default). `thresholdDelta` sets the bounds of the metric (each metric has
its default). Drift bodies add the reference data tag (`referenceTag`) and the columns to compare (`fitColumns`, all
that the metric can compare when absent); `approxkstest` adds the sketch's rank error (`epsilon`), and the binned
distances (`jensenshannon`, `psi`) the number of bins (`bins`), both Wharf's. Group fairness bodies name the
protected input (`protectedAttribute`), its privileged and unprivileged values, the outcome (`outcomeName`, an
output) and its favorable value. A value is a JSON scalar, TrustyAI's typed form `{"type": "INT32", "value": 1}`,
or (Wharf's) a non-empty list of scalars meaning any of them. Performance bodies (Wharf's) name the output compared
with its ground truth (`outcomeName`) and must give `thresholdDelta`: no default bound suits every model.

Unknown fields are refused, not ignored. Parsing is pure; whether the model, its columns and the reference exist is
checked against the stored rows by the metrics themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic.alias_generators import to_camel

from wharf.errors import InvalidInput

#: The latest inferences a metric reads when the body gives no `batchSize`.
DEFAULT_BATCH_SIZE = 5000

Scalar = bool | int | float | str


def _values(value: Any) -> Scalar | list[Scalar]:
    """A JSON scalar; TrustyAI's typed value `{"type": ..., "value": v}` is `v`; or a non-empty list of scalars."""
    if isinstance(value, Mapping) and set(value) == {"type", "value"}:
        value = value["value"]
    if isinstance(value, Scalar):
        return value
    if isinstance(value, list) and value and all(isinstance(v, Scalar) for v in value):
        return value
    raise ValueError('expected a value: a JSON scalar, {"type": ..., "value": ...} or a non-empty list of scalars')


#: One value, or (Wharf's) any of several, of a column.
Values = Annotated[Scalar | list[Scalar], PlainValidator(_values)]


def values_of(value: Scalar | list[Scalar]) -> tuple[Scalar, ...]:
    """The values a `Values` field matches."""
    return tuple(value) if isinstance(value, list) else (value,)


class MetricRequest(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    model_id: str = Field(min_length=1)
    request_name: str | None = None
    metric_name: str | None = None
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1)
    threshold_delta: float | None = Field(None, ge=0, allow_inf_nan=False)


class DriftRequest(MetricRequest):
    reference_tag: str = Field(min_length=1)
    fit_columns: list[str] | None = Field(None, min_length=1)


class ApproxKSTestRequest(DriftRequest):
    epsilon: float = Field(0.001, gt=0, lt=1, description="the largest rank error of the reference's sketch")


class BinnedDriftRequest(DriftRequest):
    bins: int = Field(10, ge=2, le=1000, description="quantile bins of a numeric column")


class GroupRequest(MetricRequest):
    protected_attribute: str = Field(min_length=1)
    privileged_attribute: Values
    unprivileged_attribute: Values
    outcome_name: str = Field(min_length=1)
    favorable_outcome: Values


class PerformanceRequest(MetricRequest):
    outcome_name: str = Field(min_length=1)
    threshold_delta: float = Field(ge=0, allow_inf_nan=False)  # required: accuracy's lower or an error's upper bound


class ScheduleId(BaseModel):
    """The body of `DELETE .../request`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requestId: UUID  # TrustyAI's field name


M = TypeVar("M", bound=BaseModel)


def parse(kind: type[M], body: Any) -> M:
    """`body` as a `kind`; InvalidInput naming each wrong field."""
    try:
        return kind.model_validate(body)
    except ValidationError as error:
        raise InvalidInput("; ".join(_problem(e) for e in error.errors(include_url=False))) from None


def _problem(error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{field}: {error['msg']}"
