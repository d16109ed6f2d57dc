"""Turn bench/grpc_iris.sh's raw h2load outputs into a Markdown table, the ratios and the issue's target.

Usage: python3 bench/grpc_report.py RAW BUSY_PERCENT   (RAW/<server>-c<streams>.txt, as bench/report.py reads them)
Target: Wharf at least 4x KServe's ModelInfer requests/s at 64 concurrent streams.
"""

import sys
from pathlib import Path

from report import busy_note, fmt, load, ratio, table

NAMES = {"wharf": "Wharf", "kserve": "KServe", "mlserver": "MLServer", "wharf-batch": "Wharf, batching (64)"}


def main(raw: Path, busy_percent: int) -> None:
    results = load(raw)
    for (server, _), r in results.items():
        if server != "wharf-batch":
            r["rows_per_call"] = None
    names = {s: n for s, n in NAMES.items() if any(s == k for k, _ in results)}
    table(results, names, unit="streams", batch_column="wharf-batch" in names)
    streams = sorted({s for _, s in results})
    print()
    print("| streams | Wharf/KServe | Wharf/MLServer | Wharf batching/KServe | Wharf batching/MLServer |")
    print("|---:|---:|---:|---:|---:|")
    for s in streams:
        cells = [ratio(results, a, b, s) for a in ("wharf", "wharf-batch") for b in ("kserve", "mlserver")]
        print(f"| {s} | " + " | ".join(map(fmt, cells)) + " |")
    print()
    for server in ("wharf", "wharf-batch"):
        value = ratio(results, server, "kserve", 64)
        if value is not None:
            verdict = "met" if value >= 4 else "missed"
            print(f"Target (at least 4x KServe's requests/s at 64 streams), {NAMES[server]}: {value:.2f}x, {verdict}.")
    busy_note(results, busy_percent)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
