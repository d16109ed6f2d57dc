"""Regenerate the Python modules of `grpc_predict_v2.proto`: `python -m wharf.protocol.grpc.generate`.

Needs grpcio-tools (the `test` extra). protoc's output is then adjusted twice:

- the service module imports the messages module relative to this package, not as a top-level module;
- the messages are registered in a descriptor pool of their own instead of protobuf's default pool, because
  tritonclient and KServe register other files declaring the same `inference.*` names in the default pool, and a
  process may well import one of them beside Wharf (tests do, and so may a model that calls another server).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
PROTO = "grpc_predict_v2.proto"
_FIXES = {
    "grpc_predict_v2_pb2.py": [
        (
            "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(",
            "POOL = _descriptor_pool.DescriptorPool()\nDESCRIPTOR = POOL.AddSerializedFile(",
        )
    ],
    "grpc_predict_v2_pb2_grpc.py": [
        ("import grpc_predict_v2_pb2 as", "from . import grpc_predict_v2_pb2 as"),
    ],
}


def main() -> int:
    from grpc_tools import protoc

    out = str(HERE)
    code = protoc.main(
        ["protoc", f"-I{out}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", PROTO]
    )
    if code != 0:
        return code
    for name, fixes in _FIXES.items():
        path = HERE / name
        text = path.read_text()
        for old, new in fixes:
            if text.count(old) != 1:
                print(f"{name}: expected exactly one {old!r}; protoc's output has changed", file=sys.stderr)
                return 1
            text = text.replace(old, new)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
