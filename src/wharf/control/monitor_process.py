"""`MonitorProcess`: the model monitor (`wharf monitor`) as `wharf up` runs it, a process of its own.

The daemon starts it beside the gateway (off with WHARF_MONITOR_ENABLED=false), on WHARF_MONITOR_HOST and
WHARF_MONITOR_PORT (127.0.0.1:8003), its database in WHARF_HOME. It knows where the gateway is
(WHARF_MONITOR_GATEWAY_URL, WHARF_MONITOR_DOMAIN), for the detectors that call a service's predictor. Where it
listens is kept in WHARF_HOME/monitor.json, so that a daemon started after a crash adopts the monitor still running
(payload logs kept arriving meanwhile) instead of failing on its port. A monitor that dies is started again on the
same port by `supervise`, which the daemon's resync calls. The control plane reads the monitor over HTTP only
(`summary`): it imports nothing of `wharf.monitor`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from wharf.control.backends.logfile import last_lines
from wharf.control.backends.process import ReplicaProcess
from wharf.errors import ConfigurationError

log = logging.getLogger(__name__)
_STARTED = "monitor is up"
_ASK_TIMEOUT_S = 2.0
_RETRY_S = 0.1


class MonitorProcess:
    """The daemon's handle on its monitor: start or adopt, supervise, stop, and read its summary."""

    FILE = "monitor.json"

    def __init__(self, home: Path, gateway_url: str, domain: str, start_timeout_s: float = 30.0) -> None:
        self.home = home
        self.log_path = home / "logs" / "monitor.log"
        self.gateway_url = gateway_url
        self.domain = domain
        self.start_timeout_s = start_timeout_s
        self.url: str | None = None
        self._host = ""
        self._port = 0
        self._process: ReplicaProcess | None = None
        self._http: httpx.AsyncClient | None = None

    async def start(self, host: str, port: int) -> str:
        """Adopt this home's running monitor if it listens where asked (port 0: anywhere), else start one; its URL."""
        adopted = self._recorded()
        if adopted is not None:
            process, where = adopted
            if (
                where["host"] == host
                and port in (0, where["port"])
                and await self._answers(where["host"], where["port"])
            ):
                self._process, self._host, self._port = process, where["host"], where["port"]
                self.url = _url(self._host, self._port)
                log.info("adopted the running monitor", extra={"pid": process.pid, "url": self.url})
                return self.url
            await process.stop(5.0)
        return await self._spawn(host, port)

    async def supervise(self) -> None:
        """Start the monitor again, on its port, if it died."""
        if self._process is not None and self._process.exited():
            log.warning("the monitor stopped; starting it again", extra={"log": str(self.log_path)})
            await self._spawn(self._host, self._port)

    async def stop(self, grace_s: float = 10.0) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._process is not None:
            await self._process.stop(grace_s)
            self._process = None
        (self.home / self.FILE).unlink(missing_ok=True)

    async def summary(self) -> dict[str, Any] | None:
        """What the monitor knows of each model (`GET /status`); None when it does not answer (restarting, say),
        so that what was last known stays shown."""
        if self.url is None:
            return None
        try:
            answer = await self._client().get(f"{self.url}/status")
            return dict(answer.json().get("models", {})) if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def _client(self) -> httpx.AsyncClient:
        """One keep-alive client for every question the daemon asks its monitor (once a second)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=_ASK_TIMEOUT_S)
        return self._http

    async def _spawn(self, host: str, port: int) -> str:
        command = [sys.executable, "-m", "wharf.cli", "monitor", "--host", host, "--port", str(port)]
        command += ["--database", str(self.home / "monitor.db")]
        env = {
            **os.environ,
            "WHARF_HOME": str(self.home),
            "WHARF_MONITOR_GATEWAY_URL": self.gateway_url,
            "WHARF_MONITOR_DOMAIN": self.domain,
        }
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._process = process = ReplicaProcess.spawn(command, env, self.log_path)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout_s
        while (listening := self._listening(start)) is None:
            if process.exited():
                why = last_lines(self.log_path, start, 1) or "nothing logged"
                raise ConfigurationError(f"the monitor did not start: {why}")
            if loop.time() > deadline:
                await process.kill()
                raise ConfigurationError(f"the monitor did not start within {self.start_timeout_s} s")
            await asyncio.sleep(_RETRY_S)
        self._host, self._port = host, listening
        self.url = _url(host, listening)
        (self.home / self.FILE).write_text(json.dumps({"pid": process.pid, "host": host, "port": listening}))
        log.info("monitor started", extra={"pid": process.pid, "url": self.url, "log": str(self.log_path)})
        return self.url

    def _listening(self, start: int) -> int | None:
        """The port of the "monitor is up" line written to the log after offset `start`, if any yet."""
        try:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(start)
                lines = log_file.read().decode(errors="replace").splitlines()
        except OSError:
            return None
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == _STARTED:
                return int(record["port"])
        return None

    def _recorded(self) -> tuple[ReplicaProcess, dict[str, Any]] | None:
        """The monitor a previous daemon of this home started, if it still runs."""
        try:
            where = json.loads((self.home / self.FILE).read_text())
            process = ReplicaProcess(int(where["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if process.exited() or not _is_monitor(process.pid):
            return None
        return process, where

    async def _answers(self, host: str, port: int) -> bool:
        try:
            return (await self._client().get(f"{_url(host, port)}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False


def _is_monitor(pid: int) -> bool:
    """Whether `pid` runs `wharf monitor` (not another process that reused the pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"wharf.cli" in command and b"monitor" in command


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
