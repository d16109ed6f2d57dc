"""A text transformer: movie reviews in, their sentiment out, with a bag-of-words classifier as the predictor.

The transformer turns each review into a hashed bag of words (what the predictor was trained on, see train.py)
and turns the predictor's class numbers back into labels; the predictor is a plain scikit-learn model.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from wharf import InferRequest, InferResponse, Transformer
from wharf.errors import InvalidInput

N_FEATURES = 256
LABELS = ("negative", "positive")
_WORD = re.compile(r"[a-z']+")


def featurize(texts: Sequence[str]) -> np.ndarray:
    """One row per text: word counts hashed into N_FEATURES buckets, scaled to unit length."""
    rows = np.zeros((len(texts), N_FEATURES))
    for row, text in zip(rows, texts, strict=True):
        for word in _WORD.findall(text.lower()):
            row[zlib.crc32(word.encode()) % N_FEATURES] += 1
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1.0)


class ReviewTransformer(Transformer):
    """Reviews (strings, over V1 `instances` or a V2 BYTES input) -> features -> predictor -> `sentiment` labels."""

    def preprocess(self, request: InferRequest) -> np.ndarray:
        texts = request.inputs[0].data.reshape(-1)
        if texts.dtype != object:
            raise InvalidInput("send the reviews as strings")
        return featurize([t.decode() if isinstance(t, bytes) else str(t) for t in texts])

    def postprocess(self, response: InferResponse) -> dict[str, np.ndarray]:
        classes = response.outputs[0].data.astype(int)
        return {"sentiment": np.array([LABELS[c].encode() for c in classes], dtype=object)}
