"""numpy's global random state, seeded for a block of code: shap's KernelExplainer and ART's attacks draw from it,
and take no generator of their own.

One seeded block runs at a time in the process (others wait), and the state is put back after it, so a block
draws the same numbers whatever ran before it and leaves other code's draws as they were.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

_ONE_AT_A_TIME = threading.Lock()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with numpy's global random state seeded with `seed`."""
    with _ONE_AT_A_TIME:
        saved = np.random.get_state()
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(saved)
