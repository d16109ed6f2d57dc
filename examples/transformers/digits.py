"""An image transformer: pictures of handwritten digits in, the digit out, with an 8x8 pixel classifier behind it.

The predictor is a scikit-learn model trained on scikit-learn's digits (8x8 images, ink 16, paper 0). The
transformer takes ordinary images (PNG or JPEG, any size, dark ink on light paper; raw bytes, or base64 text as
JSON carries them), and makes each one the 64 grey levels the predictor knows.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from wharf import InferRequest, Transformer
from wharf.errors import InvalidInput

_MAGIC = (b"\x89PNG", b"\xff\xd8\xff")  # PNG, JPEG


def digit_features(image: bytes) -> np.ndarray:
    """An image file's bytes -> 64 grey levels, 0 (paper) to 16 (ink), row by row."""
    if not image.startswith(_MAGIC):
        try:
            image = base64.b64decode(image, validate=True)
        except binascii.Error:
            raise InvalidInput("each image must be a PNG or JPEG file, raw or base64-encoded") from None
    try:
        with Image.open(io.BytesIO(image)) as picture:
            grey = picture.convert("L").resize((8, 8), Image.Resampling.BOX)
    except (UnidentifiedImageError, OSError) as e:
        raise InvalidInput(f"not a readable image: {e}") from None
    return (255.0 - np.asarray(grey, dtype=np.float64)).reshape(64) * 16 / 255


class DigitsTransformer(Transformer):
    """Images (V1 `instances` of base64 strings, or a V2 BYTES input) -> 8x8 features -> predictor -> digits."""

    def preprocess(self, request: InferRequest) -> np.ndarray:
        images = request.inputs[0].data.reshape(-1)
        if images.dtype != object:
            raise InvalidInput("send the images as bytes (base64 strings in JSON)")
        return np.stack([digit_features(i if isinstance(i, bytes) else str(i).encode()) for i in images])
