"""`KafkaSources`: the daemon runs each KafkaSource as consumer processes (`python -m wharf.eventing`), one
consumer-group member each, and keeps its status. The members run on this machine, or with the Ray backend as Ray
actors on its cluster (`kafka_members`: the same supervision, a member's status asked at its node's address).

`sync`, called on each resync pass (once a second), for each stored KafkaSource:
1. resolves its sink: an InferenceService or InferenceGraph is called through the gateway at its host (the gateway's
   URL and a Host header), a `sink.uri` as it is (through the gateway when its host is under the gateway's domain).
   A sink that does not exist stops the members (a message sent to it would be refused and dead-lettered) and says
   so in the status;
2. configures the members through their environment only (`member_env`: WHARF_KAFKA_* settings of
   `wharf.eventing.settings.ConsumerSettings`, on top of the daemon's environment, whose WHARF_KAFKA_* security
   settings every member inherits); members started with another configuration are replaced, and a configuration
   the consumer would refuse (SASL without credentials given to `wharf up`, say) starts none: the status says why;
3. supervises each member: its status port is read from its `serving` log line (`wharf.eventing.statusline`), its
   `GET /status` asked each pass; one that ends is started again after the source's backoff (at once, then
   `backoff_initial_s` doubling up to `backoff_max_s`, as replicas are: `backends.backoff`), one that logs no port
   within `start_timeout_s` is killed;
4. scales the members with the lag and the partitions the members report (`kafka_scaling.MemberScale`): new members
   start at once, surplus ones (the newest) stop in the background (SIGTERM: a member commits what it answered and
   leaves the group); the machine runs at most `max_members` members over all sources, and a source held below its
   figure says so in `status.scale`;
5. writes the status when it changed: conditions SinkProvided, ConsumerGroup and Ready (False with the reason:
   sink missing, settings refused, brokers unreachable as a member reports them, no member running), `sinkUri`,
   `consumers`, `lag` and `partitions` (per partition: committed and end offsets, lag), the members' summed
   `counters`, their end-to-end `latencyMs` (the worst member's percentiles) and the `members` (pid, status port,
   restarts, last error);
6. tells the sink's autoscaler (a sink graph's: those of the services its steps name) how many requests the lag
   holds (`waiting`, read by the reconciler's load sampling: `kafka_scaling.calls_waiting`), so that a service
   scaled to zero scales up when messages arrive.

The `members` of the status are also what `adopt` reads when the daemon starts again after a crash: a member whose
process still runs `wharf.eventing` as recorded (on Ray: whose named actor lives), with the same configuration, and answers its status on the
recorded port is watched again as it is (it never stopped consuming); the others are stopped and replaced. A
member's record is written right after its process starts. Stopping the daemon stops every member.
Costs, per source and pass, one `GET /status` per member (in parallel, each within `status_timeout_s`) and a read
of a starting member's new log lines.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from wharf.control.backends.backoff import RestartBackoff
from wharf.control.backends.base import Backend
from wharf.control.backends.logfile import last_lines
from wharf.control.kafka_members import Member, members_on
from wharf.control.kafka_scaling import MemberScale, calls_waiting
from wharf.control.kube.objects import timestamp
from wharf.control.spec import inferenceservice
from wharf.control.spec.kafkasource import KIND, KafkaSource, duration_s, sink_uri_parts
from wharf.control.spec.manifests import parse_manifest
from wharf.control.store import Resource, Store
from wharf.eventing.settings import ConsumerSettings

log = logging.getLogger(__name__)
COMMAND = (sys.executable, "-m", "wharf.eventing")
_ENV_PREFIX = ConsumerSettings.model_config["env_prefix"]
_ERROR_LINES = 10
_DEFAULTS = {name: f.default for name, f in ConsumerSettings.model_fields.items()}


class KafkaSourceSettings(BaseSettings):
    """How the daemon runs KafkaSources' members (environment prefix WHARF_KAFKASOURCE_)."""

    model_config = SettingsConfigDict(env_prefix="WHARF_KAFKASOURCE_", extra="ignore")

    start_timeout_s: float = Field(60.0, gt=0, description="a member must log its status port within this")
    status_timeout_s: float = Field(2.0, gt=0, description="deadline of one GET /status of a member")
    stop_grace_s: float = Field(
        20.0, gt=0, description="a stopping member (SIGTERM: it drains and commits) is killed after this"
    )
    backoff_initial_s: float = Field(1.0, gt=0, description="a member that ends again restarts after this")
    backoff_max_s: float = Field(60.0, gt=0, description="the delay doubles up to this")
    backoff_reset_s: float = Field(60.0, gt=0, description="a member that ran this long starts the delays over")
    scale_down_delay_s: float = Field(
        30.0, ge=0, description="a lower member count is taken once the lag has asked for it this long"
    )
    max_members: int = Field(32, ge=1, description="members on this machine in all, over every source")


