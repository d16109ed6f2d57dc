"""Turn bench/batching.sh's raw outputs into Markdown tables, ratios and the issue's targets.

Usage: python3 bench/batching_report.py RAW BUSY_PERCENT CONNECTIONS LOW_CONNECTIONS CASE:ROWS...
RAW/<case>/<server>-c<connections>.txt as bench/report.py reads them; ROWS is the rows per request of the case.
Targets: Wharf with batching at least 10x KServe's requests/s with p99 under 10 ms at CONNECTIONS, and at least
0.90x of Wharf without batching at LOW_CONNECTIONS.
"""

import sys
from pathlib import Path

from report import busy_note, fmt, load, ratio, table

TITLES = {
    "iris": "iris LogisticRegression, {rows}-row requests",
    "forest": "RandomForestClassifier (100 trees, 20 features), {rows}-row requests",
}
NAMES = {
    "wharf-batch": "Wharf, batching (max latency 2 ms)",
    "wharf-batch0": "Wharf, batching (max latency 0)",
    "wharf": "Wharf, no batching",
    "kserve": "KServe",
    "mlserver-batch": "MLServer, adaptive batching",
    "mlserver": "MLServer, no batching",
}
BATCHING = ["wharf-batch", "wharf-batch0"]


def yes(ok: bool) -> str:
    return "met" if ok else "missed"


def report(results: dict, rows: int, c: int, low: int) -> None:
    for (server, _), r in results.items():
        if server not in BATCHING:  # without batching, Wharf counts one "row" per request, whatever its rows
            r["rows_per_call"] = None
    table(results, {s: n for s, n in NAMES.items() if any(s == k for k, _ in results)}, batch_column=True)
    variants = [s for s in BATCHING if (s, c) in results]
    if not variants:
        return
    print()
    print("| Wharf with batching | " + " | ".join(NAMES[s].removeprefix("Wharf, ") for s in variants) + " |")
    print("|---|" + "---:|" * len(variants))
    lines = [
        (f"requests/s ÷ KServe's, {c} connections", lambda s: fmt(ratio(results, s, "kserve", c))),
        (f"requests/s ÷ MLServer batching's, {c} connections", lambda s: fmt(ratio(results, s, "mlserver-batch", c))),
        (f"requests/s ÷ Wharf no batching's, {c} connections", lambda s: fmt(ratio(results, s, "wharf", c))),
        (f"requests/s ÷ Wharf no batching's, {low} connection(s)", lambda s: fmt(ratio(results, s, "wharf", low))),
        (f"requests per predict call, {c} connections", lambda s: per_call(results, s, c, rows)),
        (f"target ≥ 10x KServe's requests/s, {c} connections", lambda s: target(ratio(results, s, "kserve", c), 10)),
        (f"target p99 < 10 ms, {c} connections", lambda s: yes(results[s, c]["p99"] < 10)),
        (f"target ≥ 0.90x no batching, {low} connection(s)", lambda s: target(ratio(results, s, "wharf", low), 0.9)),
    ]
    for label, cell in lines:
        print(f"| {label} | " + " | ".join(cell(s) for s in variants) + " |")


def per_call(results: dict, server: str, c: int, rows: int) -> str:
    mean = results[server, c]["rows_per_call"]
    return "n/a" if mean is None else f"{mean / rows:.1f} ({mean:.0f} rows)"


def target(value: float | None, at_least: float) -> str:
    return "n/a" if value is None else yes(value >= at_least)


def main(raw: Path, busy_percent: int, c: int, low: int, cases: list[str]) -> None:
    everything = {}
    for spec in cases:
        case, rows = spec.split(":")
        results = load(raw / case)
        everything.update({(case, *k): v for k, v in results.items()})
        print(f"## {TITLES.get(case, case).format(rows=rows)}")
        print()
        report(results, int(rows), c, low)
        print()
    busy_note(everything, busy_percent)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:])
