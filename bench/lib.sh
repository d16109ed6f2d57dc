# shellcheck shell=bash disable=SC2034  # sourced: the scripts that source it use its settings
# Shell machinery shared by the benchmark scripts in bench/ (sourced, never run on its own).
#
# It gives: the common settings (durations, retries, ports, the pins of the servers compared), venvs for KServe
# and MLServer, starting one model server at a time pinned to CPU 0 and waiting until its model is ready,
# stopping it by its PID and process group (also from the EXIT trap), a payload or span sink on CPU 1 beside the
# load generator (start_sink, stop_sink), and measure_point, which runs a load generator on CPU 1 and measures
# again while other work took more than BENCH_BUSY_PERCENT of CPU 0.
#
# A script sources it from the repository root: `cd "$(dirname "$0")/.." && source bench/lib.sh`.
# Environment: BENCH_DURATION (10s), BENCH_WARMUP (2s), BENCH_READY_TIMEOUT (seconds, 90), BENCH_ATTEMPTS (3),
#   BENCH_BUSY_PERCENT (5), ports BENCH_WHARF_PORT (18100), BENCH_KSERVE_PORT (18101), BENCH_MLSERVER_PORT (18102),
#   BENCH_WHARF_GRPC_PORT (18110), BENCH_KSERVE_GRPC_PORT (18111), BENCH_MLSERVER_GRPC_PORT (18112),
#   BENCH_MLSERVER_METRICS_PORT (18122), BENCH_MLSERVER_PARALLEL_WORKERS (1, MLServer's default).

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-90}
ATTEMPTS=${BENCH_ATTEMPTS:-3}
BUSY_PERCENT=${BENCH_BUSY_PERCENT:-5}
WHARF_PORT=${BENCH_WHARF_PORT:-18100}
KSERVE_PORT=${BENCH_KSERVE_PORT:-18101}
MLSERVER_PORT=${BENCH_MLSERVER_PORT:-18102}
WHARF_GRPC_PORT=${BENCH_WHARF_GRPC_PORT:-18110}
KSERVE_GRPC_PORT=${BENCH_KSERVE_GRPC_PORT:-18111}
MLSERVER_GRPC_PORT=${BENCH_MLSERVER_GRPC_PORT:-18112}
MLSERVER_METRICS_PORT=${BENCH_MLSERVER_METRICS_PORT:-18122}
MLSERVER_PARALLEL_WORKERS=${BENCH_MLSERVER_PARALLEL_WORKERS:-1}

# The versions compared. uvloop stays below 0.21: MLServer 1.7's inference worker fails with newer ones.
KSERVE_PINS=(kserve==0.21.0 scikit-learn==1.9.1 joblib==1.6.0)
MLSERVER_PINS=(mlserver==1.7.1 mlserver-sklearn==1.7.1 "uvloop==0.20.0" scikit-learn==1.9.1 joblib==1.6.0)

VENVS=bench/.venvs
OUT=bench/results
HOST=127.0.0.1

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

require() {  # require TOOL...: stop unless each tool is installed, the machine has 2 CPUs and Wharf's venv exists
    local tool
    for tool in "$@"; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
    (($(nproc) >= 2)) || die "needs 2 CPUs: the server on CPU 0, the load generator on CPU 1"
    [[ -x .venv/bin/wharf ]] || die "no .venv/bin/wharf: run 'make test' (or 'make run') first"
    mkdir -p "$OUT/work" "$OUT/raw" "$OUT/logs"
}

# --- venvs of the other servers --------------------------------------------------------------------------
ensure_venv() {  # ensure_venv NAME PIN...: (re)create bench/.venvs/NAME when its pins changed
    local dir=$VENVS/$1
    shift
    [[ $(cat "$dir/.pins" 2>/dev/null) == "$*" ]] && return 0
    echo "Installing $* into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --upgrade pip
    "$dir/bin/pip" install --quiet "$@"
    echo "$*" >"$dir/.pins"
}

version() { "$1" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$2"; }

machine() {  # one line: the date, the CPUs and their model
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p')."
}

report_header() {  # report_header TITLE LOAD_GENERATOR: a report's title, the machine, the load and the durations
    echo "# $1"
    echo
    machine
    echo "Load average before the run: $LOAD_BEFORE. $2, $DURATION per point after a $WARMUP warm-up;"
}

# --- one server at a time; the EXIT trap stops it whatever happens -------------------------------------
SERVER_PID=""
alive() { local state; state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $state != Z* ]]; }

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    local pid=$SERVER_PID
    SERVER_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 60); do alive "$pid" || break; sleep 0.5; done
    # The server was started as the leader of its own process group (setsid): take any straggler with it.
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
# A sink beside the load generator (bench/event_sink.py, bench/otlp_sink.py), one at a time, also stopped on EXIT.
SINK_PID=""
start_sink() {  # start_sink SCRIPT PORT LOG: run the sink SCRIPT on CPU 1, listening on PORT, its output in LOG
    setsid taskset -c 1 .venv/bin/python "$1" "$2" >"$3" 2>&1 &
    SINK_PID=$!
}

stop_sink() {  # a sink prints what it took as it stops
    [[ -n $SINK_PID ]] || return 0
    kill -TERM "$SINK_PID" 2>/dev/null || true
    wait "$SINK_PID" 2>/dev/null || true
    SINK_PID=""
}
trap 'stop_server; stop_sink' EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

