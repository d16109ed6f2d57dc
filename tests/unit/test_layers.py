"""The dependency directions DESIGN.md draws, checked in a fresh interpreter: importing a layer loads none of the
layers above it, beyond what `import wharf` (the public API: `Model` and the errors) loads for every layer."""

import subprocess
import sys

import pytest

from tests.processes import ROOT

# A layer, and the packages its import must not load.
FORBIDDEN = {
    "wharf.client": ("wharf.server", "wharf.control", "wharf.gateway", "wharf.model", "wharf.cli", "wharf.sdk"),
    "wharf.protocol": ("wharf.model", "wharf.server", "wharf.control", "wharf.gateway", "wharf.client"),
    "wharf.autoscaler": ("wharf.control", "wharf.gateway", "wharf.server", "wharf.model"),
    "wharf.gateway": ("wharf.control", "wharf.cli", "wharf.sdk"),
    "wharf.telemetry": ("wharf.control", "wharf.gateway", "wharf.server", "wharf.model", "wharf.client"),
    "wharf.export.kserve": ("wharf.server", "wharf.gateway", "wharf.cli", "wharf.sdk"),  # pure: specs to dicts
    "wharf.eventing.__main__": ("wharf.server", "wharf.gateway", "wharf.control", "wharf.cli", "wharf.sdk"),
    "wharf.bandit.policies": ("wharf.server", "wharf.gateway", "wharf.control", "wharf.graph", "wharf.client"),
    "wharf.model.repository": ("wharf.server", "wharf.gateway", "wharf.control", "wharf.cli"),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_loads_nothing_above_it(layer: str) -> None:
    probe = (
        "import sys, wharf; before = set(sys.modules); "
        f"import {layer}; "
        f"print(' '.join(sorted(m for m in set(sys.modules) - before if m.split('.')[:2] in {_packages(layer)!r})))"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [], f"importing {layer} loads {run.stdout.strip()}"


def _packages(layer: str) -> list[list[str]]:
    """The forbidden packages of `layer` as the first two parts of a module's dotted name."""
    return [name.split(".")[:2] for name in FORBIDDEN[layer]]
