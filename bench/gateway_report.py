"""Turn bench/gateway.sh's raw wrk outputs into a Markdown table: direct vs through the gateway, and with payload
logging on.

Usage: python3 bench/gateway_report.py RAW BUSY_PERCENT   (RAW/{direct,gateway,logged}-c<N>.txt)
Targets: at most 0.5 ms added to p50 at 1 connection; at least 70% of the direct requests/s at 64 connections.
"""

import sys
from pathlib import Path

from report import busy_note, load, ratio, table

NAMES = {
    "direct": "direct to the replica",
    "gateway": "through the gateway",
    "logged": "through the gateway, payload logging on",
}


def main(raw: Path, busy_percent: int) -> None:
    results = load(raw)
    table(results, NAMES)
    print()
    print("| connections | added p50 ms | added p99 ms | gateway/direct requests/s | logged/gateway requests/s |")
    print("|---:|---:|---:|---:|---:|")
    conns = sorted({c for _, c in results if ("direct", c) in results and ("gateway", c) in results})
    for c in conns:
        direct, routed = results["direct", c], results["gateway", c]
        share = ratio(results, "gateway", "direct", c)
        logged = ratio(results, "logged", "gateway", c)
        logged_text = f"{logged:.0%}" if logged is not None else ""
        added = f"{routed['p50'] - direct['p50']:.2f} | {routed['p99'] - direct['p99']:.2f}"
        print(f"| {c} | {added} | {share:.0%} | {logged_text} |")
    print()
    if 1 in conns:
        added = results["gateway", 1]["p50"] - results["direct", 1]["p50"]
        verdict = "met" if added <= 0.5 else "missed"
        print(f"Target, p50 added at 1 connection at most 0.5 ms: {added:.2f} ms, {verdict}.")
    if 64 in conns:
        share = ratio(results, "gateway", "direct", 64) or 0.0
        verdict = "met" if share >= 0.7 else "missed"
        print(f"Target, at least 70% of the direct requests/s at 64 connections: {share:.0%}, {verdict}.")
    busy_note(results, busy_percent)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
