"""`PrometheusProcess`: a Prometheus server scraping this Wharf, run by `wharf up --prometheus` as a process of its own.

Its files live in WHARF_HOME/prometheus (the home is the user's only): `prometheus.yml` (written by
`wharf.telemetry.prometheus`: one job discovering every target at the control API's `/prometheus/targets`),
`token` (the control API's viewer token, mode 0600, which the discovery requests carry) and `data/` (the
database). The daemon writes the configuration at every start, Prometheus or not, so that a user can run a
Prometheus of their own on it (`prometheus --config.file=WHARF_HOME/prometheus/prometheus.yml`).

The server listens on `host:port` (port 0: a free port chosen at start). `start` waits until it is ready; one a
crashed daemon left running (found by the pid in WHARF_HOME/prometheus.json) is stopped first, since it holds
the database's lock. A server that dies is started again by `supervise`, which the daemon's resync calls, after
a delay doubling from 1 s to 1 minute while it keeps dying (a server that ran a minute starts the count over).
Its output goes to WHARF_HOME/logs/prometheus.log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

import httpx

from wharf.control.auth import write_private
from wharf.control.backends.backoff import RestartBackoff
from wharf.control.backends.logfile import last_lines
from wharf.control.backends.process import ReplicaProcess
from wharf.errors import ConfigurationError
from wharf.telemetry.discovery import local_address
from wharf.telemetry.prometheus import command, config_text

log = logging.getLogger(__name__)
_RETRY_S = 0.1
_ASK_TIMEOUT_S = 2.0
_BACKOFF = (1.0, 60.0, 60.0)  # first delay, longest delay, a run long enough to start the count over (seconds)


class PrometheusProcess:
    """The daemon's Prometheus: its configuration, and the server's start, supervision and stop."""

    FILE = "prometheus.json"

    def __init__(self, home: Path, binary: str = "prometheus", start_timeout_s: float = 30.0) -> None:
        self.home = home
        self.directory = home.resolve() / "prometheus"  # absolute: Prometheus reads paths from its config's directory
        self.config_file = self.directory / "prometheus.yml"
        self.token_file = self.directory / "token"
        self.log_path = home / "logs" / "prometheus.log"
        self.binary = binary
        self.start_timeout_s = start_timeout_s
        self.url: str | None = None
        self._listen = ""
        self._process: ReplicaProcess | None = None
        self._started = 0.0  # monotonic time of the current process's start
        self._restart_at: float | None = None  # when a dead server is due to start again
        self._backoff = RestartBackoff(*_BACKOFF)

    def configure(self, discovery_url: str, token: str, scrape_interval_s: float) -> Path:
        """Write the configuration (and the token it reads) for the discovery endpoint at `discovery_url`; its path."""
        write_private(self.token_file, token)
        self.config_file.write_text(config_text(discovery_url, self.token_file, scrape_interval_s))
        return self.config_file

    async def start(self, host: str, port: int) -> str:
        """Start the server on `host:port` (0: a free port) with the configuration written by `configure`, and wait
        until it is ready; its URL. Raises ConfigurationError when it cannot start."""
        if shutil.which(self.binary) is None:
            raise ConfigurationError(
                f"{self.binary!r} is not on PATH: install Prometheus (Debian's package: apt-get install prometheus;"
                " `make test` does) or set WHARF_PROMETHEUS_BINARY"
            )
        await self._stop_leftover()
        self._listen = local_address(host, port or _free_port(host))
        self.url = f"http://{self._listen}"
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        process = self._spawn()
        try:
            await self._wait_ready(process, start)
        except ConfigurationError:
            await self.stop(5.0)
            raise
        log.info("prometheus started", extra={"pid": process.pid, "url": self.url, "log": str(self.log_path)})
        return self.url

    async def supervise(self) -> None:
        """Start the server again, on its address, if it died and its restart is due."""
        if self._process is None or not self._process.exited():
            return
        now = time.monotonic()
        if self._restart_at is None:
            delay = self._backoff.ended(now - self._started)
            self._restart_at = now + delay
            log.warning(
                "prometheus stopped; starting it again",
                extra={"in_s": delay, "exit": self._process.returncode, "log": str(self.log_path)},
            )
        if now >= self._restart_at:
            self._restart_at = None
            self._spawn()

    async def stop(self, grace_s: float = 10.0) -> None:
        if self._process is not None:
            await self._process.stop(grace_s)
            self._process = None
        (self.home / self.FILE).unlink(missing_ok=True)

    def _spawn(self) -> ReplicaProcess:
        argv = command(self.binary, self.config_file, self.directory / "data", self._listen)
        self._process = process = ReplicaProcess.spawn(argv, dict(os.environ), self.log_path)
        self._started = time.monotonic()
        (self.home / self.FILE).write_text(json.dumps({"pid": process.pid, "listen": self._listen}))
        return process

    async def _wait_ready(self, process: ReplicaProcess, log_offset: int) -> None:
        """Until the server answers ready; ConfigurationError if it ends first or takes too long."""
        deadline = time.monotonic() + self.start_timeout_s
        async with httpx.AsyncClient(timeout=_ASK_TIMEOUT_S) as client:
            while not await _ready(client, f"{self.url}/-/ready"):
                if process.exited():
                    why = last_lines(self.log_path, log_offset, 1) or "nothing logged"
                    raise ConfigurationError(f"Prometheus did not start: {why}")
                if time.monotonic() > deadline:
                    raise ConfigurationError(f"Prometheus was not ready within {self.start_timeout_s} s")
                await asyncio.sleep(_RETRY_S)

    async def _stop_leftover(self) -> None:
        """Stop the server a crashed daemon of this home left running (it holds the database's lock)."""
        try:
            pid = int(json.loads((self.home / self.FILE).read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if _runs_config(pid, self.config_file):
            log.info("stopping the prometheus an earlier daemon left running", extra={"pid": pid})
            await ReplicaProcess(pid).stop(10.0)


async def _ready(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


def _runs_config(pid: int, config_file: Path) -> bool:
    """Whether `pid` is a Prometheus reading `config_file` (not another process that reused the pid)."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"--config.file={config_file}".encode() in arguments


def _free_port(host: str) -> int:
    """A port free on `host` now (the server binds it a moment later)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host.strip("[]"), 0))
        return int(probe.getsockname()[1])
