#!/usr/bin/env bash
# `make run`: Wharf as a platform on this machine. Starts `wharf up` (state, tokens and logs in WHARF_HOME, default
# .wharf; the daemon's own log in WHARF_HOME/logs/daemon.log), deploys the bundled iris service and a canary of
# it, prints what to try, and on Ctrl-C (or SIGTERM) stops the daemon, which stops its gateway and its replicas.
#
# Settings (environment): WHARF (the command, default .venv/bin/wharf), PYTHON, WHARF_HOME, GATEWAY_PORT (8000),
# GATEWAY_GRPC_PORT (8001), CONTROL_PORT (8002); a port 0 takes any free one.
set -euo pipefail
cd "$(dirname "$0")/../.."

WHARF="${WHARF:-.venv/bin/wharf}"
PYTHON="${PYTHON:-.venv/bin/python}"
export WHARF_HOME="${WHARF_HOME:-.wharf}"
mkdir -p "$WHARF_HOME/logs"
log="$WHARF_HOME/logs/daemon.log"
touch "$log"
start=$(($(wc -c <"$log") + 1))  # this run's lines begin here

"$WHARF" up --gateway-port "${GATEWAY_PORT:-8000}" --gateway-grpc-port "${GATEWAY_GRPC_PORT:-8001}" \
  --control-port "${CONTROL_PORT:-8002}" >>"$log" 2>&1 &
daemon=$!

stop() {
  trap - EXIT INT TERM
  echo
  echo "Stopping Wharf (its gateway and replicas with it)..."
  kill -TERM "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  echo "Wharf stopped."
}
trap stop EXIT
trap 'exit 130' INT TERM

until tail -c "+$start" "$log" | grep -q '"event":"wharf is up"'; do
  if ! kill -0 "$daemon" 2>/dev/null; then
    echo "wharf up did not start:" >&2
    tail -c "+$start" "$log" | tail -n 20 >&2
    exit 1
  fi
  sleep 0.2
done
read -r gateway grpc control monitor < <("$PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["gateway_url"], d["gateway_grpc"], d["control_url"], d.get("monitor_url") or "off")' "$WHARF_HOME/daemon.json")

echo "Wharf is up: gateway $gateway (gRPC $grpc), control API $control, model monitor $monitor, state in $WHARF_HOME."
"$WHARF" apply -f examples/isvc/local-iris.yaml --wait --timeout 180s
"$WHARF" apply -f examples/isvc/local-iris-canary.yaml --wait --timeout 180s

console=$("$WHARF" console)
host="iris.default.example.com"
cat <<TRY

The iris service answers at $host through the gateway: 80% of requests on its first revision, 20% on its canary.
  curl -H 'Host: $host' $gateway/v1/models/iris:predict -d '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
  curl -H 'Host: $host' -H 'content-type: application/json' $gateway/v2/models/iris/infer \\
    -d '{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}'
  gRPC (Open Inference Protocol) at $grpc, with the metadata x-wharf-service: default/iris

Operate it from another shell in this directory (WHARF_HOME=$WHARF_HOME):
  $WHARF get isvc -o wide            $WHARF describe isvc iris      (revisions, traffic, events)
  $WHARF rollout promote iris        $WHARF rollout rollback iris
  $WHARF logs isvc/iris -f           $WHARF get isvc -w
  $WHARF top                         $WHARF cost --since 10m     (usage, and what is over- or under-scaled)
  kubectl --kubeconfig $WHARF_HOME/kubeconfig get isvc           (kubectl and KServe's SDK work with it too)
The web console, signed in: $console
The control API and its documentation: $control/docs (the admin token is in $WHARF_HOME/daemon.json).

Ctrl-C stops Wharf.
TRY

wait "$daemon"
