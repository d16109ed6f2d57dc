#!/usr/bin/env bash
# REST throughput and latency of Wharf, KServe 0.21 and MLServer 1.7 serving the same iris
# LogisticRegression, measured side by side in one run.
#
# Each server runs alone, pinned to CPU 0, with one worker and no batching; wrk runs pinned to CPU 1
# and POSTs the same 1-row Open Inference Protocol (V2) JSON request (bench/post.lua) over keep-alive
# connections, at 1, 8 and 64 connections, after a short warm-up at the same connection count.
# Before measuring, every server must answer 200 with the right class for two known flowers.
# CPU 0 belongs to the server: when other work took more than BENCH_BUSY_PERCENT of it during a
# measurement, that point is measured again (up to BENCH_ATTEMPTS runs), and the least disturbed run is kept.
# Output: a Markdown table (requests/s, p50, p99, errors, other load on CPU 0, and Wharf's requests/s
# ratio to each other server), printed and written to bench/results/rest_iris.md; raw wrk and server logs sit beside it.
#
# Usage (from the repository root): bash bench/rest_iris.sh
# Environment: BENCH_CONNECTIONS ("1 8 64"), BENCH_SERVERS ("wharf kserve mlserver"), and those of bench/lib.sh
#   (BENCH_DURATION 10s, BENCH_WARMUP 2s, BENCH_ATTEMPTS 3, BENCH_BUSY_PERCENT 5, ports, MLServer workers).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

CONNECTIONS=${BENCH_CONNECTIONS:-1 8 64}
SERVERS=${BENCH_SERVERS:-wharf kserve mlserver}
WORK=$OUT/work

check_predictions() {  # check_predictions NAME URL: a setosa must come back as class 0, a virginica as 2
    local name=$1 url=$2 features expected status body
    for case in "5.1,3.5,1.4,0.2 0" "6.7,3.0,5.2,2.3 2"; do
        read -r features expected <<<"$case"
        body=$(curl -sS -w '\n%{http_code}' -H 'Content-Type: application/json' "$url" \
            -d "{\"inputs\":[{\"name\":\"input-0\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[$features]}]}")
        status=${body##*$'\n'}
        body=${body%$'\n'*}
        [[ $status == 200 ]] || die "$name answered $status to a valid request: $body"
        python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1])["outputs"][0]["data"][0] != int(sys.argv[2]))' \
            "$body" "$expected" || die "$name predicted wrong (expected class $expected): $body"
    done
}

measure() {  # measure NAME PORT: per connection count, warm up and measure; again while CPU 0 was busy
    local name=$1 url="http://$HOST:$2/v2/models/iris/infer" c
    check_predictions "$name" "$url"
    for c in $CONNECTIONS; do
        measure_point "$name, $c connections" "$OUT/raw/$name-c$c.txt" run_wrk "$c" "$url"
    done
}

# --- preconditions ---------------------------------------------------------------------------------------
require wrk taskset setsid curl python3
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)  # other work on the machine shows here
rm -f "$OUT"/raw/*.txt

# --- each server in turn ---------------------------------------------------------------------------------
versions=()
for server in $SERVERS; do
    echo "== $server"
    mkdir -p "$WORK/$server"
    case $server in
    wharf)
        .venv/bin/python examples/iris/train.py "$WORK/wharf/model.joblib"
        start_wharf wharf "$WORK/wharf/model.joblib" iris
        measure wharf "$WHARF_PORT"
        versions+=("Wharf $(version .venv/bin/python wharf)")
        ;;
    kserve)
        ensure_venv kserve "${KSERVE_PINS[@]}"
        "$VENVS/kserve/bin/python" examples/iris/train.py "$WORK/kserve/model.joblib"
        start_kserve kserve "$WORK/kserve/model.joblib" iris
        measure kserve "$KSERVE_PORT"
        versions+=("KServe $(version "$VENVS/kserve/bin/python" kserve)")
        ;;
    mlserver)
        ensure_venv mlserver "${MLSERVER_PINS[@]}"
        mkdir -p "$WORK/mlserver/iris"
        "$VENVS/mlserver/bin/python" examples/iris/train.py "$WORK/mlserver/iris/model.joblib"
        start_mlserver mlserver "$WORK/mlserver" iris
        measure mlserver "$MLSERVER_PORT"
        versions+=("MLServer $(version "$VENVS/mlserver/bin/python" mlserver)")
        ;;
    *) die "unknown server '$server' (known: wharf kserve mlserver)" ;;
    esac
    stop_server
done

# --- report ----------------------------------------------------------------------------------------------
{
    report_header "REST iris benchmark" "wrk -t1"
    echo "server on CPU 0, wrk on CPU 1. $(printf '%s; ' "${versions[@]}" | sed 's/; $//')."
    echo "MLServer parallel_workers: $MLSERVER_PARALLEL_WORKERS."
    echo
    python3 bench/report.py "$OUT/raw" "$BUSY_PERCENT"
} | tee "$OUT/rest_iris.md"