start_server() {  # start_server NAME PORT MODEL COMMAND...: start pinned to CPU 0, wait until MODEL is ready on PORT
    local name=$1 port=$2 model=$3 log=$OUT/logs/$1.log why deadline=$((SECONDS + READY_TIMEOUT))
    shift 3
    port_free "$port" || die "port $port is already in use"
    setsid taskset -c 0 "$@" >"$log" 2>&1 &
    SERVER_PID=$!
    until curl -sf -o /dev/null "http://$HOST:$port/v2/models/$model/ready"; do
        why=""
        alive "$SERVER_PID" || why="exited before it was ready"
        ((SECONDS < deadline)) || why="was not ready after ${READY_TIMEOUT}s"
        [[ -z $why ]] || { tail -n 30 "$log" >&2; die "$name $why (log: $log)"; }
        sleep 0.5
    done
    [[ $(ps -o pgid= -p "$SERVER_PID" | tr -d ' ') == "$SERVER_PID" ]] || die "$name is not a process group leader"
}

# The three servers, each started the same way by every script. NAME names the log; MODEL is the model's name.
start_wharf() {  # start_wharf NAME MODEL_FILE MODEL [WHARF SERVE OPTION...]
    local name=$1 file=$2 model=$3
    shift 3
    port_free "$WHARF_GRPC_PORT" || die "port $WHARF_GRPC_PORT is already in use"
    start_server "$name" "$WHARF_PORT" "$model" .venv/bin/wharf serve "$file" --name "$model" \
        --host "$HOST" --http-port "$WHARF_PORT" --grpc-port "$WHARF_GRPC_PORT" --workers 1 "$@"
}

start_kserve() {  # start_kserve NAME MODEL_FILE MODEL [KSERVE_IRIS.PY OPTION...]
    local name=$1 file=$2 model=$3
    shift 3
    # KSERVE_LOGLEVEL=WARNING silences the per-request lines of KServe's REST timing middleware and gRPC interceptor.
    start_server "$name" "$KSERVE_PORT" "$model" env KSERVE_LOGLEVEL=WARNING "$VENVS/kserve/bin/python" \
        bench/kserve_iris.py "$file" --model_name "$model" --http_port "$KSERVE_PORT" "$@"
}

start_mlserver() {  # start_mlserver NAME DIR MODEL [MODEL SETTINGS JSON MEMBERS]: serves DIR/MODEL/model.joblib
    local name=$1 dir=$2 model=$3 extra=${4:+, $4}
    port_free "$MLSERVER_GRPC_PORT" || die "port $MLSERVER_GRPC_PORT is already in use"
    cat >"$dir/settings.json" <<EOF
{"host": "$HOST", "http_port": $MLSERVER_PORT, "grpc_port": $MLSERVER_GRPC_PORT,
 "metrics_port": $MLSERVER_METRICS_PORT, "parallel_workers": $MLSERVER_PARALLEL_WORKERS, "debug": false}
EOF
    cat >"$dir/$model/model-settings.json" <<EOF
{"name": "$model", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib"}$extra}
EOF
    start_server "$name" "$MLSERVER_PORT" "$model" "$VENVS/mlserver/bin/mlserver" start "$dir"
}

# --- measuring -------------------------------------------------------------------------------------------
cpu0_ticks() {  # prints: all CPU 0 ticks, its busy ticks, the ticks the server's processes used
    local server=0 pid
    for pid in $(ps -o pid= -s "$SERVER_PID"); do
        server=$((server + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    awk -v server="$server" '/^cpu0 /{print $2+$3+$4+$5+$6+$7+$8+$9, $2+$3+$4+$7+$8+$9, server}' /proc/stat
}

other_load() {  # other_load BEFORE AFTER (cpu0_ticks outputs): % of CPU 0 that went to other processes
    echo "$1 $2" | awk '{other = ($5 - $2) - ($6 - $3); print (other > 0 ? int(100 * other / ($4 - $1)) : 0)}'
}

measure_point() {  # measure_point LABEL RAW RUN [ARG...]: `RUN WARMUP ARG...`, then `RUN DURATION ARG...` into RAW;
    # again (up to ATTEMPTS runs) while other work took more than BUSY_PERCENT of CPU 0; the least disturbed run is kept
    local label=$1 raw=$2 run=$3 before after other best=""
    shift 3
    for _ in $(seq "$ATTEMPTS"); do
        "$run" "$WARMUP" "$@" >/dev/null
        before=$(cpu0_ticks)
        "$run" "$DURATION" "$@" >"$raw.attempt"
        after=$(cpu0_ticks)
        other=$(other_load "$before" "$after")
        echo "Other load on CPU 0: $other%" >>"$raw.attempt"
        echo "  $label: $(grep -hE '^Requests/sec|^finished in' "$raw.attempt"), other load on CPU 0 $other%"
        if [[ -z $best ]] || ((other < best)); then best=$other; mv "$raw.attempt" "$raw"; fi
        ((best > BUSY_PERCENT)) || break
    done
    rm -f "$raw.attempt"
}

run_wrk() {  # run_wrk DURATION CONNECTIONS URL [LUA SCRIPT]: wrk on CPU 1, one thread, with latency percentiles
    taskset -c 1 wrk -t1 -c"$2" -d"$1" --latency -s "${4:-bench/post.lua}" "$3"
}

wharf_batches() {  # prints the rows and the predict calls Wharf has counted so far (wharf_batch_size _sum, _count)
    curl -sf "http://$HOST:$WHARF_PORT/metrics" | awk '/^wharf_batch_size_sum/ {rows += $2}
        /^wharf_batch_size_count/ {calls += $2} END {print rows + 0, calls + 0}'
}

counting_batches() {  # counting_batches DURATION RUN [ARG...]: `RUN DURATION ARG...`, then Wharf's predict
    # calls and rows meanwhile
    local before after
    before=$(wharf_batches)
    "$2" "$1" "${@:3}"
    after=$(wharf_batches)
    echo "$before $after" | awk '{printf "Wharf predict calls: %d, rows: %d\n", $4 - $2, $3 - $1}'
}
