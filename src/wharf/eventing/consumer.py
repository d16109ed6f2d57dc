"""The consumer: records of its topics to infer calls, answers and dead letters to topics, offsets committed only
once what a record led to is acknowledged by the broker (at least once, in order per partition).

The client is aiokafka: it runs on the process's one asyncio event loop beside the infer calls and the status
listener, with no thread or callback bridge. On this machine it produced about 70,000 and fetched about 320,000
small records/s from the test broker, far above what the infer calls of one consumer reach (a few thousand
records/s), so librdkafka's extra speed (confluent-kafka) would buy nothing here, and its callbacks would have to be
bridged onto the loop.

One session at a time (`Consumer.run`): it connects a consumer (a member of `group_id`) and a producer, then
- fetches records (`getmany`) while fewer than `max_buffered` wait, groups consecutive records of a partition
  into batches (`merging.signature`: at most `max_batch` records that merge into one call; an undecodable record
  or one that cannot merge is a batch of its own) and runs each batch as a task, at most `max_in_flight` calls at
  once;
- a batch's answers (or dead letters) are produced after those of the batch before it in its partition, so
  replies keep the partition's order; once the broker acknowledged them the batch is done (`lanes.Lane`);
- every `commit_interval_s` the done offsets are committed; on a rebalance, the revoked partitions' batches get
  `drain_timeout_s` to finish and what is done is committed, the rest is dropped (the next owner reads it again);
- every second the end offsets of its partitions are fetched (the lag); a broker request that fails or takes
  longer than `broker_timeout_s` ends the session: the state becomes `broker-unavailable` with the reason, the
  work in flight is dropped uncommitted, and a new session starts after a backoff (doubling to
  `reconnect_max_s`), from the committed offsets.
Records read again at offsets this process had already read (after a reconnect or a rebalance) are counted as
`duplicates_suspected`; a restarted process cannot know its predecessor's, so duplicates across a crash are left
to readers of the reply topic (the `id` header says which request an answer is for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Hashable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.helpers import create_ssl_context

from wharf.eventing import merging
from wharf.eventing.lanes import Batch, Lane
from wharf.eventing.messages import Request, Undecodable, answer_record, dead_letter_headers, read, source_headers
from wharf.eventing.settings import ConsumerSettings
from wharf.eventing.sink import Refused, Sink
from wharf.eventing.status import PartitionFigures, Status

log = logging.getLogger(__name__)

_PROBE_S = 1.0
_FIRST_RECONNECT_S = 0.5
_MAX_FETCH = 4096
_JOIN_S = 30.0  # the consumer's requests' own deadline: joining a group waits for the other members


class BrokerDown(Exception):
    """The brokers did not answer a request in time, or failed it; the message says which and why."""


def client_options(settings: ConsumerSettings) -> dict[str, Any]:
    """The client settings both the consumer and the producer take: brokers, timeouts and security."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "request_timeout_ms": int(settings.broker_timeout_s * 1000),
        "security_protocol": settings.security_protocol,
        "client_id": f"wharf-{settings.group_id}",
    }
    if settings.sasl_mechanism is not None:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_plain_username
        if settings.sasl_plain_password is not None:
            options["sasl_plain_password"] = settings.sasl_plain_password.get_secret_value()
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = create_ssl_context(
            cafile=settings.ssl_cafile, certfile=settings.ssl_certfile, keyfile=settings.ssl_keyfile
        )
        context.check_hostname = settings.ssl_check_hostname
        options["ssl_context"] = context
    return options


class _Work:
    """What a batch carries: its records and, once decoded, their requests (or why one is undecodable)."""

    __slots__ = ("records", "requests", "task")

    def __init__(self, records: list[Any], requests: list[Request | Undecodable]) -> None:
        self.records = records
        self.requests = requests
        self.task: asyncio.Task[None] | None = None