# -- what a member runs ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sink:
    """Where a source's members send: a base URL, the Host header (None: the URL's), a path prefix and the model."""

    url: str
    host: str | None
    prefix: str
    model: str

    @property
    def uri(self) -> str:
        """The sink as status.sinkUri shows it."""
        return f"http://{self.host}{self.prefix}" if self.host else f"{self.url}{self.prefix}"


class SinkMissing(Exception):
    """The source's sink does not exist (yet)."""


def resolve_sink(source: KafkaSource, store: Store, gateway_url: str, domain: str) -> Sink:
    """Where `source`'s members send its messages; raises SinkMissing."""
    ref, annotated = source.spec.sink.ref, source.extensions.model
    if ref is not None:
        namespace = ref.namespace or source.namespace
        if store.get(ref.kind, namespace, ref.name) is None:
            raise SinkMissing(f"{ref.kind} {namespace}/{ref.name} not found")
        return Sink(gateway_url, f"{ref.name}.{namespace}.{domain}", "", annotated or ref.name)
    assert source.spec.sink.uri is not None
    base, prefix, model = sink_uri_parts(source.spec.sink.uri)
    host = urlsplit(base).hostname or ""
    if host.endswith(f".{domain}"):
        return Sink(gateway_url, host, prefix, model or annotated or "")
    return Sink(base, None, prefix, model or annotated or "")


def services_fed(source: KafkaSource, store: Store, namespace: str) -> set[tuple[str, str]]:
    """The InferenceServices (namespace, name) that `source` (of `namespace`) sends its messages to: its sink, or the
    services the steps of its sink graph name."""
    ref = source.spec.sink.ref
    if ref is None:
        return set()
    namespace = ref.namespace or namespace
    if ref.kind == inferenceservice.KIND:
        return {(namespace, ref.name)}
    graph = store.get(ref.kind, namespace, ref.name)
    nodes = graph.manifest["spec"]["nodes"].values() if graph is not None else ()
    return {(namespace, step["serviceName"]) for node in nodes for step in node["steps"] if step.get("serviceName")}


def member_env(source: KafkaSource, sink: Sink) -> dict[str, str]:
    """The WHARF_KAFKA_* settings of `source`'s members (`wharf.eventing.settings.ConsumerSettings`)."""
    spec, extensions = source.spec, source.extensions
    values: dict[str, Any] = {
        "bootstrap_servers": ",".join(spec.bootstrap_servers),
        "topics": ",".join(spec.topics),
        "group_id": source.consumer_group,
        "initial_offset": spec.initial_offset,
        "sink_url": sink.url,
        "sink_host": sink.host,
        "sink_path_prefix": sink.prefix,
        "model": sink.model,
        "reply_topic": extensions.reply_topic,
        "dead_letter_topic": extensions.dead_letter_topic,
        "format": extensions.format,
        "max_batch": extensions.max_batch,
        "status_port": 0,
    }
    if (delivery := spec.delivery) is not None:
        values |= {
            "max_retries": delivery.retry,
            "retry_initial_s": duration_s(delivery.backoff_delay),
            "request_timeout_s": duration_s(delivery.timeout),
        }
    if spec.net is not None:
        values["security_protocol"] = spec.net.security_protocol
    unknown = set(values) - set(ConsumerSettings.model_fields)
    assert not unknown, f"not consumer settings: {unknown}"
    return {f"{_ENV_PREFIX}{name}".upper(): str(value) for name, value in values.items() if value is not None}


def env_digest(env: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(env), sort_keys=True).encode()).hexdigest()[:16]


