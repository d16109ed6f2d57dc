"""The least an iris V2 server can do, on the same stack as bench/rest_floor.py: read the body, parse it with
orjson, take the one input's `data` as a NumPy array of its datatype and shape, predict with the logistic model's
own arithmetic (`x @ coef.T + intercept`, argmax, the class) and encode the V2 answer with orjson. No routing, no
checks beyond what a malformed request would break, no metrics, no batching, no worker thread: what separates it
from the floor is the work every V2 server must do for this request. bench/floors.py (`--points rest`) measures it
beside the floor and `wharf serve`, to show how much of the floor's budget that work alone takes.

    python bench/rest_minimal_v2.py PORT MODEL_FILE
"""

from __future__ import annotations

import sys
from typing import Any

import joblib
import numpy as np
import orjson
import uvloop

from rest_floor import body_of, serve  # type: ignore[import-not-found]  # bench/ is on sys.path when run as a script

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64}
model = joblib.load(sys.argv[2])
COEF, INTERCEPT, CLASSES = model.coef_.T, model.intercept_, model.classes_


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = await body_of(receive)
    if not body:  # a readiness probe
        await send({"type": "http.response.start", "status": 200, "headers": []})
        return await send({"type": "http.response.body", "body": b""})
    tensor = orjson.loads(body)["inputs"][0]
    rows = np.asarray(tensor["data"], dtype=DTYPES[tensor["datatype"]]).reshape(tensor["shape"])
    predicted = CLASSES.take((rows @ COEF + INTERCEPT).argmax(axis=1))
    output = {"name": "predict", "shape": [len(predicted)], "datatype": "INT64", "data": predicted}
    reply = orjson.dumps({"model_name": "iris", "outputs": [output]}, option=orjson.OPT_SERIALIZE_NUMPY)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(reply))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": reply})


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), app))
