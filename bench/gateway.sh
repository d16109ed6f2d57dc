#!/usr/bin/env bash
# What the gateway costs: the iris model's 1-row V2 JSON infer request (bench/post.lua) sent straight to the
# replica, then through the gateway (routed by its Host header), then through the gateway to a service that logs
# every request and response (payload logging, mode all) to a sink (bench/event_sink.py, on CPU 1 with wrk), at 1
# and 64 keep-alive connections.
#
# The replica (`wharf serve`, one worker) and the gateway (bench/gateway_pair.py: a Gateway in its own process)
# share CPU 0, as they would share a small machine; wrk runs on CPU 1. Both measurements run against the same
# pair of processes: for the direct one the gateway sits idle. Other load on CPU 0 is checked as in
# bench/rest_iris.sh (bench/lib.sh's measure_point).
# Output: a Markdown table with the added p50 latency and the requests/s ratio (targets: at most 0.5 ms added at
# 1 connection; at least 70% of the direct requests/s at 64 connections), printed and written to
# bench/results/gateway.md; raw wrk outputs in bench/results/gateway/raw, logs in bench/results/logs.
#
# Usage (from the repository root): bash bench/gateway.sh
# Environment: BENCH_CONNECTIONS ("1 64"), ports BENCH_GATEWAY_PORT (18200), BENCH_GATEWAY_GRPC_PORT (18201),
#   BENCH_GATEWAY_REPLICA_PORT (18202), BENCH_GATEWAY_REPLICA_GRPC_PORT (18203), BENCH_GATEWAY_SINK_PORT (18204),
#   and those of bench/lib.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

CONNECTIONS=${BENCH_CONNECTIONS:-1 64}
GATEWAY_PORT=${BENCH_GATEWAY_PORT:-18200}
GATEWAY_GRPC_PORT=${BENCH_GATEWAY_GRPC_PORT:-18201}
REPLICA_PORT=${BENCH_GATEWAY_REPLICA_PORT:-18202}
REPLICA_GRPC_PORT=${BENCH_GATEWAY_REPLICA_GRPC_PORT:-18203}
SINK_PORT=${BENCH_GATEWAY_SINK_PORT:-18204}
SERVICE_HOST=iris.default.example.com
LOGGED_HOST=logged.default.example.com
RAW=$OUT/gateway/raw
WORK=$OUT/gateway/work

run_wrk_gateway() {  # run_wrk_gateway DURATION CONNECTIONS URL [HOST]: run_wrk with a service's Host header
    taskset -c 1 wrk -t1 -c"$2" -d"$1" --latency -s bench/post.lua -H "Host: ${4:-$SERVICE_HOST}" "$3"
}

check_answer() {  # check_answer NAME URL: a setosa comes back as class 0
    local body
    body=$(curl -sSf -H "Host: $SERVICE_HOST" -H 'Content-Type: application/json' "$2" \
        -d '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}') ||
        die "$1 did not answer 200"
    [[ $body == *'"data":[0]'* ]] || die "$1 predicted wrong (expected class 0): $body"
}

require wrk taskset setsid curl python3
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$RAW" "$WORK"
rm -f "$RAW"/*.txt
for port in "$GATEWAY_PORT" "$GATEWAY_GRPC_PORT" "$REPLICA_GRPC_PORT" "$SINK_PORT"; do
    port_free "$port" || die "port $port is already in use"
done

.venv/bin/python examples/iris/train.py "$WORK/model.joblib"
start_sink bench/event_sink.py "$SINK_PORT" "$OUT/logs/event-sink.log"
start_server gateway-pair "$REPLICA_PORT" iris .venv/bin/python bench/gateway_pair.py "$WORK/model.joblib" \
    "$REPLICA_PORT" "$REPLICA_GRPC_PORT" "$GATEWAY_PORT" "$GATEWAY_GRPC_PORT" "http://$HOST:$SINK_PORT/"
deadline=$((SECONDS + READY_TIMEOUT))
until curl -sf -o /dev/null -H "Host: $SERVICE_HOST" "http://$HOST:$GATEWAY_PORT/v2/models/iris/ready"; do
    ((SECONDS < deadline)) || die "the gateway was not ready after ${READY_TIMEOUT}s (log: $OUT/logs/gateway-pair.log)"
    sleep 0.5
done

direct="http://$HOST:$REPLICA_PORT/v2/models/iris/infer"
routed="http://$HOST:$GATEWAY_PORT/v2/models/iris/infer"
check_answer direct "$direct"
check_answer gateway "$routed"
for c in $CONNECTIONS; do
    measure_point "direct, $c connections" "$RAW/direct-c$c.txt" run_wrk "$c" "$direct"
    measure_point "gateway, $c connections" "$RAW/gateway-c$c.txt" run_wrk_gateway "$c" "$routed"
    measure_point "logged, $c connections" "$RAW/logged-c$c.txt" run_wrk_gateway "$c" "$routed" "$LOGGED_HOST"
done
stop_server
stop_sink

{
    report_header "Gateway overhead benchmark" "wrk -t1"
    echo "replica and gateway together on CPU 0, wrk on CPU 1. Wharf $(version .venv/bin/python wharf)."
    echo
    python3 bench/gateway_report.py "$RAW" "$BUSY_PERCENT"
    echo
    echo "Payload logging: the gateway's $(grep -h '^payload events' "$OUT/logs/gateway-pair.log");" \
        "the sink's $(grep -h '^events taken' "$OUT/logs/event-sink.log") (warm-ups and answer checks included)."
} | tee "$OUT/gateway.md"
