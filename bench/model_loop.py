"""The in-process floor of serving one scikit-learn model: a loop that decodes the same 1-row V2 JSON request a
client sends (orjson into a numpy array), predicts and encodes the V2 answer, with no server around it.
bench/floors.py measures `wharf serve` of the same model against it.

    python bench/model_loop.py MODEL_FILE SECONDS

Prints one line of JSON: {"iterations", "cpu_us" (CPU microseconds per iteration), "per_s" (iterations per
second of wall time)}.
"""

from __future__ import annotations

import sys
import time

import joblib
import numpy as np
import orjson

BODY = b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64}


def answer(model, body: bytes) -> bytes:  # type: ignore[no-untyped-def]
    request = orjson.loads(body)
    tensor = request["inputs"][0]
    rows = np.asarray(tensor["data"], dtype=DTYPES[tensor["datatype"]]).reshape(tensor["shape"])
    predicted = model.predict(rows)
    output = {"name": "predict", "shape": list(predicted.shape), "datatype": "INT64", "data": predicted.tolist()}
    return orjson.dumps({"model_name": "m", "outputs": [output]})


def main(path: str, seconds: float) -> None:
    model = joblib.load(path)
    for _ in range(200):  # warm-up
        answer(model, BODY)
    iterations = 0
    wall, cpu = time.perf_counter(), time.process_time()
    end = wall + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            answer(model, BODY)
        iterations += 100
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        orjson.dumps({"iterations": iterations, "cpu_us": 1e6 * cpu / iterations, "per_s": iterations / wall}).decode()
    )


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
