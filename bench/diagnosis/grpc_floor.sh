#!/usr/bin/env bash
# Diagnosis, not a comparison: calls/s and CPU per call of grpc.aio's own server (bench/diagnosis/grpc_floor.py, a
# ModelInfer with a constant answer) on CPU 0, under the same h2load load as bench/grpc_iris.sh (one connection,
# BENCH_STREAMS concurrent streams, CPU 1), on asyncio's and on uvloop's event loop.
#
# Usage (from the repository root, after bench/grpc_iris.sh made its request frame): bash bench/diagnosis/grpc_floor.sh
# Environment: BENCH_STREAMS ("1 64"), and those of bench/lib.sh (BENCH_DURATION 10s, BENCH_WARMUP 2s, ports).
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/lib.sh

FRAME=$OUT/work/grpc/request.bin
[[ -f $FRAME ]] || die "no $FRAME: run bench/grpc_iris.sh once first"
require h2load taskset setsid
mkdir -p "$OUT/logs"

h2load_calls() {  # h2load_calls DURATION STREAMS: h2load's summary line of finished requests
    taskset -c 1 h2load -D "$1" -c 1 -m "$2" --data="$FRAME" -H 'content-type: application/grpc' \
        -H 'te: trailers' "http://$HOST:$WHARF_GRPC_PORT/inference.GRPCInferenceService/ModelInfer" |
        grep -E '^finished'
}

for loop in asyncio uvloop; do
    port_free "$WHARF_GRPC_PORT" || die "port $WHARF_GRPC_PORT is already in use"
    setsid taskset -c 0 .venv/bin/python bench/diagnosis/grpc_floor.py "$WHARF_GRPC_PORT" "$loop" \
        >"$OUT/logs/grpc-floor.log" 2>&1 &
    SERVER_PID=$!
    until grep -q serving "$OUT/logs/grpc-floor.log" 2>/dev/null; do
        alive "$SERVER_PID" || die "the constant-answer server exited (log: $OUT/logs/grpc-floor.log)"
        sleep 0.2
    done
    for streams in ${BENCH_STREAMS:-1 64}; do
        h2load_calls "$WARMUP" "$streams" >/dev/null
        before=$(cpu0_ticks)
        echo "$loop, $streams streams: $(h2load_calls "$DURATION" "$streams")"
        after=$(cpu0_ticks)
        echo "  other load on CPU 0: $(other_load "$before" "$after")%"
    done
    stop_server
done
