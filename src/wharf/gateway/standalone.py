"""The gateway as a process of its own (`wharf gateway`, started by `wharf up`).

Traffic must not depend on the control plane's health: a slow apply, a reconcile storm or a crashed daemon would
stop every request if both shared an event loop. So the gateway runs here, routes by the last table its daemon
sent, and keeps routing by it while no daemon is connected; a restarted daemon connects again on the same socket
and sends a fresh table. The process ends on SIGTERM/SIGINT or when its daemon sends `Stop`. Its spans (service
`wharf-gateway`; `wharf.telemetry.tracing`, on where OTEL_EXPORTER_OTLP_* names an endpoint) are flushed as it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from wharf.gateway import channel
from wharf.gateway.app import Gateway
from wharf.gateway.settings import GatewaySettings
from wharf.telemetry import tracing

log = logging.getLogger("wharf.gateway")
_STOP_GRACE_S = 10.0  # on a signal
_MAX_UNREAD = 2**20  # bytes sent to a daemon that it has not read yet, beyond which statistics are skipped


class DaemonLink:
    """The gateway's side of the channel: one daemon at a time; a newer connection replaces the older."""

    def __init__(self, gateway: Gateway, host: str, ports: tuple[int, int], stop: asyncio.Event) -> None:
        self.gateway = gateway
        self.host = host
        self.ports = ports
        self.stop = stop
        self.grace_s = _STOP_GRACE_S
        self._writer: asyncio.StreamWriter | None = None
        gateway.on_demand = self._demand

    async def connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            channel.check_peer(writer)
        except PermissionError as e:
            log.warning(str(e))
            writer.close()
            return
        if self._writer is not None:
            self._writer.close()  # a daemon that restarted: its predecessor's connection is stale
        self._writer = writer
        channel.send(writer, channel.Hello(os.getpid(), self.host, *self.ports))
        self.gateway.bandits.reconnected()
        pusher = asyncio.create_task(self._push(writer))
        log.info("daemon connected")
        try:
            while True:
                message = await channel.receive(reader)
                if isinstance(message, channel.Table):
                    self._update(message)
                elif isinstance(message, channel.Arms):
                    self.gateway.bandits.arms_state(message.totals, message.applied)
                elif isinstance(message, channel.Stop):
                    self.grace_s = message.grace_s
                    self.stop.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            log.info("daemon disconnected; routing by the last table until one connects again")
        except asyncio.CancelledError:  # the gateway is stopping: this connection ends with it
            pass
        finally:
            pusher.cancel()
            if self._writer is writer:
                self._writer = None
            writer.close()

    def _update(self, message: channel.Table) -> None:
        try:
            self.gateway.update(message.table)
        except ValueError as e:  # an inconsistent table: the previous one stays
            log.error("route table refused", extra={"reason": str(e)})

    async def _push(self, writer: asyncio.StreamWriter) -> None:
        while not writer.is_closing():
            if writer.transport.get_write_buffer_size() < _MAX_UNREAD:  # else the daemon is not reading: skip
                gateway = self.gateway
                counts, bandit = dict(gateway.payload_counts()), gateway.bandits.report()
                channel.send(writer, channel.Load(gateway.stats(), counts, gateway.edges(), bandit))
            await asyncio.sleep(channel.PUSH_S)

    def _demand(self, revision: str) -> None:
        if self._writer is not None and not self._writer.is_closing():
            channel.send(self._writer, channel.Demand(revision))


async def run(host: str, http_port: int, grpc_port: int, socket_path: Path) -> None:
    """Serve until SIGTERM/SIGINT or the daemon's `Stop`; the channel listens on `socket_path`."""
    tracing.configure("wharf-gateway")
    gateway = Gateway(GatewaySettings())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ports = await gateway.start(host, http_port, grpc_port)
    link = DaemonLink(gateway, host, ports, stop)
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()  # left by a gateway that was killed
    old_umask = os.umask(0o177)  # the socket is created for this user only
    try:
        server = await asyncio.start_unix_server(link.connected, path=socket_path)
    finally:
        os.umask(old_umask)
    log.info("gateway is up", extra={"http_port": ports[0], "grpc_port": ports[1], "socket": str(socket_path)})
    try:
        await stop.wait()
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        await gateway.stop(link.grace_s)
        tracing.shutdown()
        log.info("gateway is down")
