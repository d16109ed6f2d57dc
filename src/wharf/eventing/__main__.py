"""`python -m wharf.eventing`: one Kafka consumer, configured by its environment (`WHARF_KAFKA_*`, settings.py).

It binds its status listener first and logs `{"event": "serving", "status_port": PORT, ...}` (statusline.py reads
it back), then consumes until SIGTERM or SIGINT, when what is in flight gets `drain_timeout_s` to be answered and
committed. Exit status 2 for settings that do not validate.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import uvloop
from pydantic import ValidationError

from wharf.embedded_http import EmbeddedServer, listen
from wharf.eventing.consumer import Consumer
from wharf.eventing.settings import ConsumerSettings
from wharf.eventing.status import Status, StatusApp
from wharf.eventing.statusline import EVENT, FIELD
from wharf.telemetry import logs

log = logging.getLogger("wharf.eventing")


async def serve(settings: ConsumerSettings) -> None:
    status = Status(settings.group_id, settings.topics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    listener = listen(settings.status_host, settings.status_port)
    server = EmbeddedServer(StatusApp(status), timeout_keep_alive=5)
    http = await server.start(listener)
    log.info(
        EVENT,
        extra={
            FIELD: listener.getsockname()[1], "host": settings.status_host, "topics": settings.topics,
            "group_id": settings.group_id, "sink": settings.sink_url + settings.sink_path_prefix,
        },
    )  # fmt: skip
    try:
        await Consumer(settings, status).run(stop)
    finally:
        server.should_exit = True
        await http
        log.info("stopped")


def main() -> None:
    try:
        settings = ConsumerSettings()
    except ValidationError as e:
        problems = "; ".join(f"WHARF_KAFKA_{'.'.join(map(str, p['loc'])).upper()}: {p['msg']}" for p in e.errors())
        print(f"invalid consumer settings: {problems}", file=sys.stderr)
        sys.exit(2)
    logs.configure(settings.log_level)
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
