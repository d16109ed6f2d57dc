"""The Ray backend: every replica is a detached, named Ray actor (`ray_actor.ReplicaActor`) that runs Wharf's model
server on its node and reports the node's address and the server's ports; the gateway routes to them there.

Placement follows the replica's `resources` (`placement`): its cpu limit is the actor's `num_cpus`, its memory
limit its `memory`, its `nvidia.com/gpu` its `num_gpus` (0 of each when the spec sets none, so that a one-CPU node
holds several replicas), its `nodes` (a component's nodeSelector and tolerations: `node_selection.py`) the Ray node
labels its node must or must not carry (the taints refused are those of the nodes alive when its actor is made: a
node that joins later and takes the actor is checked once it is placed there, and a replica it should not run
starts again, kept off it), and the replicas of a revision are spread over the nodes (`spread_to`: each
new one is sent to the node, big enough and admitted, that holds fewest of its revision's, by node affinity; Ray's
own SPREAD strategy, and a soft affinity, are best effort and were seen here to put three replicas on one node). An
actor Ray has not placed within `pending_after_s` shows its replica `Pending` with the reason (no node has that
much at all, or the nodes that have are busy) until Ray places it, as a Kubernetes pod waits; a cluster that
autoscales adds a node for it.

Supervision is the local backend's (`supervision.Supervisor`: `backoff.py`, readiness over HTTP every
`health_interval_s`, retirement and adoption), with one more
way to end: the actor's `ended()` call, waited on all along, answers when the server exits and fails at once when
the actor or its node dies, so the replica leaves the routes and is started again (a new actor, placed on the
nodes left) without waiting for failed health checks. Actors are named by replica id in a Ray namespace of their
own per WHARF_HOME (`namespace_of`): a restarted daemon adopts the live ones (`adopt`) and stops the ones no
record names. Ray is imported on first use, in a thread: a daemon with the local backend never loads it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from wharf.control.backends.local import _CONTROLLED, _MULTI_MODEL, serve_command
from wharf.control.backends.node_selection import NodeSelection
from wharf.control.backends.ray_actor import ReplicaActor
from wharf.control.backends.replica import ReplicaSpec, ReplicaState
from wharf.control.backends.settings import LocalBackendSettings
from wharf.control.backends.supervision import SupervisedReplica, Supervisor
from wharf.errors import ConfigurationError

__all__ = ["RayBackend", "RayBackendSettings", "namespace_of", "placement", "spread_to"]

log = logging.getLogger(__name__)
_FORWARDED = ("PYTHONPATH",)  # with every WHARF_* variable: what the daemon's replicas inherit from it on Ray too
_SHUNNED_S = 30.0  # a node where an actor died gets no new replica for this long (Ray lists a dead node alive a while)
_CALL_GRACE_S = 5.0  # an actor call that should answer at once, or after its own deadline, gets this much more


class RayBackendSettings(LocalBackendSettings):
    """The local backend's supervision settings (its `prewarm` and `resources`, about this machine, do not apply),
    and where the Ray cluster is."""

    address: str = Field(
        "auto", description="the Ray cluster (`auto`: the one running on this machine, or RAY_ADDRESS)"
    )
    namespace: str | None = Field(None, description="the Ray namespace of the actors (default: one per WHARF_HOME)")
    pending_after_s: float = Field(1.0, gt=0, description="an actor not placed within this shows its replica Pending")


def namespace_of(home: Path) -> str:
    """The Ray namespace of the replicas of the daemon of `home`: one per WHARF_HOME, so two daemons sharing a
    cluster never adopt (or stop) each other's actors."""
    return "wharf-" + hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]


def placement(spec: ReplicaSpec) -> dict[str, Any]:
    """The Ray resources a replica of `spec` reserves on its node (Ray's actor options)."""
    resources = spec.resources
    options: dict[str, Any] = {"num_cpus": resources.cpus or 0, "num_gpus": resources.gpus}
    if resources.memory:
        options["memory"] = resources.memory
    return options


