"""For bench/gateway.sh: one iris replica (`wharf serve`, a child process) and a Gateway routing to it.

The gateway routes `iris.default.example.com` (and `/serving/default/iris/...`) to the replica, and
`logged.default.example.com` to it as well with payload logging (mode all) to SINK_URL. Both run where this process
runs (bench/gateway.sh pins it to CPU 0); SIGTERM or SIGINT stops the gateway (printing its payload log counts),
then the replica.
With WHARF_BENCH_REPLICA_CPU set, the replica is pinned to that CPU (the gateway and the replica on separate cores);
with an OTLP endpoint in the environment (`OTEL_EXPORTER_OTLP_ENDPOINT`), the gateway traces its requests (the
replica does not).

Usage: python bench/gateway_pair.py MODEL_FILE REPLICA_HTTP_PORT REPLICA_GRPC_PORT GATEWAY_HTTP_PORT GATEWAY_GRPC_PORT
    SINK_URL
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import uvloop

from wharf.gateway import Gateway, Replica, Revision, RouteTable, Service
from wharf.logger import LogTarget
from wharf.telemetry import tracing

HOST = "127.0.0.1"


async def serve(model: str, replica_http: int, replica_grpc: int, http_port: int, grpc_port: int, sink: str) -> None:
    cpu = os.environ.get("WHARF_BENCH_REPLICA_CPU")
    replica = subprocess.Popen(
        (["taskset", "-c", cpu] if cpu else [])
        + [sys.executable, "-m", "wharf.cli", "serve", model, "--name", "iris", "--host", HOST]
        + ["--http-port", str(replica_http), "--grpc-port", str(replica_grpc), "--workers", "1"],
        env={key: value for key, value in os.environ.items() if not key.startswith("OTEL_")},  # the gateway's alone
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gateway = Gateway()
    replica_of = Replica("iris-1", f"http://{HOST}:{replica_http}", f"{HOST}:{replica_grpc}", ready=True)
    revision = Revision("iris-00001", (replica_of,), timeout_s=30.0)
    service = Service("default", "iris", "iris", (("iris-00001", 100),), {}, {"iris-00001": revision})
    target = LogTarget(
        sink, "all", "logged", "default", "predictor", "logged-00001", "http://logged.default.example.com"
    )
    logged_revision = Revision("logged-00001", (replica_of,), timeout_s=30.0, logger=target)
    logged = Service("default", "logged", "logged", (("logged-00001", 100),), {}, {"logged-00001": logged_revision})
    gateway.update(RouteTable((service, logged)))
    try:
        await gateway.start(HOST, http_port, grpc_port)
        print(f"gateway on {HOST}:{http_port} (gRPC {grpc_port}) -> replica {HOST}:{replica_http}", flush=True)
        await stop.wait()
        await gateway.stop(5.0)
        print(f"payload events: {gateway.payloads.counts}", flush=True)
    finally:
        replica.terminate()
        replica.wait(30)


if __name__ == "__main__":
    model_file, *ports, sink_url = sys.argv[1:]
    tracing.configure("wharf-gateway")
    uvloop.run(serve(model_file, *map(int, ports), sink_url))
