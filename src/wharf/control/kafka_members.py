"""Where KafkaSources' consumer-group members run: processes on this machine (`LocalMembers`), or, with the Ray
backend, each a detached, named Ray actor (`RayMembers`: the backend's `ReplicaActor`, which runs the member as a
child process on its node, its status listener on the node's address) so that every replica, consumer included,
is placed on the cluster.

A started member (`Member`) says its `host`, its status `port` once it has logged it (0 before), whether it ended
and why; `find` takes back one a previous daemon recorded (a process by its pid, an actor by its name). Costs
nothing per message: these calls come once a resync pass per member.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from wharf.control.backends.base import Backend
from wharf.control.backends.logfile import LogFollower
from wharf.control.backends.process import ReplicaProcess, runs
from wharf.control.backends.ray import RayBackend, first_line, forwarded_env, kill_actor, named_actor, reply_of
from wharf.eventing.settings import ConsumerSettings
from wharf.eventing.statusline import status_port

log = logging.getLogger(__name__)
#: The consumer's setting of its status listener's address, set to its Ray node's.
HOST_ENV = f"{ConsumerSettings.model_config['env_prefix']}status_host".upper()
_LOOPBACK = "127.0.0.1"
_CALL_GRACE_S = 5.0


class Member(Protocol):
    """A running member."""

    pid: int  # on its node (0 while an actor starts it)
    host: str  # the address of its status listener
    returncode: int | None  # once ended, when known
    failure: str | None  # why it ended, when it says more than its status (an actor that died)

    def port(self) -> int:
        """Its status port, 0 until it has logged it."""
        ...

    def exited(self) -> bool:
        """Whether it ended (then `kill` frees what it still holds: an ended actor keeps its name)."""
        ...

    async def kill(self) -> None:
        """SIGKILL it (one that never logged its port, or one ended)."""
        ...

    async def stop(self, grace_s: float) -> None:
        """SIGTERM (it commits what it answered and leaves its group), SIGKILL after `grace_s`."""
        ...


class Members(Protocol):
    """Starts members and finds recorded ones."""

    async def start(self, member_id: str, env: Mapping[str, str], log_path: Path) -> Member:
        """Start member `member_id` with `env` (WHARF_KAFKA_* settings) over the daemon's environment, its output
        appended to `log_path`. Raises OSError."""
        ...

    async def find(self, record: Mapping[str, Any]) -> Member | None:
        """The member a status record names, if it still runs."""
        ...

    async def sweep(self, known: set[str]) -> None:
        """Stop the members left running that no record names (those whose records are lost)."""
        ...


def members_on(backend: Backend | None, command: tuple[str, ...], grace_s: float, start_s: float) -> Members:
    """Where members run with `backend` (None: this machine): `command` started as processes here, or its
    arguments after the interpreter run by Ray actors on the cluster of a `RayBackend`."""
    if isinstance(backend, RayBackend):
        return RayMembers(backend, command[1:], grace_s, start_s)
    return LocalMembers(command)


# -- on this machine -----------------------------------------------------------------------------------------------


class _Process:
    """A member's process here; its port read from its `serving` line (or its record, adopted)."""

    host = _LOOPBACK
    failure = None

    def __init__(self, process: ReplicaProcess, follower: LogFollower | None, port: int = 0) -> None:
        self.process, self.pid, self._follower, self._port = process, process.pid, follower, port

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def port(self) -> int:
        if self._port == 0 and self._follower is not None:
            self._port = next((p for line in self._follower.new_lines() if (p := status_port(line))), 0)
        return self._port

    def exited(self) -> bool:
        return self.process.exited()

    async def kill(self) -> None:
        self.process.signal(signal.SIGKILL)

    async def stop(self, grace_s: float) -> None:
        await self.process.stop(grace_s)


class LocalMembers:
    """Members as processes of this machine running `command`; its arguments after the interpreter tell a
    member's process from others when it is adopted."""

    def __init__(self, command: tuple[str, ...]) -> None:
        self.command = command
        self._mark = "\0".join(command[1:]).encode()

    async def start(self, member_id: str, env: Mapping[str, str], log_path: Path) -> Member:
        offset = log_path.stat().st_size if log_path.exists() else 0
        process = ReplicaProcess.spawn(self.command, {**os.environ, **env}, log_path)
        return _Process(process, LogFollower(log_path, offset))

    async def find(self, record: Mapping[str, Any]) -> Member | None:
        pid = int(record.get("pid") or 0)
        if not runs(pid, (self._mark,)):
            return None
        return _Process(ReplicaProcess(pid), None, int(record.get("statusPort") or 0))

    async def sweep(self, known: set[str]) -> None:
        """Nothing: a process here is known by its record only."""