def spread_to(nodes: Mapping[str, Mapping[str, float]], held: Sequence[str], asked: Mapping[str, float]) -> str | None:
    """The node a new replica of a revision goes to: of the `nodes` (id -> total resources) big enough for
    `asked`, the one that holds fewest of the revision's replicas (`held`: the node of each), the first in `nodes`
    among equals; None when no node is big enough (the replica waits for one)."""
    fits = [
        node for node, total in nodes.items() if all(total.get(name, 0) >= amount for name, amount in asked.items())
    ]
    counts = {node: held.count(node) for node in fits}
    return min(fits, key=counts.__getitem__, default=None)


def _asked(options: Mapping[str, Any]) -> dict[str, float]:
    """What `placement`'s options ask of a node, named as Ray names its resources."""
    asked = {"CPU": options["num_cpus"], "GPU": options["num_gpus"], "memory": options.get("memory", 0)}
    return {name: float(amount) for name, amount in asked.items() if amount}


def _shortage(ray: Any, asked: Mapping[str, float], selection: NodeSelection) -> str:
    """Why Ray has not placed an actor that asks for `asked` on a node `selection` admits (a blocking call to the
    cluster)."""
    parts = [f"{_amount(name, amount)} {name}" for name, amount in asked.items()]
    if labels := selection.describe():
        parts.append(labels)
    wanted = ", ".join(parts) or "no resources"
    alive = [node for node in ray.nodes() if node.get("Alive")]
    nodes = [node["Resources"] for node in alive if selection.admits(node.get("Labels") or {})]
    if not any(all(node.get(name, 0) >= amount for name, amount in asked.items()) for node in nodes):
        return f"Pending: no node of the Ray cluster has {wanted} (of {len(alive)} nodes; an autoscaler may add one)"
    free = ray.available_resources()
    have = ", ".join(f"{_amount(name, free.get(name, 0))} {name}" for name in asked) or "?"
    return f"Pending: waiting for a Ray node with {wanted} free (the cluster has {have} free in all)"


def _refused_on(ray: Any, node_id: str, selection: NodeSelection) -> str | None:
    """Why the node `node_id` may not run a replica of `selection`, if it may not (a blocking call to the
    cluster): the taints of a node that joined after the actor was made are not in its `label_selector`."""
    labels = next((node.get("Labels") or {} for node in ray.nodes() if node["NodeID"] == node_id), {})
    if selection.admits(labels):
        return None
    return (
        f"Ray placed its actor on node {node_id}, which joined the cluster after the actor was made and has a taint"
        " the replica does not tolerate; it starts again, kept off that node"
    )


def _amount(name: str, amount: float) -> str:
    return f"{amount / 2**20:.0f} MiB" if name == "memory" else f"{amount:g}"


@dataclass(eq=False)
class _Replica(SupervisedReplica):
    """A replica as the backend tracks it; `state()` is its plain-data snapshot."""

    actor: Any = None  # its Ray actor handle, once made
    serving: bool = False  # its actor's server has logged its ports
    host: str = ""
    pid: int = 0  # the server's pid on its node
    node: str = ""  # the Ray node it was sent to (or runs on)

    def state(self) -> ReplicaState:
        return ReplicaState(
            self.id, self.spec.revision, self.pid, self.http_port, self.grpc_port, self.ready, self.restarts,
            self.last_exit, self.started_at, self.last_error, self.spec.digest, self.backoff_s, self.pending, (),
            self.progress, self.host or "127.0.0.1",
        )  # fmt: skip


