"""wharf.bandit is a leaf: importing it loads nothing of Wharf's beyond itself and what `import wharf` loads."""

import subprocess
import sys

from tests.processes import ROOT


def test_importing_bandit_loads_no_other_part_of_wharf() -> None:
    probe = (
        "import sys, wharf; before = set(sys.modules); import wharf.bandit; "
        "print(' '.join(sorted(m for m in set(sys.modules) - before"
        " if m.startswith('wharf.') and not m.startswith('wharf.bandit'))))"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [], f"importing wharf.bandit loads {run.stdout.strip()}"
