#!/usr/bin/env bash
# gRPC throughput and latency of Wharf, KServe 0.21 and MLServer 1.7 serving the same iris LogisticRegression:
# Open Inference Protocol ModelInfer calls (inference.GRPCInferenceService), side by side in one run.
#
# Each server runs alone, pinned to CPU 0, one worker, no batching (plus wharf-batch: Wharf with
# --max-batch-size 64, at 64 streams only). The load generator is h2load (nghttp2-client), pinned to CPU 1: a
# Python gRPC client tops out near 5-8k calls/s on one core. It repeats one pre-framed 1-row FP32 ModelInferRequest
# (bench/request_body.py) over one HTTP/2 connection at 1, 8 and 64 concurrent streams, after a warm-up.
# Before measuring, a real gRPC call with those exact bytes, then 3 rounds of 64 concurrent calls with different
# rows, must come back with the model's own predictions (bench/check_server.py). h2load counts HTTP 200 as success
# whatever the grpc-status trailer says, so the report counts a call as answered only when its response message
# arrived (h2load's DATA bytes divided by the size of one answer). Latency percentiles come from h2load's
# per-request log. Points disturbed by other work on CPU 0 are measured again (bench/lib.sh).
# Output: bench/results/grpc_iris.md (bench/grpc_report.py); raw outputs in bench/results/raw/grpc/.
#
# Usage (from the repository root): bash bench/grpc_iris.sh
# Environment: BENCH_STREAMS ("1 8 64"), BENCH_SERVERS ("wharf kserve mlserver wharf-batch"),
#   BENCH_BATCH_STREAMS (64: where wharf-batch is measured), BENCH_GRPC_CLIENTS (1: HTTP/2 connections the streams
#   are spread over), and those of bench/lib.sh (BENCH_DURATION 10s, BENCH_WARMUP 2s, BENCH_ATTEMPTS 3, ports).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

STREAMS=${BENCH_STREAMS:-1 8 64}
SERVERS=${BENCH_SERVERS:-wharf kserve mlserver wharf-batch}
BATCH_STREAMS=${BENCH_BATCH_STREAMS:-64}
CLIENTS=${BENCH_GRPC_CLIENTS:-1}
WORK=$OUT/work/grpc
RAW=$OUT/raw/grpc
FRAME=$WORK/request.bin
RESPONSE_BYTES=""  # the size of one answer's gRPC frame, from the check

run_h2load() {  # run_h2load DURATION STREAMS PORT: ModelInfer calls repeating FRAME, then the latency percentiles
    local clients=$((CLIENTS < $2 ? CLIENTS : $2))
    rm -f "$WORK/h2load.log"  # h2load appends to its log
    taskset -c 1 h2load -D "$1" -c "$clients" -m $(($2 / clients)) --data="$FRAME" \
        -H 'content-type: application/grpc' -H 'te: trailers' --log-file="$WORK/h2load.log" \
        "http://$HOST:$3/inference.GRPCInferenceService/ModelInfer"
    echo "Response frame bytes: $RESPONSE_BYTES"
    cut -f3 "$WORK/h2load.log" | sort -n | awk '{v[NR] = $1}
        END {printf "Latency percentiles (us): p50 %d p99 %d\n", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1]}'
}

measure() {  # measure SERVER GRPC_PORT EXPECTED STREAMS: check the answers, then each stream count
    local server=$1 s count=()
    RESPONSE_BYTES=$(.venv/bin/python bench/check_server.py grpc "$HOST:$2" iris "$3" 1 "$FRAME") ||
        die "$server did not answer ModelInfer correctly (log: $OUT/logs/grpc-$server.log)"
    [[ $server != wharf* ]] || count=(counting_batches)  # Wharf: count its predict calls during each measurement
    for s in $4; do
        measure_point "$server, $s streams" "$RAW/$server-c$s.txt" "${count[@]}" run_h2load "$s" "$2"
    done
}

# --- preconditions ---------------------------------------------------------------------------------------
if ! command -v h2load >/dev/null; then
    echo "Installing h2load (Debian's nghttp2-client)"
    apt-get install -y nghttp2-client >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y nghttp2-client >/dev/null; }
fi
require h2load taskset setsid curl python3
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
rm -rf "$RAW" && mkdir -p "$RAW" "$WORK"
.venv/bin/python bench/train_model.py iris "$WORK/wharf"
.venv/bin/python bench/request_body.py grpc "$WORK/wharf/expected.json" 1 iris "$FRAME"

# --- each server in turn ---------------------------------------------------------------------------------
versions=()
for server in $SERVERS; do
    echo "== $server"
    case $server in
    wharf | wharf-batch)
        options=()
        [[ $server == wharf ]] || options=(--max-batch-size 64)
        start_wharf "grpc-$server" "$WORK/wharf/model.joblib" iris "${options[@]}"
        streams=$STREAMS
        [[ $server == wharf ]] || streams=$BATCH_STREAMS
        measure "$server" "$WHARF_GRPC_PORT" "$WORK/wharf/expected.json" "$streams"
        [[ $server != wharf ]] || versions+=("Wharf $(version .venv/bin/python wharf)")
        ;;
    kserve)
        ensure_venv kserve "${KSERVE_PINS[@]}"
        "$VENVS/kserve/bin/python" bench/train_model.py iris "$WORK/kserve"
        port_free "$KSERVE_GRPC_PORT" || die "port $KSERVE_GRPC_PORT is already in use"
        start_kserve "grpc-$server" "$WORK/kserve/model.joblib" iris \
            --enable_grpc true --grpc_port "$KSERVE_GRPC_PORT"
        measure "$server" "$KSERVE_GRPC_PORT" "$WORK/kserve/expected.json" "$STREAMS"
        versions+=("KServe $(version "$VENVS/kserve/bin/python" kserve)")
        ;;
    mlserver)
        ensure_venv mlserver "${MLSERVER_PINS[@]}"
        "$VENVS/mlserver/bin/python" bench/train_model.py iris "$WORK/mlserver/iris"
        start_mlserver "grpc-$server" "$WORK/mlserver" iris
        measure "$server" "$MLSERVER_GRPC_PORT" "$WORK/mlserver/iris/expected.json" "$STREAMS"
        versions+=("MLServer $(version "$VENVS/mlserver/bin/python" mlserver)")
        ;;
    *) die "unknown server '$server' (known: wharf kserve mlserver wharf-batch)" ;;
    esac
    stop_server
done
rm -f "$WORK/h2load.log"

# --- report ----------------------------------------------------------------------------------------------
{
    report_header "gRPC iris benchmark" "$(h2load --version | head -n 1), $CLIENTS connection(s)"
    echo "server on CPU 0, h2load on CPU 1."
    echo "$(printf '%s; ' "${versions[@]}" | sed 's/; $//')."
    echo "MLServer parallel_workers: $MLSERVER_PARALLEL_WORKERS."
    echo
    python3 bench/grpc_report.py "$RAW" "$BUSY_PERCENT"
} | tee "$OUT/grpc_iris.md"
