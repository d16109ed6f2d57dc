"""What the README tells a user to run, run as written: the `Doubler` model answers V1 and V2 over REST, and the
SDK's gRPC example names its target."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import httpx
import numpy as np

from tests.processes import ROOT, start
from wharf import InferRequest, Tensor
from wharf.client import SyncInferenceClient

README = (ROOT / "README.md").read_text()


def _python_block(holding: str) -> str:
    """The README's ```python block that holds `holding`."""
    return next(block for block in re.findall(r"```python\n(.*?)```", README, re.S) if holding in block)


def test_the_doubler_of_the_readme_answers_v1_and_v2(tmp_path: Path) -> None:
    script = tmp_path / "doubler.py"
    script.write_text(_python_block("class Doubler"))
    env = {**os.environ, "WHARF_HTTP_PORT": "0", "WHARF_GRPC_PORT": "0", "PYTHONPATH": str(ROOT / "src")}
    proc, serving, _ = start([sys.executable, str(script)], env, "serving", 60.0, cwd=tmp_path)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{serving['http_port']}", timeout=10) as client:
            v1 = client.post("/v1/models/doubler:predict", json={"instances": [1, 2]})
            assert v1.status_code == 200 and v1.json() == {"predictions": [2, 4]}, v1.text
            tensor = {"name": "x", "shape": [2], "datatype": "FP64", "data": [1.5, 2]}
            v2 = client.post("/v2/models/doubler/infer", json={"inputs": [tensor]})
            assert v2.status_code == 200 and v2.json()["outputs"][0]["data"] == [3.0, 4.0], v2.text
            wrong = client.post("/v2/models/doubler/infer", json={"inputs": [{**tensor, "name": "z"}]})
            assert wrong.status_code == 400 and "it takes ['x']" in wrong.json()["error"]
        assert 'SyncInferenceClient(grpc_target="127.0.0.1:8081", protocol="grpc-v2")' in _python_block("grpc_target")
        target = f"127.0.0.1:{serving['grpc_port']}"
        with SyncInferenceClient(grpc_target=target, protocol="grpc-v2") as grpc_client:
            answer = grpc_client.infer("doubler", InferRequest(inputs=[Tensor("x", np.array([1.0, 2.0]))]))
        assert answer.outputs[0].data.tolist() == [2.0, 4.0]
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_readme_links_nothing_outside_the_repository() -> None:
    assert re.search(r"(\]\(|`)\.\./", README) is None  # a link or a named path that leaves the repository