# -- the members -------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Member:
    id: str
    digest: str
    log_path: Path
    process: Member | None = None
    port: int = 0
    log_offset: int = 0  # where its current process's output begins in its log
    started_at: float = 0.0  # wall clock, when its current process started
    started: float = 0.0  # monotonic
    due: float = 0.0  # monotonic time its next start may go
    restarts: int = 0
    last_exit: int | None = None
    last_error: str | None = None
    report: dict[str, Any] | None = None  # its last /status

    def record(self) -> dict[str, Any]:
        """What the status shows of it, and what `adopt` reads back."""
        shown: dict[str, Any] = {
            "id": self.id,
            "pid": self.process.pid if self.process else 0,
            "host": self.process.host if self.process else "",
            "statusPort": self.port,
            "state": (self.report or {}).get("state") if self.process else "restarting",
            "restarts": self.restarts,
            "startedAt": timestamp(self.started_at) if self.started_at else None,
            "specDigest": self.digest,
        }
        if self.last_exit is not None:
            shown["lastExit"] = self.last_exit
        if self.last_error:
            shown["lastError"] = self.last_error
        return shown


@dataclass(eq=False)
class _Source:
    uid: str
    scale: MemberScale
    backoff: RestartBackoff
    members: dict[str, _Member] = field(default_factory=dict)
    capped: int | None = None  # the members it runs when the machine's cap leaves it fewer than it wants


