"""The KServe side of the benchmarks: the smallest KServe 0.21 server for a scikit-learn classifier.

A `kserve.Model` subclass loads the joblib file and answers Open Inference Protocol (V2) requests:
the first input tensor goes to `predict`, the class labels come back as one INT64 output. bench/rest_iris.sh and
bench/batching.sh serve the iris model and the random forest with it.
The REST server runs bound to 127.0.0.1, one worker. The gRPC server is off unless `--enable_grpc true` is given
(bench/grpc_iris.sh does); it is then bound to 127.0.0.1 too (KServe hard-codes [::]). Per-request log lines are
off (the latency log by flag, uvicorn's access log here, and the trace lines of the REST timing middleware and
the gRPC logging interceptor through KSERVE_LOGLEVEL=WARNING, which bench/lib.sh sets), as they are for the other
two servers; so is the FastAPIDeprecationWarning that FastAPI 0.165 prints on every response KServe 0.21 sends
(ORJSONResponse).

Usage: python bench/kserve_iris.py MODEL.joblib --http_port PORT [--model_name NAME]
                                                [--enable_grpc true --grpc_port PORT]
"""

import argparse
import warnings

import grpc.aio
import joblib
import kserve
import kserve.protocol.grpc.server
import numpy as np
import uvicorn
from fastapi.exceptions import FastAPIDeprecationWarning
from kserve import InferOutput, InferRequest, InferResponse
from kserve.utils.utils import generate_uuid


class IrisModel(kserve.Model):
    def __init__(self, name: str, path: str):
        super().__init__(name)
        self.path = path
        self.estimator = None

    def load(self) -> bool:
        self.estimator = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        features = payload.inputs[0].as_numpy()
        labels = np.asarray(self.estimator.predict(features), dtype=np.int64)
        output = InferOutput(name="predict", shape=list(labels.shape), datatype="INT64", data=labels.tolist())
        response_id = payload.id or generate_uuid()  # the V2 response needs an id even when the request has none
        return InferResponse(response_id=response_id, model_name=self.name, infer_outputs=[output])


class BenchConfig(uvicorn.Config):
    """KServe's REST server hard-codes host 0.0.0.0 and keeps uvicorn's access log on; neither is wanted here."""

    def __init__(self, app, **kwargs):
        super().__init__(app, **{**kwargs, "host": "127.0.0.1", "access_log": False})


class LocalGrpc:
    """Stands in for `grpc.aio` in KServe's gRPC server module, so that its server listens on 127.0.0.1 only."""

    @staticmethod
    def server(*args, **kwargs):
        server = grpc.aio.server(*args, **kwargs)
        add_insecure_port = server.add_insecure_port
        server.add_insecure_port = lambda address: add_insecure_port(address.replace("[::]", "127.0.0.1"))
        return server


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("model_path")
    parser.set_defaults(enable_grpc=False)
    args = parser.parse_args()

    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
    uvicorn.Config = BenchConfig  # looked up by kserve.protocol.rest.server when the server starts
    kserve.protocol.grpc.server.aio = LocalGrpc  # looked up by GRPCServer.start

    model = IrisModel(args.model_name, args.model_path)
    model.load()
    kserve.ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=1,
        enable_grpc=args.enable_grpc,
        enable_latency_logging=False,
    ).start([model])


if __name__ == "__main__":
    main()
