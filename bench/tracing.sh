#!/usr/bin/env bash
# What tracing costs `wharf serve`: REST throughput and latency of the iris LogisticRegression with tracing off
# (no OTEL_EXPORTER_OTLP_ENDPOINT), on with every request sampled (OTEL_TRACES_SAMPLER=always_on), and on with
# one request in ten sampled (parentbased_traceidratio, 0.1: the requests carry no traceparent, so each is a root).
#
# As bench/rest_iris.sh: the server alone on CPU 0 with one worker, wrk on CPU 1 POSTing the 1-row V2 request
# (bench/post.lua) over keep-alive connections. With tracing on the server exports its spans over OTLP/HTTP
# (http/protobuf, the default; batches every OTEL_BSP_SCHEDULE_DELAY, 5 s by default) to bench/otlp_sink.py on
# CPU 1, which decodes and counts them; the cost measured is the server's: its spans and its exporter's thread.
# Output: a Markdown table per case and connection count, and the requests/s of each case over tracing off,
# printed and written to bench/results/tracing.md; raw wrk outputs in bench/results/raw/tracing/.
#
# Usage (from the repository root): bash bench/tracing.sh
# Environment: BENCH_CONNECTIONS ("1 64"), BENCH_OTLP_PORT (18130), and those of bench/lib.sh (BENCH_DURATION ...).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

CONNECTIONS=${BENCH_CONNECTIONS:-1 64}
OTLP_PORT=${BENCH_OTLP_PORT:-18130}
RAW=$OUT/raw/tracing
WORK=$OUT/work/tracing

require wrk taskset setsid curl python3
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$RAW" "$WORK"
rm -f "$RAW"/*.txt
port_free "$OTLP_PORT" || die "port $OTLP_PORT is already in use"
.venv/bin/python examples/iris/train.py "$WORK/model.joblib"

# case name, then the OTEL_* environment of the server ("" for none)
CASES=(
    "off|"
    "always_on|OTEL_TRACES_SAMPLER=always_on"
    "ratio|OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1"
)
url="http://$HOST:$WHARF_PORT/v2/models/iris/infer"
for entry in "${CASES[@]}"; do
    name=${entry%%|*}
    settings=${entry#*|}
    echo "== tracing $name ${settings:+($settings)}"
    if [[ -n $settings ]]; then
        start_sink bench/otlp_sink.py "$OTLP_PORT" "$OUT/logs/otlp-sink-$name.log"
        # shellcheck disable=SC2086  # the settings split into VAR=value words on purpose
        export $settings OTEL_EXPORTER_OTLP_ENDPOINT="http://$HOST:$OTLP_PORT"
    fi
    start_wharf "wharf-tracing-$name" "$WORK/model.joblib" iris
    for c in $CONNECTIONS; do
        measure_point "$name, $c connections" "$RAW/$name-c$c.txt" run_wrk "$c" "$url"
    done
    stop_server
    if [[ -n $settings ]]; then
        stop_sink
        echo "  $(tail -n 1 "$OUT/logs/otlp-sink-$name.log")"
        unset OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG OTEL_EXPORTER_OTLP_ENDPOINT
    fi
done

{
    report_header "Tracing's cost to wharf serve (REST iris)" "wrk -t1"
    echo "server on CPU 0, wrk and the OTLP sink on CPU 1; spans exported over OTLP/HTTP in batches."
    echo
    python3 bench/tracing_report.py "$RAW" "$BUSY_PERCENT"
} | tee "$OUT/tracing.md"
