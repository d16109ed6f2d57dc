"""`GatewayProcess`: the control plane's handle on its gateway, which runs as a process of its own.

It offers what the reconciler needs of a gateway (`update`, `stats`, `payload_counts`, `on_demand`), and the
service graph its `edges`, over `wharf.gateway.channel`. `start` adopts the gateway a crashed daemon left running
on this WHARF_HOME (it kept routing meanwhile) or starts one; if the gateway process dies, a new one is started on
the same ports and handed the last table. Statistics are the snapshot the gateway last pushed (at most
`channel.PUSH_S` old).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from wharf.control.backends.process import ReplicaProcess
from wharf.errors import ConfigurationError
from wharf.gateway import channel
from wharf.gateway.bandits import ArmTable, BanditReport
from wharf.gateway.edges import EdgeStats
from wharf.gateway.routes import RouteTable
from wharf.gateway.stats import RevisionStats

log = logging.getLogger(__name__)
_CONNECT_S = 2.0  # a listening gateway answers its socket at once
_RETRY_S = 0.2


class GatewayProcess:
    def __init__(self, home: Path, start_timeout_s: float = 30.0) -> None:
        self.home = home
        self.socket = channel.socket_path(home)
        self.log_path = home / "logs" / "gateway.log"
        self.start_timeout_s = start_timeout_s
        self.on_demand: Callable[[str], None] | None = None
        #: applies a bandit report of the gateway, and answers every gateway's totals and those of its it includes
        self.on_bandit: Callable[[BanditReport], tuple[ArmTable, ArmTable]] | None = None
        self.hello: channel.Hello | None = None
        self._process: ReplicaProcess | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._table: RouteTable | None = None
        self._load = channel.Load({})
        self._follower: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self, host: str, http_port: int, grpc_port: int) -> tuple[int, int]:
        """Adopt this home's running gateway if it listens where asked (port 0: anywhere), else start one; return
        its HTTP and gRPC ports."""
        if await self._connect():
            assert self.hello is not None
            wanted = (host, http_port or self.hello.http_port, grpc_port or self.hello.grpc_port)
            if (self.hello.host, self.hello.http_port, self.hello.grpc_port) == wanted:
                log.info("adopted the running gateway", extra={"pid": self.hello.pid})
            else:
                log.info("the running gateway listens elsewhere: replacing it", extra={"pid": self.hello.pid})
                await self._stop_adopted(5.0)
                await self._spawn(host, http_port, grpc_port)
        else:
            await self._spawn(host, http_port, grpc_port)
        self._follower = asyncio.create_task(self._follow())
        assert self.hello is not None
        return self.hello.http_port, self.hello.grpc_port

    def update(self, table: RouteTable) -> None:
        """Route by `table` from now on (sent at once, or as soon as the gateway is reached again)."""
        self._table = table
        if self._writer is not None and not self._writer.is_closing():
            channel.send(self._writer, channel.Table(table))

    def stats(self) -> dict[str, RevisionStats]:
        return self._load.stats

    def payload_counts(self) -> dict[str, int]:
        return self._load.payload_counts

    def edges(self) -> tuple[EdgeStats, ...]:
        """Who called whom, as the gateway last pushed it (none from a gateway of an earlier release)."""
        return getattr(self._load, "edges", ())

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop the gateway: requests in flight get up to `grace_s` to finish."""
        self._closing = True
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(BaseException):  # whatever ended it, the gateway and the replicas stop next
                await self._follower
        await self._stop_adopted(grace_s)

    async def _stop_adopted(self, grace_s: float) -> None:
        if self._writer is not None and not self._writer.is_closing():
            channel.send(self._writer, channel.Stop(grace_s))
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()
        process = self._current_process()
        if process is not None and not await process.wait(grace_s + 5.0):
            await process.kill()
        self._disconnect()
        self._process = None

    def _current_process(self) -> ReplicaProcess | None:
        if self._process is None and self.hello is not None:
            self._process = ReplicaProcess(self.hello.pid)  # adopted: known by the pid it told
        return self._process

    async def _spawn(self, host: str, http_port: int, grpc_port: int) -> None:
        command = [sys.executable, "-m", "wharf.cli", "gateway", "--host", host, "--http-port", str(http_port)]
        command += ["--grpc-port", str(grpc_port), "--socket", str(self.socket)]
        self._process = ReplicaProcess.spawn(command, os.environ, self.log_path)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout_s
        while not await self._connect():
            if self._process.exited():
                raise ConfigurationError(f"the gateway did not start: {_last_line(self.log_path)}")
            if loop.time() > deadline:
                await self._process.kill()
                raise ConfigurationError(f"the gateway did not answer within {self.start_timeout_s} s")
            await asyncio.sleep(_RETRY_S)
        log.info("gateway started", extra={"pid": self._process.pid, "log": str(self.log_path)})

    async def _connect(self) -> bool:
        """Connect to the gateway's socket and read its `Hello`; whether that worked."""
        try:
            async with asyncio.timeout(_CONNECT_S):
                reader, writer = await asyncio.open_unix_connection(self.socket)
                try:
                    channel.check_peer(writer)
                    hello = await channel.receive(reader)
                except BaseException:
                    writer.close()
                    raise
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return False
        except Exception:  # a Hello this daemon cannot read
            log.exception("the gateway on this home answered unreadably")
            return False
        if not isinstance(hello, channel.Hello):
            writer.close()
            return False
        self._reader, self._writer, self.hello = reader, writer, hello
        if self._table is not None:
            channel.send(writer, channel.Table(self._table))
        return True

    def _disconnect(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def _follow(self) -> None:
        """Read what the gateway sends; reach it again (or start a new one) whenever the connection ends."""
        while not self._closing:
            assert self._reader is not None
            try:
                message = await channel.receive(self._reader)
            except (asyncio.IncompleteReadError, OSError):
                log.warning("lost the gateway process; reaching it again")
                self._disconnect()
                await self._reach_again()
                continue
            except Exception:  # a message this daemon cannot read: a gateway of another release
                log.exception("unreadable message from the gateway; starting a new gateway")
                await self._replace()
                continue
            if isinstance(message, channel.Load):
                self._load = message
                report = getattr(message, "bandit", None)  # absent from a gateway of an earlier release
                if report is not None and self.on_bandit is not None:
                    self._bandit(report)
            elif isinstance(message, channel.Demand) and self.on_demand is not None:
                try:
                    self.on_demand(message.revision)
                except Exception:
                    log.exception("on_demand failed", extra={"revision": message.revision})

    def _bandit(self, report: BanditReport) -> None:
        assert self.on_bandit is not None
        try:
            totals, applied = self.on_bandit(report)
        except Exception:  # the gateway reports its totals again with its next change or connection
            log.exception("applying the gateway's bandit counts failed")
            return
        if self._writer is not None and not self._writer.is_closing():
            channel.send(self._writer, channel.Arms(totals, applied))

    async def _replace(self) -> None:
        """Stop the gateway this daemon cannot talk to and start one on the same address."""
        assert self.hello is not None
        hello = self.hello
        await self._stop_adopted(5.0)
        await self._reach_again(hello)

    async def _reach_again(self, hello: channel.Hello | None = None) -> None:
        hello = hello or self.hello
        assert hello is not None
        while not await self._connect():
            process = self._current_process()
            if process is None or process.exited():
                try:  # on the ports it had: transformers and clients know them
                    await self._spawn(hello.host, hello.http_port, hello.grpc_port)
                    return
                except Exception:
                    log.exception("could not start the gateway again; retrying")
            await asyncio.sleep(_RETRY_S)


def _last_line(path: Path) -> str:
    """The last thing a process wrote to its log (where it says why it stopped)."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "nothing logged"