class RayBackend(Supervisor[_Replica]):
    """Runs the replicas of revisions as Ray actors on the cluster at `settings.address` (the `Backend` protocol).

    Logs go to `home/logs/<revision>/<replica id>.log` on the replica's node (on this machine: where `wharf logs`
    reads them, as for the local backend).
    """

    def __init__(
        self, home: Path, settings: RayBackendSettings | None = None, on_change: Callable[[], object] | None = None
    ) -> None:
        self.settings: RayBackendSettings = settings or RayBackendSettings()
        super().__init__(home, self.settings, on_change, _Replica)
        self.namespace = self.settings.namespace or namespace_of(home)
        self._ray: Any = None  # the `ray` module, once connected
        self.actor_class: Any = None  # `ray.remote(ReplicaActor)`, once connected
        self._owns_connection = False
        self._shunned: dict[str, float] = {}  # node -> when an actor on it died (monotonic)

    # -- the Backend protocol, where Ray differs ------------------------------------------------------------------
    async def adopt(self, records: Sequence[ReplicaState], specs: Mapping[str, ReplicaSpec]) -> None:
        """As `Supervisor.adopt` (a replica lives on as its named actor); then actors of this namespace that no
        record names are stopped."""
        await super().adopt(records, specs)
        names = set(await asyncio.to_thread(self._ray.util.list_named_actors))
        known = {record.id for record in records} | set(self._replicas)
        for name in names - known:
            log.info("actor not recorded; stopping it", extra={"actor": name, "namespace": self.namespace})
            await self._kill(await self._named(name))

    async def close(self, stop_replicas: bool) -> None:
        """Stop supervising; with `stop_replicas` every actor is stopped, else they live on (detached) for the next
        daemon to adopt. The connection to the cluster is closed if this backend opened it."""
        await super().close(stop_replicas)
        if self._ray is not None and self._owns_connection:
            await asyncio.to_thread(self._ray.shutdown)
            self._ray = None

    # -- the cluster --------------------------------------------------------------------------------------------
    async def connect(self) -> Any:
        """The `ray` module, joined to the cluster (once, in a thread: importing Ray and joining take seconds);
        KafkaSources' members run as `actor_class` actors too (`kafka_members.RayMembers`)."""
        if self._ray is None:
            self._ray = await asyncio.to_thread(self._join)
        return self._ray

    async def _prepare(self) -> None:
        await self.connect()

    def _join(self) -> Any:
        import ray

        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.settings.address,
                    namespace=self.namespace,
                    logging_level="WARNING",
                    log_to_driver=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ConfigurationError(f"cannot join the Ray cluster at {self.settings.address!r}: {e}") from e
            self._owns_connection = True
        self.actor_class = ray.remote(ReplicaActor)
        log.info("joined the Ray cluster", extra={"address": self.settings.address, "namespace": self.namespace})
        return ray

    async def _named(self, name: str) -> Any:
        return await named_actor(self._ray, name, self.namespace)

    async def _kill(self, actor: Any) -> None:
        if actor is not None:
            await kill_actor(self._ray, actor)

    async def _call(self, ref: Any, timeout: float | None) -> Any:
        """The answer of an actor call (its ObjectRef), within `timeout` seconds (None: no limit)."""
        return await asyncio.wait_for(reply_of(ref), timeout)

    # -- one replica's life -------------------------------------------------------------------------------------
    async def _supervise(self, r: _Replica) -> None:
        """Keep the replica running: start its actor (unless adopted serving), watch it, and once it ends start a
        new one after its revision's backoff."""
        backoff = self._backoff(r.spec.revision)
        if not r.serving:
            await self._back_off(r, backoff.wait_s())
        while True:
            try:
                failure = None if r.serving else await self._start(r)
                if failure is None:
                    failure = await self._watch(r)
            except Exception as e:  # the cluster failed us (unreachable, a system error): try again after the backoff
                log.exception("replica supervision failed", extra={"replica": r.id})
                failure = f"Ray failed: {first_line(e)}"
            delay = backoff.ended(None if r.ready_at is None else time.monotonic() - r.ready_at)
            await self._ended(r, failure, delay)
            await self._back_off(r, delay)
            r.restarts += 1

    async def _start(self, r: _Replica) -> str | None:
        """Make the replica's actor, wait (Pending meanwhile) until Ray places it, and until its server serves:
        None once serving, else what failed."""
        r.started_at = time.time()
        options = placement(r.spec)
        nodes = await asyncio.to_thread(self._ray.nodes)
        held = [o.node for o in self._replicas.values() if o.spec.revision == r.spec.revision and o is not r]
        now = time.monotonic()
        self._shunned = {node: since for node, since in self._shunned.items() if now - since < _SHUNNED_S}
        alive = [n for n in nodes if n.get("Alive")]
        admitted = {
            n["NodeID"]: n["Resources"]
            for n in alive
            if n["NodeID"] not in self._shunned and r.spec.nodes.admits(n.get("Labels") or {})
        }
        r.node = spread_to(admitted, held, _asked(options)) or ""
        if selector := r.spec.nodes.label_selector(n.get("Labels") or {} for n in alive):
            options["label_selector"] = selector
        r.actor = await self._new_actor(r.id, {**options, "scheduling_strategy": self._affinity(r.node)})
        placed = asyncio.ensure_future(self._call(r.actor.where.remote(), None))
        try:
            while not (await asyncio.wait([placed], timeout=self.settings.pending_after_s))[0]:
                shortage = await asyncio.to_thread(_shortage, self._ray, _asked(options), r.spec.nodes)
                self._pending(r, shortage)
            where = placed.result()
        except self._ray.exceptions.RayActorError as e:
            self._shun(r.node)
            return f"its Ray actor died before it was placed: {first_line(e)}"
        finally:
            placed.cancel()
        self._pending(r, None)
        r.node = where["node_id"]
        if r.node not in {n["NodeID"] for n in alive}:  # (Ray kept it off the taints of the nodes it was told of)
            if refused := await asyncio.to_thread(_refused_on, self._ray, r.node, r.spec.nodes):
                return refused
        log.info("replica placed", extra={"replica": r.id, "node": where["node_id"], "host": where["host"]})
        timeout = self.settings.start_timeout_s
        started = asyncio.ensure_future(
            self._call(r.actor.start.remote(self._arguments(r.spec), self._env(r), str(self._log(r)), timeout), None)
        )
        try:
            while not (await asyncio.wait([started], timeout=self.settings.health_interval_s))[0]:
                self._progress(r, await self._call(r.actor.progress.remote(), _CALL_GRACE_S))
            answer = started.result()
        except self._ray.exceptions.RayActorError as e:
            self._shun(r.node)
            return f"its Ray actor died while starting: {first_line(e)}"
        finally:
            started.cancel()
            r.progress = None
        if "error" in answer:
            return answer["error"]
        r.serving, r.host, r.pid = True, answer["host"], answer["pid"]
        r.http_port, r.grpc_port = answer["http_port"], answer["grpc_port"]
        log.info("replica started", extra={"replica": r.id, "host": r.host, "pid": r.pid})
        self._changed()
        return None

    async def _new_actor(self, name: str, options: Mapping[str, Any]) -> Any:
        """A new detached actor named `name`; one of that name left by an earlier life of the replica is killed
        first (Ray frees a name once its actor is dead)."""
        actor_class = self.actor_class.options(
            name=name, namespace=self.namespace, lifetime="detached", max_restarts=0, **options
        )
        for _ in range(50):
            try:
                return await asyncio.to_thread(actor_class.remote)  # it blocks on the cluster's answer
            except ValueError:  # the name is taken
                await self._kill(await self._named(name))
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the Ray actor name {name} stays taken")

    def _shun(self, node: str) -> None:
        """Send no new replica to `node` for `_SHUNNED_S`: an actor on it died, perhaps with it (Ray takes a while
        to list a node that went away as dead, and an actor sent there dies at once); while every node is shunned,
        Ray chooses."""
        if node:
            self._shunned[node] = time.monotonic()

    def _affinity(self, node: str) -> Any:
        """Ray's strategy for an actor meant for `node`: that node only (an actor whose node dies before it is
        placed dies, and its replica starts again on the nodes left; one whose node is busy waits, Pending);
        SPREAD when no node was chosen (none big enough: it waits for one)."""
        if not node:
            return "SPREAD"
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node, soft=False)

    async def _watch(self, r: _Replica) -> str:
        """Check the replica's readiness every `health_interval_s` until its server ends or its actor dies; what
        happened."""
        ended = asyncio.ensure_future(self._call(r.actor.ended.remote(), None))
        try:
            while not ended.done():
                ok = await self._ready(r.host, r.http_port)
                self._checked(r, ok and not ended.done())
                await asyncio.wait([ended], timeout=self.settings.health_interval_s)
            r.last_exit = ended.result()
            return "exited"
        except self._ray.exceptions.RayActorError as e:
            r.last_exit = None
            self._shun(r.node)
            return f"its Ray actor died (its node gone?): {first_line(e)}"
        finally:
            ended.cancel()

    async def _ended(self, r: _Replica, what: str, delay: float) -> None:
        """Record why the replica ended (with the last lines of its log), kill its actor and show the `delay`
        before it starts again."""
        tail = ""
        if r.actor is not None:
            try:
                tail = await self._call(r.actor.last_lines.remote(self.settings.error_lines), _CALL_GRACE_S)
            except Exception:  # the actor is gone (or the cluster): its log stays on its node
                pass
            await self._kill(r.actor)
        status = "" if r.last_exit is None else f" (status {r.last_exit})"
        r.last_error = f"{what}{status}" + (f":\n{tail}" if tail and tail not in what else "")
        r.actor, r.serving, r.host, r.pid, r.http_port, r.grpc_port, r.node = None, False, "", 0, 0, 0, ""
        r.ready, r.failed_checks, r.ready_at, r.pending, r.backoff_s = False, 0, None, None, delay
        log.warning("replica ended", extra={"replica": r.id, "reason": what, "restart_in_s": delay})
        self._changed()

    # -- adoption and stopping ------------------------------------------------------------------------------------
    async def _live(self, record: ReplicaState) -> Any:
        return await self._named(record.id)

    async def _discard(self, live: Any) -> None:
        await self._kill(live)

    async def _resume(self, r: _Replica, live: Any, record: ReplicaState) -> None:
        r.actor, r.serving, r.host, r.pid = live, True, record.host, record.pid
        r.node = (await self._call(live.where.remote(), _CALL_GRACE_S))["node_id"]

    async def _halt(self, r: _Replica) -> None:
        """Drain the server (SIGTERM, SIGKILL after the drain timeout plus `kill_grace_s`), then kill its actor."""
        if r.actor is None:
            return
        grace = self._drain_s(r.spec) + self.settings.kill_grace_s
        try:
            status = await self._call(r.actor.stop.remote(grace), grace + _CALL_GRACE_S)
            log.info("replica stopped", extra={"replica": r.id, "status": status})
        except Exception as e:  # the actor (or the cluster) is gone already: nothing left to drain
            log.info("replica not drained", extra={"replica": r.id, "error": first_line(e)})
        await self._kill(r.actor)

    # -- small parts --------------------------------------------------------------------------------------------
    def _arguments(self, spec: ReplicaSpec) -> list[str]:
        """The local backend's command line less its interpreter (the actor runs its node's)."""
        return serve_command(spec, self.home / "repositories" / "empty")[1:]

    def _env(self, r: _Replica) -> dict[str, str]:
        """What the server runs with on top of its node's environment: the daemon's WHARF_* settings and
        PYTHONPATH, the spec's variables and what every replica runs with."""
        forwarded = forwarded_env()
        controlled = _CONTROLLED if r.spec.model_uri else _MULTI_MODEL
        return {**forwarded, **r.spec.env, **controlled, "WHARF_REPLICA": r.id}

    def _log(self, r: _Replica) -> Path:
        return self.log_path(r.spec.revision, r.id)


# -- what the backend and the Kafka members (control/kafka_members.py) do alike with Ray ------------------------------


def forwarded_env() -> dict[str, str]:
    """The daemon's variables that every process it places on Ray inherits (on its node's environment)."""
    return {k: v for k, v in os.environ.items() if k.startswith("WHARF_") or k in _FORWARDED}


def reply_of(ref: Any) -> asyncio.Future[Any]:
    """The answer of an actor call (its ObjectRef) as an asyncio future."""
    return asyncio.wrap_future(ref.future())


async def named_actor(ray: Any, name: str, namespace: str) -> Any:
    """The live actor named `name` in `namespace`, or None (in a thread: Ray's call blocks)."""
    try:
        return await asyncio.to_thread(ray.get_actor, name, namespace)
    except ValueError:
        return None


async def kill_actor(ray: Any, actor: Any) -> None:
    """Kill `actor` for good (in a thread); one gone already, or a cluster gone, leaves nothing to kill."""
    try:
        await asyncio.to_thread(ray.kill, actor, no_restart=True)
    except Exception as e:
        log.info("actor not killed", extra={"error": first_line(e)})


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
