#!/usr/bin/env bash
# Downloads into .whl/ the wheels that the GPU machine lacks for `bench/gpu/run.sh` (run HERE, where PyPI is
# reachable; the GPU machine reaches nothing). Wharf's direct dependencies come at the versions pyproject.toml
# pins; the transitive ones at the versions the project venv (.venv) has. All for CPython 3.12 on x86-64 Linux.
#
# Carried because the GPU image lacks them: orjson, uvicorn, httptools, pydantic (+ pydantic-core, annotated-types,
# typing-inspection), pydantic-settings (+ python-dotenv). Carried although the image has them, because Wharf's
# generated gRPC stubs and pydantic need versions at least this new: grpcio, protobuf, typing-extensions.
# Everything else Wharf's server, client and the PyTorch/ONNX runtimes import is in the image (see README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

PINNED=(orjson uvicorn httptools pydantic pydantic-settings grpcio protobuf)
FROM_VENV=(pydantic-core annotated-types typing-inspection python-dotenv typing-extensions)

pin() {  # the version pyproject.toml pins for $1
    grep -oE "\"$1==[^\"]+\"" pyproject.toml | head -1 | tr -d '"' | cut -d= -f3
}

installed() {  # the version .venv has of $1
    .venv/bin/python -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"
}

specs=()
for name in "${PINNED[@]}"; do
    version=$(pin "$name")
    [[ -n $version ]] || { echo "wheels.sh: no pin for $name in pyproject.toml" >&2; exit 1; }
    specs+=("$name==$version")
done
for name in "${FROM_VENV[@]}"; do
    specs+=("$name==$(installed "$name")")
done

rm -rf .whl && mkdir .whl  # one version of each package: two would stop the install on the GPU machine
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude

for spec in "${specs[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "$spec"
done
ls -l .whl
du -sh .whl
