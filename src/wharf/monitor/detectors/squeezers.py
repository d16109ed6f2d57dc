"""Feature squeezers (Xu, Evans and Qi, "Feature Squeezing", NDSS 2018): functions that take away detail an
honest input does not need and an adversarial perturbation relies on. Each maps rows [rows, ...] to rows of the
same shape; none changes its input.

- `Quantize(levels, low, high)`: bit-depth reduction, values clipped to [low, high] and rounded to `levels` evenly
  spaced values (bit depth b: 2**b levels), for images and other bounded values;
- `MedianSmoothing(size, shape)`: each row seen as an image of `shape` (height, width[, channels]) and each pixel
  replaced by the median of the size x size window around it (edges reflected), for images;
- `Round(step)`: values rounded to a multiple of `step`, for tabular rows.

`parse_squeezers` reads them from a setting: a comma-separated list of `levels:N`, `bits:B`, `median:K` and
`round:STEP`, e.g. "levels:3,levels:5" or "bits:2,median:2".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.ndimage import median_filter

from wharf.errors import ConfigurationError


class Squeezer(Protocol):
    @property
    def name(self) -> str: ...

    def __call__(self, rows: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Quantize:
    levels: int
    low: float
    high: float

    def __post_init__(self) -> None:
        if self.levels < 2 or not self.high > self.low:
            raise ConfigurationError(f"quantizing needs at least 2 levels and high > low, got {self}")

    @property
    def name(self) -> str:
        return f"levels:{self.levels}"

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        step = (self.high - self.low) / (self.levels - 1)
        return np.rint((np.clip(rows, self.low, self.high) - self.low) / step) * step + self.low


@dataclass(frozen=True, slots=True)
class MedianSmoothing:
    size: int
    shape: tuple[int, ...]  # height, width[, channels] of one row

    def __post_init__(self) -> None:
        if self.size < 2 or len(self.shape) not in (2, 3):
            raise ConfigurationError(
                f"median smoothing needs a window of at least 2 and an image shape (height, width[, channels]), "
                f"got {self}"
            )

    @property
    def name(self) -> str:
        return f"median:{self.size}"

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        images = rows.reshape(len(rows), *self.shape)
        window = (1, self.size, self.size, *((1,) if len(self.shape) == 3 else ()))
        return median_filter(images, size=window, mode="reflect").reshape(rows.shape)


@dataclass(frozen=True, slots=True)
class Round:
    step: float

    def __post_init__(self) -> None:
        if not self.step > 0:
            raise ConfigurationError(f"rounding needs a step > 0, got {self.step}")

    @property
    def name(self) -> str:
        return f"round:{self.step:g}"

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return np.rint(rows / self.step) * self.step


def parse_squeezers(
    spec: str, low: float | None = None, high: float | None = None, image_shape: tuple[int, ...] | None = None
) -> tuple[Squeezer, ...]:
    """The squeezers `spec` names (see the module's docstring); `levels` and `bits` quantize between `low` and
    `high` (e.g. the reference rows' smallest and largest values), `median` smooths images of `image_shape`.
    ConfigurationError names an item that is not understood or lacks what it needs."""
    squeezers: list[Squeezer] = []
    for item in (part.strip() for part in spec.split(",")):
        kind, _, value = item.partition(":")
        try:
            if kind in ("levels", "bits"):
                if low is None or high is None:
                    raise ConfigurationError(f"squeezer {item!r} quantizes between bounds; none were given")
                squeezers.append(Quantize(int(value) if kind == "levels" else 2 ** int(value), low, high))
            elif kind == "median":
                if image_shape is None:
                    raise ConfigurationError(f"squeezer {item!r} smooths images; no image shape was given")
                squeezers.append(MedianSmoothing(int(value), image_shape))
            elif kind == "round":
                squeezers.append(Round(float(value)))
            else:
                raise ConfigurationError(
                    f"squeezer {item!r} is not one of levels:N, bits:B, median:K, round:STEP (in {spec!r})"
                )
        except ValueError:
            raise ConfigurationError(f"squeezer {item!r}: {value!r} is not a number (in {spec!r})") from None
    return tuple(squeezers)
