"""`Gateway`: what the control plane embeds — the REST and gRPC ingress over the route table it is handed."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable

import grpc

from wharf.embedded_http import EmbeddedServer, listen
from wharf.gateway.bandits import BanditLedger
from wharf.gateway.dispatch import Dispatcher
from wharf.gateway.feedback import RecentRequests
from wharf.gateway.edges import EdgeStats
from wharf.gateway.grpc_proxy import GrpcProxy, GrpcUpstream, grpc_server_options
from wharf.gateway.metrics import GatewayMetrics
from wharf.gateway.payloads import SinkPost
from wharf.gateway.proxy import RestProxy
from wharf.gateway.routes import RouteTable
from wharf.gateway.settings import GatewaySettings
from wharf.gateway.stats import RevisionStats
from wharf.gateway.upstream import HttpUpstream
from wharf.logger import HttpxPost, PayloadLogger


class Gateway:
    """Routes REST and gRPC requests to the replicas of a `RouteTable`, and counts them per revision.

    Runs in the caller's event loop; call `update` and `stats` from that loop's thread. A request for a revision
    without a ready replica waits in the activator until a table from `update` brings one; `on_demand(revision
    name)` is called, in that loop, when requests start waiting for a revision, so that it can be scaled up.

    >>> gateway = Gateway()
    >>> gateway.update(table)
    >>> http_port, grpc_port = await gateway.start("127.0.0.1", 8080, 8081)
    """

    def __init__(
        self,
        settings: GatewaySettings | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_demand: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings or GatewaySettings()
        self._dispatcher = Dispatcher(self.settings, rng, clock)
        self.metrics = GatewayMetrics(self._dispatcher)  # served at /metrics on the REST port
        self.on_demand = on_demand
        self._http_upstream = HttpUpstream(
            self.settings.connect_timeout_s,
            self.settings.pool_size_per_replica,
            self.settings.pool_idle_timeout_s,
            streams=True,  # event streams pass through as they come (streaming.py)
        )
        self._grpc_upstream = GrpcUpstream(self.settings.max_request_bytes)
        self._sink_upstream = HttpUpstream(self.settings.connect_timeout_s, 64, self.settings.pool_idle_timeout_s)
        self._sink_fallback = HttpxPost()  # for https:// sinks
        self.payloads = PayloadLogger(
            self.settings.payload_log_queue_size,
            self.settings.payload_log_queue_bytes,
            timeout_s=self.settings.payload_log_timeout_s,
            post=SinkPost(self._sink_upstream, self._sink_fallback),
        )
        recent = RecentRequests(self.settings.feedback_ttl_s, self.settings.feedback_memory, clock)
        self.bandits = BanditLedger(recent)  # bandits' statistics and the requests they routed (bandits.py)
        self._http: EmbeddedServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._grpc: grpc.aio.Server | None = None

    def update(self, table: RouteTable) -> None:
        """Route new requests by `table` (ValueError, and the old table kept, if it is inconsistent).

        The swap is atomic: a request in flight finishes with the table it started with.
        """
        previous = self._dispatcher.router.table
        self._dispatcher.update(table)
        self.bandits.retain(table)
        replicas = [p for s in table.services for r in s.revisions.values() for p in r.replicas]
        self._http_upstream.retain({replica.http_url for replica in replicas})
        if self._grpc is not None:
            grace = max((r.timeout_s for s in previous.services for r in s.revisions.values()), default=0.0)
            self._grpc_upstream.retain({replica.grpc_target for replica in replicas}, grace)

    def stats(self) -> dict[str, RevisionStats]:
        """Per revision name of the current table: requests in flight and waiting in the activator now, and
        answers over the stats window."""
        return self._dispatcher.snapshot()

    def edges(self) -> tuple[EdgeStats, ...]:
        """Who called which revision or graph of the current table over the stats window (edges.py)."""
        return self._dispatcher.edges.snapshot(self._dispatcher.router.table)

    def payload_counts(self) -> dict[str, int]:
        """How many payload log events were sent, dropped and failed so far."""
        return self.payloads.counts

    @property
    def on_demand(self) -> Callable[[str], None] | None:
        """Called with a revision's name when requests start waiting for it to get a ready replica (once per wait,
        not per request); it must not block."""
        return self._dispatcher.activator.on_demand

    @on_demand.setter
    def on_demand(self, callback: Callable[[str], None] | None) -> None:
        self._dispatcher.activator.on_demand = callback

    async def start(self, host: str = "127.0.0.1", http_port: int = 0, grpc_port: int = 0) -> tuple[int, int]:
        """Listen for REST and gRPC (port 0: any free port) and return the ports bound."""
        listener = listen(host, http_port)
        try:
            bound_grpc = await self._start_grpc(f"{host}:{grpc_port}")
            await self._start_http(listener)
        except BaseException:
            listener.close()
            await self.stop(0)
            raise
        return listener.getsockname()[1], bound_grpc

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop listening, let requests in flight finish for up to `grace_s`, then close every connection."""
        until = time.monotonic() + grace_s
        if self._http is not None:
            self._http.config.timeout_graceful_shutdown = grace_s  # type: ignore[assignment]
            self._http.should_exit = True
        await asyncio.gather(
            *([self._http_task] if self._http_task else []),
            *([self._grpc.stop(grace_s)] if self._grpc else []),
            return_exceptions=True,
        )
        await self._dispatcher.close()
        await self.payloads.close(max(until - time.monotonic(), 0.0))  # the same grace: what is left of it
        self._sink_upstream.close()
        await self._sink_fallback.close()
        self._http_upstream.close()
        await self._grpc_upstream.close()
        self._http = self._http_task = self._grpc = None

    async def _start_grpc(self, address: str) -> int:
        self._grpc = grpc.aio.server(options=grpc_server_options(self.settings))
        proxy = GrpcProxy(self._dispatcher, self._grpc_upstream, self.payloads, self.bandits)
        self._grpc.add_generic_rpc_handlers((proxy,))
        port = self._grpc.add_insecure_port(address)
        await self._grpc.start()
        return port

    async def _start_http(self, listener: socket.socket) -> None:
        self._http = EmbeddedServer(
            RestProxy(self._dispatcher, self._http_upstream, self.settings, self.payloads, self.metrics, self.bandits),
            date_header=False,
            timeout_keep_alive=int(self.settings.keepalive_timeout_s),
        )
        self._http_task = await self._http.start(listener)
