#!/usr/bin/env bash
# Adaptive batching: what Wharf's batching buys under load, against KServe 0.21 (no adaptive batching in its
# Python model server) and MLServer 1.7 (with its own adaptive batching on), in one run.
#
# Two models, each trained by every server's own Python (bench/train_model.py):
#   iris    the iris LogisticRegression, 1-row requests: serving overhead dominates;
#   forest  a 100-tree RandomForestClassifier (make_classification, 20 features), 32-row requests: model time dominates.
# Servers: wharf-batch (--max-batch-size for 64 requests, default max latency 2 ms), wharf-batch0 (the same with
# --max-latency-ms 0), wharf (no batching), kserve, mlserver-batch (max_batch_size 64 requests, max_batch_time
# 0.01 s). Each server runs alone on CPU 0; wrk runs on CPU 1 and POSTs the same V2 JSON request
# (bench/post_body.lua) over BENCH_CONNECTIONS (64) keep-alive connections; Wharf is also measured at 1
# connection, where batching must cost little. Before measuring, 3 rounds of 64 concurrent requests with
# different rows must each come back with the model's own predictions (bench/check_server.py). For Wharf, the
# predict calls and rows it counted during each measurement (/metrics, wharf_batch_size) give the mean batch.
# Points disturbed by other work on CPU 0 are measured again (bench/lib.sh).
# Output: bench/results/batching.md (tables and ratios, bench/batching_report.py); raw outputs in
# bench/results/raw/batching/, server logs in bench/results/logs/.
#
# Usage (from the repository root): bash bench/batching.sh
# Environment: BENCH_CASES ("iris forest"), BENCH_SERVERS ("wharf-batch wharf-batch0 wharf kserve mlserver-batch";
#   also known: mlserver, without batching), BENCH_CONNECTIONS (64), BENCH_LOW_CONNECTIONS (1, Wharf only),
#   BENCH_MAX_BATCH_REQUESTS (64), BENCH_FOREST_ROWS (32), BENCH_MLSERVER_MAX_BATCH_TIME (0.01), and those of
#   bench/lib.sh (BENCH_DURATION 10s, BENCH_WARMUP 2s, BENCH_ATTEMPTS 3, BENCH_BUSY_PERCENT 5, ports).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

CASES=${BENCH_CASES:-iris forest}
SERVERS=${BENCH_SERVERS:-wharf-batch wharf-batch0 wharf kserve mlserver-batch}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
LOW_CONNECTIONS=${BENCH_LOW_CONNECTIONS:-1}
MAX_BATCH_REQUESTS=${BENCH_MAX_BATCH_REQUESTS:-64}
FOREST_ROWS=${BENCH_FOREST_ROWS:-32}
MLSERVER_MAX_BATCH_TIME=${BENCH_MLSERVER_MAX_BATCH_TIME:-0.01}
WORK=$OUT/work/batching
RAW=$OUT/raw/batching

rows_per_request() { if [[ $1 == forest ]]; then echo "$FOREST_ROWS"; else echo 1; fi; }

train() {  # train CASE VENV_PYTHON DIR: the model and its expected predictions, trained with that Python
    mkdir -p "$3"
    "$2" bench/train_model.py "$1" "$3"
}

measure() {  # measure CASE SERVER PORT CONNECTIONS EXPECTED: check the answers, then each connection count
    local case=$1 server=$2 url="http://$HOST:$3/v2/models/$1/infer" c count=()
    .venv/bin/python bench/check_server.py rest "$url" "$5" "$(rows_per_request "$case")" ||
        die "$server did not answer the $case model's predictions (log: $OUT/logs/$case-$server.log)"
    [[ $server != wharf* ]] || count=(counting_batches)  # Wharf: count its predict calls during each measurement
    for c in $4; do
        measure_point "$case, $server, $c connections" "$RAW/$case/$server-c$c.txt" \
            "${count[@]}" run_wrk "$c" "$url" bench/post_body.lua
    done
}

