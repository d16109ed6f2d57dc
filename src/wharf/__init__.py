"""Wharf: serve trained models in production."""

from typing import Any

__version__ = "0.1.0"

from wharf.model.base import Model  # noqa: E402
from wharf.model.context import request_headers  # noqa: E402
from wharf.protocol.explanation import Explanation  # noqa: E402
from wharf.protocol.v2 import InferRequest, InferResponse, Tensor, TensorSpec  # noqa: E402

__all__ = [
    "AsyncWharf",
    "Explanation",
    "Model",
    "ModelServer",
    "Transformer",
    "InferRequest",
    "InferResponse",
    "Tensor",
    "TensorSpec",
    "Wharf",
    "request_headers",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The server (and its web stack), the transformer (and its clients) and the SDK (and the spec models) are
    # imported only by those who use them.
    if name == "ModelServer":
        from wharf.server.app import ModelServer

        return ModelServer
    if name == "Transformer":
        from wharf.transformer import Transformer

        return Transformer
    if name in ("Wharf", "AsyncWharf"):
        from wharf import sdk

        return getattr(sdk, name)
    raise AttributeError(name)
