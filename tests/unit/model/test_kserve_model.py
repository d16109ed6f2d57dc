"""The adapter serving `kserve.Model` subclasses (`wharf.model.runtimes.kserve_model`): the checks in
kserve_model_checks.py, run by a pytest of their own, since kserve cannot be imported in this process (its generated
protobuf modules and tritonclient's both register `inference.*` in protobuf's default pool)."""

import subprocess
import sys
from pathlib import Path

from tests.processes import ROOT

CHECKS = Path(__file__).with_name("kserve_model_checks.py")
CHECKS_TIMEOUT_S = 90  # importing kserve takes a few seconds; the checks themselves well under one


def test_the_kserve_adapter_checks_pass_in_a_process_of_their_own() -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CHECKS)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=CHECKS_TIMEOUT_S, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
