"""Wharf: serve trained models in production."""

from typing import Any

__version__ = "0.1.0"

from wharf.model.base import Model  # noqa: E402
from wharf.model.context import request_headers  # noqa: E402
from wharf.protocol.explanation import Explanation  # noqa: E402
from wharf.protocol.v2 import InferRequest, InferResponse, Tensor, TensorSpec  # noqa: E402

__all__ = [
    "Explanation",
    "Model",
    "ModelServer",
    "Transformer",
    "InferRequest",
    "InferResponse",
    "Tensor",
    "TensorSpec",
    "request_headers",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The server (and its web stack) and the transformer (and its clients) are imported only by those who use them.
    if name == "ModelServer":
        from wharf.server.app import ModelServer

        return ModelServer
    if name == "Transformer":
        from wharf.transformer import Transformer

        return Transformer
    raise AttributeError(name)
