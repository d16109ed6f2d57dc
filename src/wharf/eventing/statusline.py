"""The consumer's `serving` log line, which tells its supervisor the port of its status listener.

The line is the model server's JSON log line (`{"event": "serving", ...}`) with `status_port` in place of the
model server's `http_port`/`grpc_port`, so `wharf.control.backends.logfile.serving_ports` never takes it for a
model server's; `status_port` reads it back. Costs nothing on the hot path: one line per process start.
"""

from __future__ import annotations

import orjson

EVENT = "serving"
FIELD = "status_port"


def status_port(line: str | bytes) -> int | None:
    """The status port from the consumer's `serving` line; None for any other line."""
    raw = line if isinstance(line, bytes) else line.encode()
    if b'"status_port"' not in raw:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("event") != EVENT:
        return None
    port = doc.get(FIELD)
    return port if type(port) is int and 0 < port < 65536 else None
