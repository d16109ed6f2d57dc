"""The in-process floor of serving one scikit-learn model: a loop that decodes the same 1-row V2 JSON request a
client sends (orjson into a numpy array), predicts and encodes the V2 answer, with no server around it.
bench/floors.py measures `wharf serve` of the same model against it. With `--runtime` the loop predicts with Wharf's
scikit-learn runtime (its direct computation where it has one) in place of `model.predict`: the difference between
the two is what that computation saves per request.

    python bench/model_loop.py MODEL_FILE SECONDS [--runtime]

Prints one line of JSON: {"iterations", "cpu_us" (CPU microseconds per iteration), "per_s" (iterations per
second of wall time)}.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import orjson

BODY = b'{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64}


def answer(predict: Callable[[np.ndarray], np.ndarray], body: bytes) -> bytes:
    request = orjson.loads(body)
    tensor = request["inputs"][0]
    rows = np.asarray(tensor["data"], dtype=DTYPES[tensor["datatype"]]).reshape(tensor["shape"])
    predicted = predict(rows)
    output = {"name": "predict", "shape": list(predicted.shape), "datatype": "INT64", "data": predicted.tolist()}
    return orjson.dumps({"model_name": "m", "outputs": [output]})


def main(path: str, seconds: float, runtime: bool) -> None:
    if runtime:
        from wharf.model.runtimes.sklearn import SKLearnModel

        served = SKLearnModel("m", Path(path))
        served.load()
        predict = served.methods["predict"].run
    else:
        predict = joblib.load(path).predict
    for _ in range(200):  # warm-up
        answer(predict, BODY)
    iterations = 0
    wall, cpu = time.perf_counter(), time.process_time()
    end = wall + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            answer(predict, BODY)
        iterations += 100
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        orjson.dumps({"iterations": iterations, "cpu_us": 1e6 * cpu / iterations, "per_s": iterations / wall}).decode()
    )


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3:] == ["--runtime"])