# --- preconditions ---------------------------------------------------------------------------------------
require wrk taskset setsid curl python3
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
[[ " $SERVERS " != *" kserve "* ]] || ensure_venv kserve "${KSERVE_PINS[@]}"
[[ " $SERVERS " != *" mlserver"* ]] || ensure_venv mlserver "${MLSERVER_PINS[@]}"

# --- each model, each server in turn ---------------------------------------------------------------------
versions=("Wharf $(version .venv/bin/python wharf)")
for case in $CASES; do
    echo "== $case"
    rows=$(rows_per_request "$case")
    rm -rf "${RAW:?}/$case" && mkdir -p "$RAW/$case" "$WORK/$case"
    train "$case" .venv/bin/python "$WORK/$case/wharf"
    .venv/bin/python bench/request_body.py json "$WORK/$case/wharf/expected.json" "$rows" "$case" \
        "$WORK/$case/body.json"
    export BENCH_BODY=$WORK/$case/body.json  # read by bench/post_body.lua
    for server in $SERVERS; do
        echo "-- $server"
        dir=$WORK/$case/wharf
        case $server in
        wharf-batch | wharf-batch0 | wharf)
            options=()
            [[ $server == wharf ]] || options=(--max-batch-size $((MAX_BATCH_REQUESTS * rows)))
            [[ $server != wharf-batch0 ]] || options+=(--max-latency-ms 0)
            start_wharf "$case-$server" "$dir/model.joblib" "$case" "${options[@]}"
            measure "$case" "$server" "$WHARF_PORT" "$LOW_CONNECTIONS $CONNECTIONS" "$dir/expected.json"
            ;;
        kserve)
            dir=$WORK/$case/kserve
            train "$case" "$VENVS/kserve/bin/python" "$dir"
            start_kserve "$case-$server" "$dir/model.joblib" "$case"
            measure "$case" "$server" "$KSERVE_PORT" "$CONNECTIONS" "$dir/expected.json"
            ;;
        mlserver-batch | mlserver)
            dir=$WORK/$case/mlserver
            train "$case" "$VENVS/mlserver/bin/python" "$dir/$case"
            batching=""
            [[ $server == mlserver ]] ||
                batching="\"max_batch_size\": $MAX_BATCH_REQUESTS, \"max_batch_time\": $MLSERVER_MAX_BATCH_TIME"
            start_mlserver "$case-$server" "$dir" "$case" "$batching"
            measure "$case" "$server" "$MLSERVER_PORT" "$CONNECTIONS" "$dir/$case/expected.json"
            ;;
        *) die "unknown server '$server' (known: wharf-batch wharf-batch0 wharf kserve mlserver-batch mlserver)" ;;
        esac
        stop_server
    done
done
[[ " $SERVERS " != *" kserve "* ]] || versions+=("KServe $(version "$VENVS/kserve/bin/python" kserve)")
[[ " $SERVERS " != *" mlserver"* ]] || versions+=("MLServer $(version "$VENVS/mlserver/bin/python" mlserver)")

# --- report ----------------------------------------------------------------------------------------------
{
    report_header "Adaptive batching benchmark" "wrk -t1"
    echo "server on CPU 0, wrk on CPU 1. $(printf '%s; ' "${versions[@]}" | sed 's/; $//')."
    echo "Batches of up to $MAX_BATCH_REQUESTS requests: Wharf --max-batch-size $MAX_BATCH_REQUESTS x rows per request;"
    echo "MLServer max_batch_size $MAX_BATCH_REQUESTS, max_batch_time $MLSERVER_MAX_BATCH_TIME s,"
    echo "parallel_workers $MLSERVER_PARALLEL_WORKERS."
    echo
    cases=()
    for case in $CASES; do cases+=("$case:$(rows_per_request "$case")"); done
    python3 bench/batching_report.py "$RAW" "$BUSY_PERCENT" "$CONNECTIONS" "$LOW_CONNECTIONS" "${cases[@]}"
} | tee "$OUT/batching.md"