class KafkaSources:
    """The daemon's runner of KafkaSources (the module docstring). `gateway_url` is where members reach the
    gateway, `domain` the gateway's domain; `command` what a member runs (its arguments after the interpreter tell
    a member's process from others when it is adopted); `clock` is monotonic seconds. With a Ray `backend`, the
    members run as Ray actors on its cluster (`kafka_members`), else as processes here."""

    def __init__(
        self,
        store: Store,
        home: Path,
        gateway_url: str,
        domain: str,
        settings: KafkaSourceSettings | None = None,
        command: tuple[str, ...] = COMMAND,
        clock: Callable[[], float] = time.monotonic,
        backend: Backend | None = None,
    ) -> None:
        self.store = store
        self.home = home
        self.gateway_url = gateway_url
        self.domain = domain
        self.settings = settings or KafkaSourceSettings()
        self.clock = clock
        self.members = members_on(backend, command, self.settings.stop_grace_s, self.settings.start_timeout_s)
        #: (namespace, InferenceService) -> inference calls the lag of the sources feeding it holds
        self.waiting: dict[tuple[str, str], int] = {}
        self._sources: dict[tuple[str, str], _Source] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._manifests: dict[tuple[str, str, str, int], KafkaSource] = {}
        self._checked: dict[str, str | None] = {}  # configuration digest -> why members would refuse it

    async def adopt(self) -> None:
        """Take back the members a previous daemon recorded in the statuses (the module docstring)."""
        for resource in self.store.list(KIND):
            try:
                await self._adopt(resource)
            except Exception:  # one source that cannot run here must not keep the daemon from starting
                log.exception("kafka members not adopted", extra={"source": f"{resource.namespace}/{resource.name}"})
        try:
            await self.members.sweep({member for source in self._sources.values() for member in source.members})
        except Exception:
            log.exception("kafka members not recorded left running")

    async def _adopt(self, resource: Resource) -> None:
        source = self._source(resource)
        try:
            digest = env_digest(member_env(self._parsed(resource), self._sink(resource)))
        except SinkMissing:
            digest = ""
        checks = [self._take_over(resource, record, digest) for record in resource.status.get("members", [])]
        for member in await asyncio.gather(*checks):
            if member is not None:
                source.members[member.id] = member

    async def _take_over(self, resource: Resource, record: dict[str, Any], digest: str) -> _Member | None:
        if (found := await self.members.find(record)) is None:
            return None
        port = found.port()
        report = await self._status(found.host, port) if port else None
        if report is None or record.get("specDigest") != digest:
            log.info("kafka member not adopted; stopping it", extra={"member": record.get("id"), "pid": found.pid})
            self._stop(found)
            return None
        member = _Member(str(record["id"]), digest, self._log_path(resource, str(record["id"])), found)
        member.port, member.report, member.restarts = port, report, int(record.get("restarts") or 0)
        member.log_offset = member.log_path.stat().st_size if member.log_path.exists() else 0
        member.started, member.started_at = self.clock(), time.time()
        log.info("kafka member adopted", extra={"member": member.id, "pid": found.pid, "host": found.host})
        return member

    async def sync(self) -> None:
        resources = {(r.namespace, r.name): r for r in self.store.list(KIND)}
        for key, source in list(self._sources.items()):
            if (resource := resources.get(key)) is None or resource.uid != source.uid:
                for member in source.members.values():
                    self._retire(member)
                del self._sources[key]
        waiting: dict[tuple[str, str], int] = {}
        await asyncio.gather(*(self._sync_logged(resource, waiting) for resource in resources.values()))
        self.waiting = waiting

    async def _sync_logged(self, resource: Resource, waiting: dict[tuple[str, str], int]) -> None:
        """One source's pass (the sources' run at once: a member slow to answer its status delays only its own)."""
        try:
            await self._sync(resource, waiting)
        except Exception:  # logged; the other sources (and the rest of the resync) go on, the next pass retries
            log.exception("kafka source sync failed", extra={"source": f"{resource.namespace}/{resource.name}"})

    async def stop(self) -> None:
        """Stop every member (a later daemon starts them again; they resume from the committed offsets)."""
        for source in self._sources.values():
            for member in source.members.values():
                self._retire(member)
        self._sources.clear()
        if self._stopping:
            await asyncio.wait(set(self._stopping))
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- one source ----------------------------------------------------------------------------------------------
    async def _sync(self, resource: Resource, waiting: dict[tuple[str, str], int]) -> None:
        source = self._source(resource)
        manifest = self._parsed(resource)
        try:
            sink: Sink | None = self._sink(resource)
            env = member_env(manifest, sink) if sink else {}
        except SinkMissing as e:
            sink, env, missing = None, {}, str(e)
        else:
            missing = ""
        digest = env_digest(env) if env else ""
        invalid = self._invalid(env, digest) if env else None
        for member in list(source.members.values()):
            if sink is None or invalid or member.digest != digest:
                self._retire(member)
                del source.members[member.id]
        if sink is not None and not invalid:
            await self._supervise(resource, source, env, digest)
            reports = [m.report for m in source.members.values() if m.process is not None and m.report]
            lag, partitions = _lag(reports), _partitions(reports)
            source.scale = source.scale.next(
                manifest.bounds, lag, len(partitions) or None, self.clock(), self.settings.scale_down_delay_s
            )
            self._scale(resource, source, digest)
            max_batch = int(env.get(f"{_ENV_PREFIX}MAX_BATCH", _DEFAULTS["max_batch"]))
            calls = calls_waiting(lag, len(source.members), max_batch, _DEFAULTS["max_in_flight"])
            for key in services_fed(manifest, self.store, resource.namespace):
                waiting[key] = waiting.get(key, 0) + calls
        status = self._status_of(resource, source, sink, missing, invalid)
        if status != resource.status:
            self.store.set_status(KIND, resource.namespace, resource.name, status)

    def _parsed(self, resource: Resource) -> KafkaSource:
        """The stored source, validated once per version (each pass reads every source)."""
        key = (resource.namespace, resource.name, resource.uid, resource.generation)
        if (parsed := self._manifests.get(key)) is None:
            self._manifests = {k: v for k, v in self._manifests.items() if k[:2] != key[:2]}
            parsed = self._manifests[key] = _parse(resource)
        return parsed

    def _sink(self, resource: Resource) -> Sink:
        return resolve_sink(self._parsed(resource), self.store, self.gateway_url, self.domain)

    def _source(self, resource: Resource) -> _Source:
        key = (resource.namespace, resource.name)
        if key not in self._sources:
            s = self.settings
            backoff = RestartBackoff(s.backoff_initial_s, s.backoff_max_s, s.backoff_reset_s, self.clock)
            bounds = self._parsed(resource).bounds
            self._sources[key] = _Source(resource.uid, MemberScale.first(bounds), backoff)
        return self._sources[key]

    def _scale(self, resource: Resource, source: _Source, digest: str) -> None:
        """Start or stop members until the source has as many as its scale says, as far as the other sources leave
        room under `max_members` (the newest stop first)."""
        others = sum(len(other.members) for other in self._sources.values() if other is not source)
        wanted = min(source.scale.members, max(self.settings.max_members - others, 0))
        source.capped = wanted if wanted < source.scale.members else None
        while len(source.members) < wanted:
            member_id = f"{resource.name}-{secrets.token_hex(3)}"
            source.members[member_id] = _Member(member_id, digest, self._log_path(resource, member_id))
            source.members[member_id].due = self.clock() + source.backoff.wait_s()
        newest_first = sorted(source.members.values(), key=lambda m: (m.process is not None, -m.started))
        for member in newest_first[: len(source.members) - wanted]:
            self._retire(member)
            del source.members[member.id]

    async def _supervise(self, resource: Resource, source: _Source, env: dict[str, str], digest: str) -> None:
        """Start members that are due, learn the ports of starting ones, notice ended ones; ask each /status."""
        now = self.clock()
        for member in source.members.values():
            if member.process is None:
                if now >= member.due:
                    await self._start(resource, member, env)
                continue
            if member.process.exited():
                await member.process.kill()  # an ended actor is killed: none left alive while it waits to restart
                self._ended(resource, source, member, member.process.failure or "exited")
            elif member.port == 0:
                member.port = member.process.port()
                if member.port == 0 and now - member.started > self.settings.start_timeout_s:
                    await member.process.kill()
                    self._ended(resource, source, member, f"no status port within {self.settings.start_timeout_s:g} s")
        polled = [m for m in source.members.values() if m.process is not None and m.port]
        asked = (self._status(m.process.host, m.port) for m in polled if m.process is not None)
        for member, report in zip(polled, await asyncio.gather(*asked), strict=True):
            member.report = report
            if report is not None and report.get("state") == "consuming":
                source.backoff.ready()

    async def _start(self, resource: Resource, member: _Member, env: dict[str, str]) -> None:
        member.log_offset = member.log_path.stat().st_size if member.log_path.exists() else 0
        try:
            member.process = await self.members.start(member.id, env, member.log_path)
        except OSError as e:
            member.last_error, member.due = f"could not start: {e}", self.clock() + self.settings.backoff_max_s
            return
        member.port, member.report = 0, None
        member.started, member.started_at = self.clock(), time.time()
        self._record(resource)  # at once: a daemon that dies now must find it to adopt it
        log.info("kafka member started", extra={"member": member.id, "pid": member.process.pid})
        self.store.add_event(KIND, resource.namespace, resource.name, "Normal", "Started", f"member {member.id}")

    def _ended(self, resource: Resource, source: _Source, member: _Member, why: str) -> None:
        assert member.process is not None
        member.last_exit = member.process.returncode
        status = "" if member.last_exit is None else f" (status {member.last_exit})"
        tail = last_lines(member.log_path, member.log_offset, _ERROR_LINES)
        member.last_error = f"{why}{status}" + (f":\n{tail}" if tail else "")
        ran = self.clock() - member.started
        delay = source.backoff.ended(ran if member.report else None)
        member.process, member.port, member.report, member.due = None, 0, None, self.clock() + delay
        member.restarts += 1
        log.warning("kafka member ended", extra={"member": member.id, "reason": why, "restart_in_s": delay})
        message = f"member {member.id} {why}{status}; restarting in {delay:g} s"
        self.store.add_event(KIND, resource.namespace, resource.name, "Warning", "MemberEnded", message)

    def _retire(self, member: _Member) -> None:
        if member.process is not None:
            self._stop(member.process)
            member.process = None

    def _stop(self, process: Member) -> None:
        task = asyncio.get_running_loop().create_task(process.stop(self.settings.stop_grace_s))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _record(self, resource: Resource) -> None:
        """Write the members' records into the stored status now."""
        source = self._sources[(resource.namespace, resource.name)]
        stored = self.store.get(KIND, resource.namespace, resource.name)
        if stored is not None:
            status = {**stored.status, "members": [m.record() for m in source.members.values()]}
            self.store.set_status(KIND, resource.namespace, resource.name, status)

    def _log_path(self, resource: Resource, member_id: str) -> Path:
        return self.home / "logs" / "kafkasources" / resource.namespace / resource.name / f"{member_id}.log"

    async def _status(self, host: str, port: int) -> dict[str, Any] | None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.status_timeout_s))
        try:
            async with self._http.get(f"http://{host}:{port}/status") as answer:
                if answer.status != 200:
                    return None
                found = await answer.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    # -- the status ----------------------------------------------------------------------------------------------
    def _invalid(self, env: dict[str, str], digest: str) -> str | None:
        """Why members with `env` (on top of the daemon's WHARF_KAFKA_* settings) would refuse to start, or None;
        checked once per configuration."""
        if digest not in self._checked:
            try:
                ConsumerSettings(**{key.removeprefix(_ENV_PREFIX).lower(): value for key, value in env.items()})
            except ValidationError as e:
                self._checked[digest] = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            else:
                self._checked[digest] = None
        return self._checked[digest]

    def _status_of(
        self, resource: Resource, source: _Source, sink: Sink | None, missing: str, invalid: str | None
    ) -> dict[str, Any]:
        running = [m for m in source.members.values() if m.process is not None]
        reports = [m.report for m in running if m.report]
        consuming = [r for r in reports if r.get("state") == "consuming"]
        down = next((r for r in reports if r.get("state") == "broker-unavailable"), None)
        if sink is None:
            group = ("SinkNotFound", "no member runs without a sink")
        elif invalid:
            group = (
                "InvalidSettings",
                f"the consumers' settings (the source's and WHARF_KAFKA_* of wharf up): {invalid}",
            )
        elif down is not None:
            group = ("BrokerUnavailable", str(down.get("reason") or "the brokers do not answer"))
        elif consuming:
            group = ("", "")
        elif running:
            group = ("Connecting", f"{len(running)} member(s) starting or connecting to the brokers")
        else:
            errors = [m.last_error for m in source.members.values() if m.last_error]
            why = f": {errors[0]}" if errors else _capped(source.capped)
            group = ("NoMembers", "no member runs" + why)
        before = {c["type"]: c for c in resource.status.get("conditions", [])}
        conditions = [
            _condition(before, "SinkProvided", sink is not None, "SinkNotFound" if sink is None else "", missing),
            _condition(before, "ConsumerGroup", not group[0], *group),
        ]
        reason, message = (("SinkNotFound", missing) if sink is None else group) if group[0] else ("", "")
        conditions.append(_condition(before, "Ready", not group[0], reason, message))
        partitions = _partitions(reports)
        status: dict[str, Any] = {
            "observedGeneration": resource.generation,
            "conditions": conditions,
            "consumers": len(running),
            "partitions": [partitions[key] for key in sorted(partitions)],
            "counters": _counters(reports),
            "members": [m.record() for m in source.members.values()],
            "scale": {"members": source.scale.members, "reason": source.scale.reason + _capped(source.capped)},
        }
        if sink is not None:
            status["sinkUri"] = sink.uri
        if partitions:  # while no member holds a partition (starting, rebalancing), the lag is not known
            status["lag"] = sum(p.get("lag") or 0 for p in partitions.values())
        if latency := _latency(reports):
            status["latencyMs"] = latency
        return status


