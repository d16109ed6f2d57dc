"""The per-batch function of a batch job: a table of rows in, a table of predictions out (kept apart from the
reading of chunks, as Ray Data keeps `map_batches` apart from its blocks).

`load_predictor(model)` gives a `Predictor` for any model `wharf serve` serves, loaded by the same code (the runtime
found from the artifact, its `model-settings.json`, a `module:Class`), or, for `isvc/NAME` (`isvc/NAMESPACE/NAME`),
one that sends each mini-batch through the gateway to that running InferenceService (its transformer included),
`max_in_flight` requests at a time, retrying a refused one (503 while it scales up, 429, a lost connection) with
exponential backoff.

`Predictor.predict_table` cuts a table into mini-batches of `batch_size` rows and sends each through the model as
one V2 request. Without a `batch_size`, a model of a tabular runtime (scikit-learn, XGBoost, LightGBM: one vectorised
call over a matrix, whose fixed cost per call is large: a 100-tree forest predicts 250,000 rows 4.6 times slower in
calls of 1,024 rows than in one) takes each table whole, and any other model (a network, whose memory grows with its
batch; a custom model) and a service called over HTTP take `OTHER_BATCH_ROWS` a call. A model fitted on named
columns takes those columns by name, any other the table's feature columns (all but the id column and the kept
ones) as one matrix. Its output table holds the id column, the kept columns, and each output (one column for an
output of one value per row, `NAME_0`, `NAME_1`, ... for one of several). What it adds to the model's own predict
is one matrix copy of the features per mini-batch.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa

from wharf.errors import ConfigurationError, InvalidInput, ModelNotReady, RequestTimeout, ServerBusy, ServerUnreachable
from wharf.model.base import Model, is_async, to_response
from wharf.protocol.v2 import InferRequest, InferResponse, RequestedOutput, Tensor

ISVC_PREFIX = "isvc/"
#: Rows per predict call, without a `batch_size`, for a model not of a tabular runtime and for a service.
OTHER_BATCH_ROWS = 1024
PANDAS = "pd"
#: What a call through the gateway may meet while the service scales (activator, autoscaler) or restarts.
RETRIED = (ServerBusy, ModelNotReady, ServerUnreachable, RequestTimeout)
T = TypeVar("T")


class Predictor(Protocol):
    batch_size: int | None  # None: each table whole

    def predict_table(self, table: pa.Table, outputs: list[str] | None, keep: list[str], id_column: str) -> pa.Table:
        """Predictions for every row of `table` (which holds `id_column`): the id, the `keep` columns, `outputs`
        (None: the model's default)."""
        ...

    def close(self) -> None: ...


def load_predictor(
    model: str,
    *,
    runtime: str | None = None,
    batch_size: int | None = None,
    max_in_flight: int = 8,
    retries: int = 5,
    gateway_url: str | None = None,
) -> Predictor:
    """The predictor of `model`: an artifact path or URI, a `module:Class`, or `isvc/[NAMESPACE/]NAME`; `batch_size`
    rows a predict call (None: the model's, as the module says)."""
    if batch_size is not None and batch_size < 1:
        raise ConfigurationError("--batch-size must be at least 1")
    if model.startswith(ISVC_PREFIX):
        namespace, _, name = model.removeprefix(ISVC_PREFIX).rpartition("/")
        return ServicePredictor(
            name, namespace or "default", batch_size or OTHER_BATCH_ROWS, max_in_flight, retries, gateway_url
        )
    from wharf import storage
    from wharf.model.repository import source_factory
    from wharf.model.runtimes.custom import names_class
    from wharf.model.runtimes.tabular import TabularModel

    name = model.rpartition(":")[2].lower() if names_class(model) else storage.model_name(model)
    loaded = source_factory(model, name, runtime, storage.resolve)()
    return ModelPredictor(loaded, batch_size or (None if isinstance(loaded, TabularModel) else OTHER_BATCH_ROWS))


# -- the table's side: requests from rows, columns from responses -------------------------------------------------


def feature_names(table: pa.Table, keep: list[str], id_column: str, named: list[str] | None) -> list[str]:
    """The columns the model reads: its named columns, else all but the id and the kept ones."""
    if named:
        missing = [c for c in named if c not in table.column_names]
        if missing:
            raise InvalidInput(
                f"the input has no column(s) {missing} that the model takes; it has {table.column_names}"
            )
        return named
    skipped = {id_column, *keep}
    return [c for c in table.column_names if c not in skipped]


def request_of(table: pa.Table, features: list[str], by_name: bool, outputs: list[str] | None) -> InferRequest:
    """One V2 request for the rows of `table`: its features by name, or as one matrix `input-0`."""
    wanted = [RequestedOutput(o) for o in outputs] if outputs else None
    if by_name:
        inputs = [Tensor(c, _numpy(table.column(c))) for c in features]
        return InferRequest(inputs, parameters={"content_type": PANDAS}, outputs=wanted)
    matrix = np.column_stack([_numpy(table.column(c)) for c in features]) if features else np.zeros((len(table), 0))
    return InferRequest([Tensor("input-0", matrix)], outputs=wanted)


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    array = column.to_numpy()
    return array.astype(object) if array.dtype.kind == "U" else array


def columns_of(response: InferResponse, rows: int) -> dict[str, np.ndarray]:
    """The outputs of `response` as columns of `rows` values: `NAME`, or `NAME_0`, `NAME_1`, ... for several a row."""
    columns: dict[str, np.ndarray] = {}
    for tensor in response.outputs:
        data = np.asarray(tensor.data)
        if data.ndim == 0 or len(data) != rows:
            raise InvalidInput(f"output '{tensor.name}' has shape {list(data.shape)}, not one entry per row ({rows})")
        if data.ndim == 1:
            columns[tensor.name] = data
            continue
        flat = data.reshape(rows, -1)
        for j in range(flat.shape[1]):
            columns[f"{tensor.name}_{j}"] = flat[:, j]
    return columns


def assembled(table: pa.Table, keep: list[str], id_column: str, columns: dict[str, np.ndarray]) -> pa.Table:
    """The output table: the id, the kept columns, then the outputs' columns."""
    missing = [c for c in keep if c not in table.column_names]
    if missing:
        raise InvalidInput(f"--keep: the input has no column(s) {missing}; it has {table.column_names}")
    names = [id_column, *keep, *columns]
    arrays = [table.column(id_column), *(table.column(c) for c in keep), *(_arrow(v) for v in columns.values())]
    return pa.Table.from_arrays(arrays, names=names)


def _arrow(values: np.ndarray) -> pa.Array:
    if values.dtype.kind == "O":
        return pa.array([v.decode() if isinstance(v, bytes) else v for v in values])
    if values.dtype.kind == "S":
        return pa.array(values.astype(str))
    return pa.array(values)


def _batches(table: pa.Table, size: int | None) -> list[pa.Table]:
    if size is None:
        return [table]
    return [table.slice(start, size) for start in range(0, len(table), size)] or [table]


class ModelPredictor:
    """A model loaded in this process, run the way the model server runs it: preprocess, predict, postprocess."""

    def __init__(self, model: Model, batch_size: int | None) -> None:
        self.model = model
        self.batch_size = batch_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._call(model, "load")
        model.ready = True
        self._named: list[str] | None = getattr(model, "columns", None) or None

    def _call(self, model: Model, method: str, *args: Any) -> Any:
        if not is_async(model, method):
            return getattr(model, method)(*args)
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(getattr(model, method)(*args))

    def predict_table(self, table: pa.Table, outputs: list[str] | None, keep: list[str], id_column: str) -> pa.Table:
        if not len(table):  # every row of the chunk was bad
            return assembled(table, keep, id_column, {})
        features = feature_names(table, keep, id_column, self._named)
        parts = []
        for batch in _batches(table, self.batch_size):
            request = request_of(batch, features, self._named is not None, outputs)
            payload = self._call(self.model, "preprocess", request)
            result = self._call(self.model, "postprocess", self._call(self.model, "predict", payload))
            parts.append(
                assembled(batch, keep, id_column, columns_of(to_response(self.model, result, request), len(batch)))
            )
        return pa.concat_tables(parts)

    def close(self) -> None:
        self._call(self.model, "unload")
        if self._loop is not None:
            self._loop.close()


class ServicePredictor:
    """A running InferenceService, called through the gateway (V2 REST) on the host its status gives."""

    def __init__(
        self, name: str, namespace: str, batch_size: int, max_in_flight: int, retries: int, gateway_url: str | None
    ) -> None:
        from wharf.sdk import AsyncWharf

        self.name, self.batch_size, self.retries = name, batch_size, retries
        self._loop = asyncio.new_event_loop()
        self._sdk = AsyncWharf(gateway_url=gateway_url)
        self._limit = max(1, max_in_flight)
        self._client, self._host = self._loop.run_until_complete(self._connect(namespace))

    async def _connect(self, namespace: str) -> tuple[Any, str]:
        from urllib.parse import urlsplit

        from wharf.client.inference import InferenceClient

        url = (await self._sdk.get(self.name, namespace)).url
        if not url:
            raise ModelNotReady(f"InferenceService {namespace}/{self.name} has no URL yet")
        host = urlsplit(url).netloc
        return InferenceClient(self._sdk.gateway_url, protocol="v2", headers={"host": host}), host

    def predict_table(self, table: pa.Table, outputs: list[str] | None, keep: list[str], id_column: str) -> pa.Table:
        if not len(table):  # every row of the chunk was bad
            return assembled(table, keep, id_column, {})
        return self._loop.run_until_complete(self._predict(table, outputs, keep, id_column))

    async def _predict(self, table: pa.Table, outputs: list[str] | None, keep: list[str], id_column: str) -> pa.Table:
        features = feature_names(table, keep, id_column, None)
        gate = asyncio.Semaphore(self._limit)

        async def one(batch: pa.Table) -> pa.Table:
            request = request_of(batch, features, False, outputs)
            async with gate:
                response = await with_retries(lambda: self._client.infer(self.name, request), self.retries)
            return assembled(batch, keep, id_column, columns_of(response, len(batch)))

        return pa.concat_tables(await asyncio.gather(*(one(b) for b in _batches(table, self.batch_size))))

    def close(self) -> None:
        async def closing() -> None:
            await self._client.close()
            await self._sdk.close()

        self._loop.run_until_complete(closing())
        self._loop.close()


async def with_retries(
    call: Callable[[], Awaitable[T]], retries: int, first_wait_s: float = 0.2, longest_wait_s: float = 10.0
) -> T:
    """`call()`, tried again up to `retries` times after an error in `RETRIED`, waiting twice as long each time
    (with jitter)."""
    wait = first_wait_s
    for attempt in range(retries + 1):
        try:
            return await call()
        except RETRIED:
            if attempt == retries:
                raise
        await asyncio.sleep(wait * (0.5 + random.random()))
        wait = min(wait * 2, longest_wait_s)
    raise AssertionError("unreachable")
