"""The model-server process: wires the repository, data plane, transports and metrics, and runs them.

Tracing is configured as the process starts (`wharf.telemetry.tracing`, off unless OTEL_EXPORTER_OTLP_* names an
endpoint): service `wharf-model-server`, with the replica's identity where `wharf up` gave it (WHARF_SERVICE,
WHARF_COMPONENT, WHARF_REVISION, WHARF_REPLICA); what is queued is exported as it stops.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from wharf.embedded_http import EmbeddedServer, listen
from wharf.model.base import Model
from wharf.model.repository import ModelRepository
from wharf.telemetry import logs
from wharf.server.dataplane import DataPlane, settle_heap
from wharf.server.grpc import start_grpc_server
from wharf.server.metrics import ServerMetrics
from wharf.server.openai import OpenAIApp
from wharf.server.openai_metrics import GenerationMetrics
from wharf.server.rest import RestApp
from wharf.server.settings import ServerSettings
from wharf.telemetry import tracing

log = logging.getLogger("wharf.server")


class ModelServer:
    """Serves one or many models in one process over REST and gRPC until SIGTERM or SIGINT.

    >>> ModelServer().start([MyModel("my-model")])
    """

    def __init__(
        self,
        settings: ServerSettings | None = None,
        repository: ModelRepository | None = None,
        reuse_port: bool = False,
        standby: Callable[[ServerSettings], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings or ServerSettings()
        self.metrics = ServerMetrics()
        self.repository = repository or ModelRepository()
        self.generation = GenerationMetrics(self.metrics.registry)
        self.repository.on_loaded = self._loaded
        self.repository.budget = self.settings.memory_budget
        self.metrics.watch_repository(self.repository.memory)
        self.reuse_port = reuse_port
        self.standby = standby  # awaited once the models are loaded, before listening (server/standby.py)
        self._stop: asyncio.Event | None = None

    def _loaded(self, model: Model, seconds: float) -> None:
        self.metrics.model_loaded(model.name, model.version, seconds)
        self.generation.loaded(model)

    def start(self, models: list[Model] | None = None) -> None:
        """Register `models`, load everything and serve; returns once the server has drained and stopped."""
        logs.configure(self.settings.log_level)
        if self.standby is None:  # (a standby learns its replica's identity when it is handed over)
            tracing.configure("wharf-model-server", resource_attributes(self.settings))
        for model in models or ():
            self.repository.add(model)
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                runner.run(self.serve())
        finally:
            tracing.shutdown()

    def stop(self) -> None:
        """Begin a graceful stop (what SIGTERM does)."""
        if self._stop is not None:
            self._stop.set()

    async def serve(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        dataplane = DataPlane(self.repository, settings, self.metrics)
        limits = settings.max_request_bytes, settings.body_timeout_s
        rest = RestApp(dataplane, self.metrics, *limits, OpenAIApp(dataplane, self.metrics, self.generation, *limits))
        grpc_server = None
        try:
            self.repository.discover()
            if not self.repository.index():  # still serves: models may be loaded through the repository API
                log.warning("no model to serve", extra={"repository": str(self.repository.root)})
            await self.repository.load_all()
            settle_heap()
            if self.standby is not None and not await self._stand_by(self.standby):
                return
            http_socket = listen(settings.host, settings.http_port, self.reuse_port)
            grpc_server, grpc_port = await start_grpc_server(dataplane, self.metrics, settings, self.reuse_port)
            http = EmbeddedServer(
                rest,
                timeout_keep_alive=int(settings.keepalive_timeout_s),
                timeout_graceful_shutdown=int(settings.drain_timeout_s),
            )
            http_task = await http.start(http_socket)
            dataplane.started = True
            log.info(
                "serving",
                extra={
                    "http_port": http_socket.getsockname()[1],
                    "grpc_port": grpc_port,
                    "host": settings.host,
                    "models": self.repository.names(),
                },
            )
            await asyncio.wait([http_task, asyncio.create_task(self._stop.wait())], return_when="FIRST_COMPLETED")
            log.info("draining", extra={"timeout_s": settings.drain_timeout_s})
            dataplane.started = False
            http.should_exit = True
            await asyncio.gather(http_task, grpc_server.stop(settings.drain_timeout_s))
        finally:
            if grpc_server is not None:
                await grpc_server.stop(None)  # at once, if the drain above did not run
            await self.repository.unload_all()
            rest.close()
            dataplane.close()
            log.info("stopped")

    async def _stand_by(self, standby: Callable[[ServerSettings], Awaitable[None]]) -> bool:
        """Await `standby` unless told to stop first: whether it returned (the server was handed over)."""
        assert self._stop is not None
        handed_over = asyncio.ensure_future(standby(self.settings))
        stopped = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([handed_over, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not handed_over.done():
            handed_over.cancel()
            return False
        handed_over.result()
        tracing.configure("wharf-model-server", resource_attributes(self.settings))
        return True


def resource_attributes(settings: ServerSettings) -> dict[str, str]:
    """The replica's identity, as its spans' resource attributes (those `wharf up` gave it)."""
    namespace, _, service = settings.service.rpartition("/")
    found = {
        "service.namespace": namespace,
        "wharf.service": service,
        "wharf.component": settings.component,
        "wharf.revision": settings.revision,
        "service.instance.id": settings.replica,
    }
    return {key: value for key, value in found.items() if value}


def loop_factory():  # type: ignore[no-untyped-def]
    try:
        import uvloop
    except ImportError:  # uvloop is optional; asyncio's loop is slower but correct
        return None
    return uvloop.new_event_loop