class Consumer:
    """One per process: `run` until `stop` is set."""

    def __init__(self, settings: ConsumerSettings, status: Status) -> None:
        self.settings = settings
        self.status = status
        self.sink = Sink(settings, self._retried)
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._lanes: dict[TopicPartition, Lane] = {}
        self._read_up_to: dict[TopicPartition, int] = {}  # highest offset read, over sessions (duplicates)
        self._waiting = 0  # records fetched, not yet done
        self._room = asyncio.Event()
        self._failure: asyncio.Future[None] | None = None
        self._previous: dict[TopicPartition, asyncio.Future[None]] = {}  # the last batch's sends are queued
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    # --- sessions ------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Sessions until `stop` is set; each broker failure backs off before the next."""
        delay = _FIRST_RECONNECT_S
        try:
            while not stop.is_set():
                try:
                    await self._session(stop)
                except (BrokerDown, KafkaError, OSError) as e:
                    reason = str(e) or type(e).__name__
                    self.status.became("broker-unavailable", reason)
                    log.warning("brokers unavailable", extra={"reason": reason, "retry_in_s": delay})
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    delay = min(delay * 2, self.settings.reconnect_max_s)
                    continue
                delay = _FIRST_RECONNECT_S
        finally:
            self.status.became("stopping")
            await self.sink.close()

    async def _session(self, stop: asyncio.Event) -> None:
        s = self.settings
        options = client_options(s)
        consumer = AIOKafkaConsumer(
            *s.topics,
            group_id=s.group_id,
            enable_auto_commit=False,
            auto_offset_reset=s.initial_offset,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=max(int(s.session_timeout_s * 1000 / 3), 100),
            max_poll_interval_ms=int(self._rebalance_timeout_s() * 1000),
            fetch_max_wait_ms=int(s.fetch_wait_s * 1000),
            **{**options, "request_timeout_ms": int(max(s.broker_timeout_s, _JOIN_S) * 1000)},
        )
        producer = AIOKafkaProducer(acks="all", linger_ms=1, max_batch_size=256 * 1024, **options)
        self._consumer, self._producer = consumer, producer
        self._failure = asyncio.get_running_loop().create_future()
        tasks: list[asyncio.Task[Any]] = []
        try:
            consumer.subscribe(s.topics, listener=_Rebalance(self))
            await self._broker(producer.start(), "connecting the producer")
            await self._broker(consumer.start(), "joining the group", s.broker_timeout_s + self._rebalance_timeout_s())
            self.status.became("consuming")
            log.info("consuming", extra={"topics": s.topics, "group_id": s.group_id})
            tasks = [asyncio.create_task(c) for c in (self._fetch(), self._commit_every(), self._probe())]
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([*tasks, stopping, self._failure], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if self._failure.done():
                self._failure.result()
            # stopping: no more fetching; what is in flight gets drain_timeout_s, then what is done is committed
            tasks[0].cancel()
            await self._drain(list(self._lanes))
            with contextlib.suppress(CommitFailedError):
                await self._commit()
        finally:
            for task in tasks:
                task.cancel()
            self._drop(list(self._lanes))
            self._consumer = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), self.settings.broker_timeout_s)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), self.settings.broker_timeout_s)
            self._producer = None

    def _rebalance_timeout_s(self) -> float:
        """How long the group waits for its members to rejoin: long enough for a revocation's drain."""
        return max(60.0, self.settings.drain_timeout_s * 2 + self.settings.request_timeout_s)

    async def _broker(self, request: Awaitable[Any], what: str, timeout: float | None = None) -> Any:
        """A broker request within `timeout` (default `broker_timeout_s`); `BrokerDown` saying `what` failed and
        why."""
        timeout = timeout or self.settings.broker_timeout_s
        try:
            return await asyncio.wait_for(request, timeout)
        except TimeoutError:
            raise BrokerDown(f"{what}: no answer within {timeout:g} s") from None
        except (KafkaError, OSError) as e:
            raise BrokerDown(f"{what}: {e or type(e).__name__}") from None

    def _fail(self, error: BaseException) -> None:
        if self._failure is not None and not self._failure.done():
            self._failure.set_exception(error)

    # --- partitions ------------------------------------------------------------------------------------------

    def assigned(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._lanes.setdefault(tp, Lane(tp.topic, tp.partition))
            self.status.partitions.setdefault((tp.topic, tp.partition), PartitionFigures())
        log.info("partitions assigned", extra={"partitions": sorted(f"{t.topic}/{t.partition}" for t in partitions)})

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Finish (within drain_timeout_s) and commit what the revoked partitions have in flight; drop the rest."""
        mine = [tp for tp in partitions if tp in self._lanes]
        if not mine:
            return
        await self._drain(mine)
        with contextlib.suppress(BrokerDown, CommitFailedError):
            await self._commit(mine)
        self._drop(mine)
        for tp in mine:
            self.status.partitions.pop((tp.topic, tp.partition), None)
        log.info("partitions revoked", extra={"partitions": sorted(f"{t.topic}/{t.partition}" for t in mine)})

    async def _drain(self, partitions: list[TopicPartition]) -> None:
        pending = [b.work.task for tp in partitions for b in self._lanes[tp].batches if b.work.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=self.settings.drain_timeout_s)

    def _drop(self, partitions: list[TopicPartition]) -> None:
        """Forget the partitions' lanes, cancelling what they still have in flight (never committed)."""
        for tp in partitions:
            lane = self._lanes.pop(tp, None)
            self._previous.pop(tp, None)
            if lane is None:
                continue
            for batch in lane.batches:
                if batch.work.task is not None:
                    batch.work.task.cancel()
            self._release(lane.pending())

    # --- fetching --------------------------------------------------------------------------------------------

    async def _fetch(self) -> None:
        assert self._consumer is not None
        while True:
            while self._waiting >= self.settings.max_buffered:
                self._room.clear()
                await self._room.wait()
            room = min(self.settings.max_buffered - self._waiting, _MAX_FETCH)
            fetched = await self._consumer.getmany(timeout_ms=200, max_records=room)
            for tp, records in fetched.items():
                lane = self._lanes.get(tp)
                if lane is not None and records:
                    self._take(tp, lane, records)

    def _take(self, tp: TopicPartition, lane: Lane, records: list[Any]) -> None:
        counters = self.status.counters
        counters["consumed"] += len(records)
        seen = self._read_up_to.get(tp, -1)
        if records[0].offset <= seen:
            counters["duplicates_suspected"] += sum(1 for r in records if r.offset <= seen)
        self._read_up_to[tp] = max(seen, records[-1].offset)
        self._waiting += len(records)
        for work in self._batches(tp, records):
            batch = Batch(work.records[0].offset, work.records[-1].offset, len(work.records), work=work)
            lane.add(batch)
            work.task = asyncio.create_task(self._handle(tp, lane, batch))

    def _batches(self, tp: TopicPartition, records: list[Any]) -> list[_Work]:
        """Consecutive records that merge, at most max_batch each; any other record alone."""
        expected = self.settings.format
        out: list[_Work] = []
        key: Hashable | None = None
        for record in records:
            try:
                request: Request | Undecodable = read(
                    record.value, record.headers, f"{tp.topic}-{tp.partition}-{record.offset}", expected
                )
            except Undecodable as e:
                request = e
            sig = merging.signature(request) if isinstance(request, Request) else None
            if sig is not None and sig == key and len(out[-1].records) < self.settings.max_batch:
                out[-1].records.append(record)
                out[-1].requests.append(request)
            else:
                out.append(_Work([record], [request]))
            key = sig
        return out

    # --- one batch -------------------------------------------------------------------------------------------

    async def _handle(self, tp: TopicPartition, lane: Lane, batch: Batch) -> None:
        previous = self._previous.get(tp)
        queued: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._previous[tp] = queued
        try:
            outcomes = await self._outcomes(batch.work.requests)
            if previous is not None:
                await previous
            acks = await self._broker(self._send(tp, batch.work, outcomes), "producing")
            queued.set_result(None)
            if acks:
                await self._broker(asyncio.gather(*acks), "producing answers")
        except BrokerDown as e:
            self._fail(e)
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug: end the session rather than skip the records
            log.exception("batch failed")
            self._fail(BrokerDown(f"handling a batch: {e!r}"))
            return
        finally:
            if not queued.done():
                queued.set_result(None)
        answered = sum(1 for o in outcomes if isinstance(o, dict))
        counters = self.status.counters
        counters["answered"] += answered
        counters["dead_lettered"] += len(outcomes) - answered
        self.status.answered_at([r.timestamp for r in batch.work.records])
        if self._lanes.get(tp) is lane:
            self._release(lane.finished(batch))

    async def _outcomes(self, requests: list[Request | Undecodable]) -> list[dict[str, Any] | Refused | Undecodable]:
        """Each request's answer, or why it goes to the dead-letter topic."""
        if isinstance(requests[0], Undecodable):
            return [requests[0]]
        valid: list[Request] = requests  # type: ignore[assignment]
        async with self._slots:
            if len(valid) == 1:
                return [await self._one(valid[0])]
            try:
                return merging.split(valid, await self.sink.answer(valid[0].kind, merging.merge(valid)))  # type: ignore[return-value]
            except Refused as e:
                if e.status is None:  # retries ran out: every request of the batch with it
                    return [e] * len(valid)
            except merging.Unsplittable:
                pass
            return list(await asyncio.gather(*(self._one(r) for r in valid)))

    async def _one(self, request: Request) -> dict[str, Any] | Refused:
        try:
            answer = await self.sink.answer(request.kind, request.body)
        except Refused as e:
            return e
        if request.kind == "v2":
            answer["id"] = request.id
        return answer

    async def _send(self, tp: TopicPartition, work: _Work, outcomes: list[Any]) -> list[asyncio.Future[Any]]:
        """Queue the batch's answers and dead letters on the producer; their acknowledgements."""
        assert self._producer is not None
        s = self.settings
        acks = []
        for record, request, outcome in zip(work.records, work.requests, outcomes, strict=True):
            where = source_headers(tp.topic, tp.partition, record.offset)
            if isinstance(outcome, dict):
                if s.reply_topic is None:
                    continue
                value, headers = answer_record(request, outcome, where, s.group_id)
                topic = s.reply_topic
            else:
                reason, status = (
                    (outcome.reason, outcome.status) if isinstance(outcome, Refused) else (str(outcome), None)
                )
                if s.dead_letter_topic is None:
                    log.warning("dead letter dropped", extra={"reason": reason, "offset": record.offset})
                    continue
                value, headers = record.value, dead_letter_headers(list(record.headers), where, reason, status)
                topic = s.dead_letter_topic
            acks.append(await self._producer.send(topic, value, key=record.key, headers=headers))
        return acks

    def _release(self, records: int) -> None:
        self._waiting -= records
        self._room.set()

    def _retried(self) -> None:
        self.status.counters["retried"] += 1

    # --- committing and probing ------------------------------------------------------------------------------

    async def _commit_every(self) -> None:
        while True:
            await asyncio.sleep(self.settings.commit_interval_s)
            try:
                await self._commit()
            except CommitFailedError as e:  # a rebalance is under way: its revocation commits
                log.info("commit deferred", extra={"reason": str(e)})

    async def _commit(self, partitions: list[TopicPartition] | None = None) -> None:
        if self._consumer is None:
            return
        offsets = {}
        for tp in self._lanes if partitions is None else partitions:
            lane = self._lanes.get(tp)
            if lane is not None and (offset := lane.to_commit()) is not None:
                offsets[tp] = offset
        if not offsets:
            return
        try:
            await asyncio.wait_for(self._consumer.commit(offsets), self.settings.broker_timeout_s)
        except CommitFailedError:
            raise
        except TimeoutError:
            raise BrokerDown(f"committing: no answer within {self.settings.broker_timeout_s:g} s") from None
        except KafkaError as e:
            raise BrokerDown(f"committing: {e or type(e).__name__}") from None
        for tp, offset in offsets.items():
            if (lane := self._lanes.get(tp)) is not None:
                lane.committed = offset
            if (figures := self.status.partitions.get((tp.topic, tp.partition))) is not None:
                figures.committed = offset

    async def _probe(self) -> None:
        assert self._consumer is not None
        while True:
            partitions = list(self._consumer.assignment())
            if partitions:
                ends = await self._broker(self._consumer.end_offsets(partitions), "fetching end offsets")
                for tp, end in ends.items():
                    if (figures := self.status.partitions.get((tp.topic, tp.partition))) is not None:
                        # the last fetch's high watermark where newer (some brokers' ListOffsets lag behind)
                        figures.end = max(end, self._consumer.highwater(tp) or 0)
                        if figures.committed is None:  # what the group had committed before this member
                            figures.committed = await self._broker(self._consumer.committed(tp), "fetching offsets")
            else:
                await self._broker(self._consumer.topics(), "fetching metadata")
            if self.status.state != "consuming":
                self.status.became("consuming")
            await asyncio.sleep(_PROBE_S)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.consumer.revoked(set(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.consumer.assigned(set(assigned))