# -- on a Ray cluster ------------------------------------------------------------------------------------------------


class _Actor:
    """A member run by a Ray actor: its port, host and pid known once the actor's `start` answers; its end noticed
    by the actor's `ended` call (or the actor's death)."""

    def __init__(self, ray: Any, actor: Any, started: asyncio.Future[Any] | None) -> None:
        self._ray, self.actor, self._started = ray, actor, started
        self.pid, self.host, self._port = 0, "", 0
        self.returncode: int | None = None
        self.failure: str | None = None
        self._ended: asyncio.Future[Any] | None = None

    @classmethod
    def adopted(cls, ray: Any, actor: Any, record: Mapping[str, Any]) -> _Actor:
        member = cls(ray, actor, None)
        member.pid, member.host = int(record.get("pid") or 0), str(record.get("host") or "")
        member._port = int(record.get("statusPort") or 0)
        member._ended = reply_of(actor.ended.remote())
        return member

    def port(self) -> int:
        if self._port == 0 and self._started is not None and self._started.done():
            try:
                reply = self._started.result()
            except Exception as e:  # the actor died (its node gone?)
                self.failure = f"its Ray actor died: {first_line(e)}"
                return 0
            if "error" in reply:
                self.failure = str(reply["error"])
                return 0
            self.pid, self.host, self._port = reply["pid"], reply["host"], reply["http_port"]
            self._ended = reply_of(self.actor.ended.remote())
        return self._port

    def exited(self) -> bool:
        self.port()
        if self.failure is None:
            if self._ended is None or not self._ended.done():
                return False
            try:
                self.returncode = self._ended.result()
            except Exception as e:
                self.failure = f"its Ray actor died (its node gone?): {first_line(e)}"
        return True

    async def kill(self) -> None:
        """Kill its actor (a member waiting out its backoff holds none)."""
        await kill_actor(self._ray, self.actor)

    async def stop(self, grace_s: float) -> None:
        try:
            await asyncio.wait_for(reply_of(self.actor.stop.remote(grace_s)), grace_s + _CALL_GRACE_S)
        except Exception as e:  # the actor (or the cluster) is gone already
            log.info("member not drained", extra={"error": first_line(e)})
        await self.kill()


class RayMembers:
    """Members as detached actors named by their ids, in a Ray namespace of their own next to `backend`'s (whose
    adoption stops the actors its records do not name), each asking no CPU of its node (a member mostly waits)."""

    def __init__(self, backend: RayBackend, arguments: tuple[str, ...], grace_s: float, start_s: float) -> None:
        self.backend, self.arguments, self.grace_s, self.start_s = backend, arguments, grace_s, start_s
        self.namespace = f"{backend.namespace}-kafka"

    async def start(self, member_id: str, env: Mapping[str, str], log_path: Path) -> Member:
        ray = await self.backend.connect()
        actor = await self._new_actor(ray, member_id)
        environment = {**forwarded_env(), **env}
        started = actor.start.remote(list(self.arguments), environment, str(log_path), self.start_s, HOST_ENV)
        return _Actor(ray, actor, reply_of(started))

    async def find(self, record: Mapping[str, Any]) -> Member | None:
        ray = await self.backend.connect()
        actor = await self._named(ray, str(record.get("id")))
        return None if actor is None else _Actor.adopted(ray, actor, record)

    async def sweep(self, known: set[str]) -> None:
        ray = await self.backend.connect()
        for entry in await asyncio.to_thread(ray.util.list_named_actors, True):
            if entry.get("namespace") == self.namespace and entry.get("name") not in known:
                log.info("member actor not recorded; stopping it", extra={"actor": entry.get("name")})
                if (actor := await self._named(ray, entry["name"])) is not None:
                    await _Actor(ray, actor, None).stop(self.grace_s)

    async def _new_actor(self, ray: Any, name: str) -> Any:
        """A new actor named `name`; one of that name left by an earlier life of the member is killed first."""
        actor_class = self.backend.actor_class.options(
            name=name, namespace=self.namespace, lifetime="detached", max_restarts=0, num_cpus=0
        )
        for _ in range(50):
            try:
                return await asyncio.to_thread(actor_class.remote)  # it blocks on the cluster's answer
            except ValueError:  # the name is taken
                if (actor := await self._named(ray, name)) is not None:
                    await _Actor(ray, actor, None).kill()
                await asyncio.sleep(0.1)
        raise OSError(f"the Ray actor name {name} stays taken")

    async def _named(self, ray: Any, name: str) -> Any:
        return await named_actor(ray, name, self.namespace)
