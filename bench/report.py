"""Parse the load generators' outputs of the benchmarks, and turn bench/rest_iris.sh's into a Markdown table.

A raw file is DIR/<server>-c<connections>.txt: a wrk --latency output (REST) or an h2load output (gRPC, with the
latency percentiles and response frame size that bench/grpc_iris.sh appends), plus the "Other load on CPU 0" line
that bench/lib.sh's measure_point appends, and for Wharf the predict calls it counted (bench/lib.sh's
counting_batches). bench/batching_report.py and bench/grpc_report.py import `load`, `table` and `ratio` from here.

Run on its own, it prints, per server and connection count, requests/s, p50 and p99 latency, the error count
(non-2xx responses plus socket errors) and how much of the server's CPU other work took, then the ratio of
Wharf's requests/s to each other server's at the same connection count.

Usage: python3 bench/report.py DIR [BUSY_PERCENT]   (other load above BUSY_PERCENT, default 5, is flagged)
"""

import re
import sys
from pathlib import Path

SERVERS = {"wharf": "Wharf", "kserve": "KServe", "mlserver": "MLServer"}
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def number(pattern: str, text: str, default=None):
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else default


def parse_wrk(text: str) -> dict:
    def latency_ms(percentile: str) -> float:
        value, unit = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M).groups()
        return float(value) * UNIT_MS[unit]

    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "rps": number(r"Requests/sec:\s+([\d.]+)", text),
        "p50": latency_ms("50"),
        "p99": latency_ms("99"),
        "errors": int(number(r"Non-2xx or 3xx responses: (\d+)", text, 0))
        + (sum(map(int, socket.groups())) if socket else 0),
    }


def parse_h2load(text: str) -> dict:
    """h2load counts an HTTP 200 as success even when the grpc-status trailer says otherwise: a call counts as
    answered only when its bytes of DATA (the gRPC response frame) arrived, measured against the frame size."""
    done, ok, failed, errored, timeout = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout",
        text,
    ).groups()
    data = number(r"^traffic: .*\((\d+)\) data", text)
    frame = number(r"^Response frame bytes: (\d+)", text)
    answered = round(data / frame) if frame else int(ok)
    return {
        "rps": number(r"^finished in [\d.]+m?s, ([\d.]+) req/s", text),
        "p50": number(r"^Latency percentiles \(us\): p50 (\d+)", text) / 1000,
        "p99": number(r"^Latency percentiles \(us\): p50 \d+ p99 (\d+)", text) / 1000,
        "errors": int(failed) + int(errored) + int(timeout) + max(0, int(ok) - answered),
    }


def parse(text: str) -> dict:
    result = parse_h2load(text) if "finished in" in text else parse_wrk(text)
    other = number(r"Other load on CPU 0: (\d+)%", text)
    calls = number(r"Wharf predict calls: (\d+), rows: \d+", text)
    rows = number(r"Wharf predict calls: \d+, rows: (\d+)", text)
    result["other"] = None if other is None else int(other)
    result["rows_per_call"] = rows / calls if calls else None
    return result


def load(directory: Path) -> dict:
    """{(server, connections): parsed output} for every DIR/<server>-c<connections>.txt."""
    results = {}
    for path in directory.glob("*-c*.txt"):
        server, connections = re.fullmatch(r"(.+)-c(\d+)\.txt", path.name).groups()
        results[server, int(connections)] = parse(path.read_text())
    if not results:
        sys.exit(f"report.py: no load generator outputs in {directory}")
    return results


def table(results: dict, names: dict, unit: str = "connections", batch_column: bool = False) -> None:
    """One row per server (in `names` order, shown as its value) and connection count."""
    conns = sorted({c for _, c in results})
    head = ["server", unit, "requests/s", "p50 ms", "p99 ms", "errors"]
    head += ["rows per predict call"] if batch_column else []
    print("| " + " | ".join(head + ["other load on CPU 0"]) + " |")
    print("|---|" + "---:|" * (len(head)))
    for server, name in names.items():
        for c in conns:
            if (server, c) in results:
                r = results[server, c]
                row = [name, c, f"{r['rps']:.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}", r["errors"]]
                if batch_column:
                    row.append("" if r["rows_per_call"] is None else f"{r['rows_per_call']:.1f}")
                row.append("n/a" if r["other"] is None else f"{r['other']}%")
                print("| " + " | ".join(map(str, row)) + " |")


def ratio(results: dict, a: str, b: str, c: int) -> float | None:
    """a's requests/s over b's at c connections (None when either is missing)."""
    if (a, c) in results and (b, c) in results and results[b, c]["rps"] > 0:
        return results[a, c]["rps"] / results[b, c]["rps"]
    return None


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def busy_note(results: dict, busy_percent: int) -> None:
    busiest = max((r["other"] or 0 for r in results.values()), default=0)
    if busiest > busy_percent:
        print()
        print(f"Other work took up to {busiest}% of CPU 0 during the measurements: these numbers are indicative only.")


def main(directory: Path, busy_percent: int) -> None:
    results = load(directory)
    conns = sorted({c for _, c in results})
    names = {s: n for s, n in SERVERS.items() if any((s, c) in results for c in conns)}
    table(results, names)
    others = [s for s in names if s != "wharf"]
    if "wharf" in names and others:
        print()
        print("| connections | " + " | ".join(f"Wharf/{SERVERS[s]} requests/s" for s in others) + " |")
        print("|---:|" + "---:|" * len(others))
        for c in conns:
            print(f"| {c} | " + " | ".join(fmt(ratio(results, "wharf", s, c)) for s in others) + " |")
    busy_note(results, busy_percent)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 5)