def _capped(granted: int | None) -> str:
    if granted is None:
        return ""
    return f"; runs {granted}: the machine runs at most that many more members (WHARF_KAFKASOURCE_MAX_MEMBERS)"


def _parse(resource: Resource) -> KafkaSource:
    parsed = parse_manifest(resource.manifest)
    assert isinstance(parsed, KafkaSource)
    return parsed


def _condition(before: dict[str, Any], kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    """A condition; its lastTransitionTime is kept while its status stays."""
    holds = "True" if ok else "False"
    old = before.get(kind, {})
    when = old["lastTransitionTime"] if old.get("status") == holds and "lastTransitionTime" in old else None
    condition = {"type": kind, "status": holds, "lastTransitionTime": when or timestamp(time.time())}
    if not ok:
        condition |= {"reason": reason, "message": message}
    return condition


def _partitions(reports: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """The partitions the members report, once each (a partition two members report during a rebalance: the one
    committed furthest)."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for report in reports:
        for p in report.get("partitions") or []:
            key = (str(p.get("topic")), int(p.get("partition") or 0))
            if key not in found or (p.get("committed") or 0) > (found[key].get("committed") or 0):
                found[key] = {k: p.get(k) for k in ("topic", "partition", "committed", "end", "lag")}
    return found


def _lag(reports: list[dict[str, Any]]) -> int:
    return sum(p.get("lag") or 0 for p in _partitions(reports).values())


_COUNTERS = {
    "consumed": "consumed", "answered": "answered", "dead_lettered": "deadLettered", "retried": "retried",
    "duplicates_suspected": "duplicatesSuspected",
}  # fmt: skip


def _counters(reports: list[dict[str, Any]]) -> dict[str, int]:
    """The members' counters, summed (a member's count starts over when it restarts)."""
    return {
        shown: sum(int((r.get("counters") or {}).get(name) or 0) for r in reports) for name, shown in _COUNTERS.items()
    }


def _latency(reports: list[dict[str, Any]]) -> dict[str, float]:
    """The worst member's latency percentiles (produce to answer, in ms), over the members' recent answers."""
    worst: dict[str, float] = {}
    for report in reports:
        for key, value in (report.get("latency_ms") or {}).items():
            if key != "count" and isinstance(value, (int, float)):
                worst[key] = max(worst.get(key, 0.0), float(value))
    return worst
