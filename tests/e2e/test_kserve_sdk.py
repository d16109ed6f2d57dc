"""KServe's own Python SDK against a real `wharf up`: the checks in kserve_sdk_checks.py, run by a pytest of their
own, since kserve cannot be imported in this process (its generated protobuf modules and Wharf's both register
`inference.*` in protobuf's default pool)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

CHECKS = Path(__file__).with_name("kserve_sdk_checks.py")
CHECKS_TIMEOUT_S = 240  # a daemon, kserve's import, and the checks (about 40 s on a quiet machine)


@pytest.mark.slow
@pytest.mark.timeout(CHECKS_TIMEOUT_S + 30)
def test_kserves_sdk_creates_gets_waits_patches_replaces_and_deletes_through_the_kubeconfig() -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CHECKS)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=CHECKS_TIMEOUT_S, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
