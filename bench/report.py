"""Turn the wrk outputs of bench/rest_iris.sh into a Markdown table.

Reads DIR/<server>-c<connections>.txt (wrk --latency output, plus the "Other load on CPU 0" line that
rest_iris.sh appends) and prints, per server and connection count, requests/s, p50 and p99 latency, the
error count (non-2xx responses plus socket errors) and how much of the server's CPU other work took,
then the ratio of Wharf's requests/s to each other server's at the same connection count.

Usage: python3 bench/report.py DIR [BUSY_PERCENT]   (other load above BUSY_PERCENT, default 5, is flagged)
"""

import re
import sys
from pathlib import Path

SERVERS = {"wharf": "Wharf", "kserve": "KServe", "mlserver": "MLServer"}
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def latency_ms(text: str, percentile: str) -> float:
    value, unit = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M).groups()
    return float(value) * UNIT_MS[unit]


def parse(text: str) -> dict:
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    other = re.search(r"Other load on CPU 0: (\d+)%", text)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50": latency_ms(text, "50"),
        "p99": latency_ms(text, "99"),
        "errors": (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0),
        "other": int(other.group(1)) if other else None,
    }


def main(directory: Path, busy_percent: int) -> None:
    results = {}  # (server, connections) -> parsed wrk output
    for path in directory.glob("*-c*.txt"):
        server, connections = re.fullmatch(r"(\w+)-c(\d+)\.txt", path.name).groups()
        results[server, int(connections)] = parse(path.read_text())
    if not results:
        sys.exit(f"report.py: no wrk outputs in {directory}")
    conns = sorted({c for _, c in results})
    servers = [s for s in SERVERS if any((s, c) in results for c in conns)]

    print("| server | connections | requests/s | p50 ms | p99 ms | errors | other load on CPU 0 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for server in servers:
        for c in conns:
            if (server, c) in results:
                r = results[server, c]
                other = "n/a" if r["other"] is None else f"{r['other']}%"
                row = [SERVERS[server], c, f"{r['rps']:.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}", r["errors"], other]
                print("| " + " | ".join(map(str, row)) + " |")

    others = [s for s in servers if s != "wharf"]
    if "wharf" in servers and others:
        print()
        print("| connections | " + " | ".join(f"Wharf/{SERVERS[s]} requests/s" for s in others) + " |")
        print("|---:|" + "---:|" * len(others))
        for c in conns:
            cells = []
            for s in others:
                if ("wharf", c) in results and (s, c) in results and results[s, c]["rps"] > 0:
                    cells.append(f"{results['wharf', c]['rps'] / results[s, c]['rps']:.2f}x")
                else:
                    cells.append("n/a")
            print(f"| {c} | " + " | ".join(cells) + " |")

    busiest = max((r["other"] or 0 for r in results.values()), default=0)
    if busiest > busy_percent:
        print()
        print(f"Other work took up to {busiest}% of CPU 0 during the measurements: these numbers are indicative only.")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 5)
