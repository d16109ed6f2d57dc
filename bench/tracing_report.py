"""bench/tracing.sh's report: its wrk outputs as a Markdown table, and each case's requests/s over tracing off.

Usage: python3 bench/tracing_report.py DIR [BUSY_PERCENT]   (DIR holds <case>-c<connections>.txt)
"""

import sys
from pathlib import Path

from report import busy_note, fmt, load, ratio, table

CASES = {
    "off": "tracing off",
    "always_on": "on, always_on",
    "ratio": "on, parentbased_traceidratio 0.1",
}


def main(directory: Path, busy_percent: int) -> None:
    results = load(directory)
    table(results, {case: name for case, name in CASES.items() if any(case == s for s, _ in results)}, "connections")
    print()
    print("| connections | " + " | ".join(f"{CASES[c]} / off requests/s" for c in CASES if c != "off") + " |")
    print("|---:|" + "---:|" * (len(CASES) - 1))
    for c in sorted({c for _, c in results}):
        print(f"| {c} | " + " | ".join(fmt(ratio(results, case, "off", c)) for case in CASES if case != "off") + " |")
    busy_note(results, busy_percent)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 5)
