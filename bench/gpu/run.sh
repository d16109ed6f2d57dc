#!/usr/bin/env bash
# What the GPU machine runs (see README.md): installs the carried wheels (.whl/, made here by wheels.sh), checks
# that Wharf imports, then runs serving.py on CUDA. Results in OUT_DIR (default $OUT, else /tmp/gpu_serving):
# gpu_serving.md, gpu_serving.json, server.log and run.log.
#
#   bash bench/gpu/run.sh [OUT_DIR] [serving.py options...]     e.g. bash bench/gpu/run.sh $OUT --model bert
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT_DIR=${1:-${OUT:-/tmp/gpu_serving}}
shift || true
mkdir -p "$OUT_DIR"

if ! compgen -G ".whl/*.whl" > /dev/null; then
    echo "run.sh: no wheels in .whl/: run bench/gpu/wheels.sh where PyPI is reachable, and carry .whl" >&2
    exit 2
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import wharf.server.app, wharf.client.inference, wharf.model.runtimes.pytorch, wharf.model.runtimes.onnx"

python3 bench/gpu/serving.py --model resnet50,bert --device cuda --out "$OUT_DIR" "$@" 2>&1 | tee "$OUT_DIR/run.log"
