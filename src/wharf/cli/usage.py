"""`wharf top` and `wharf cost`: what each revision and its replicas use now (refreshed, as `kubectl top` under
`watch` shows it), and the cost report over a window, naming over- and under-scaled services with their numbers."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
import yaml

from wharf.cli.control import ControlUrl, Namespace, _client, _duration, _interruptible, _target
from wharf.cli.tables import Column, Table
from wharf.client.control import plural

Target = Annotated[
    str | None, typer.Argument(help="one InferenceService: isvc/NAME", metavar="[isvc/NAME]", show_default=False)
]
AllNamespaces = Annotated[bool, typer.Option("--all-namespaces", "-A", help="in every namespace")]
_CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen


def top(
    target: Target = None,
    namespace: Namespace = "default",
    all_namespaces: AllNamespaces = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="refresh until Ctrl-C (the default on a terminal)")
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="print once and end (the default when not on a terminal)")
    ] = False,
    interval: Annotated[str, typer.Option(help="how often to refresh (e.g. 2s)")] = "2s",
    control_url: ControlUrl = None,
) -> None:
    """CPU (cores now, seconds in all), resident memory and load of each revision and of its replicas."""
    name = _name(target, all_namespaces)
    every_s = _duration(interval, "--interval")
    scope = None if all_namespaces else namespace
    live = not once and (watch or sys.stdout.isatty())
    with _client(control_url) as client, _interruptible():
        while True:
            text = _top_tables(client.top(scope, name), all_namespaces, namespace)
            if not live:
                typer.echo(text)
                return
            if sys.stdout.isatty():
                typer.echo(_CLEAR + time.strftime("%H:%M:%S ") + f"every {every_s:g}s, Ctrl-C to stop\n\n" + text)
            else:
                typer.echo(text + "\n")
            time.sleep(every_s)


def cost(
    target: Target = None,
    namespace: Namespace = "default",
    all_namespaces: AllNamespaces = False,
    since: Annotated[str, typer.Option(help="the window: the minutes that end in it (e.g. 30m, 1h, 24h)")] = "1h",
    output: Annotated[str | None, typer.Option("--output", "-o", help="json or yaml")] = None,
    control_url: ControlUrl = None,
) -> None:
    """Replica-seconds, idle time, CPU, memory, load and cold starts per service and revision over a window, and
    which are over-scaled (replicas kept warm and idle) or under-scaled (held at maxReplicas with requests
    waiting, panicking), with the change each needs and the numbers behind it."""
    if output not in (None, "json", "yaml"):
        raise typer.BadParameter(f"{output!r}: use json or yaml", param_hint="-o")
    name = _name(target, all_namespaces)
    since_s = _duration(since, "--since")
    with _client(control_url) as client:
        report = client.cost(since_s, None if all_namespaces else namespace, name)
    if output == "json":
        typer.echo(json.dumps(report, indent=2))
    elif output == "yaml":
        typer.echo(yaml.safe_dump(report, sort_keys=False).rstrip("\n"))
    else:
        typer.echo(cost_text(report, since, all_namespaces))


def cost_text(report: dict[str, Any], since: str, namespaces: bool) -> str:
    """The report as a table of revisions, then the recommendations, each with its numbers."""
    revisions = report["revisions"]
    if not revisions:
        return f"No usage recorded in the last {since}."
    table = Table(_namespaced(_COST_COLUMNS, namespaces))
    lines = [f"Usage in the last {since}:", table.render(revisions), ""]
    advised = [r for r in revisions if r["recommendation"]]
    if not advised:
        lines.append("Recommendations: none (every revision fits its load, or was observed too short)")
    else:
        lines.append("Recommendations:")
        for r in advised:
            where = f"{r['namespace']}/{r['service']} ({r['component']} {r['revision']})"
            lines.append(f"  {r['verdict']}  {where}: {r['recommendation']['reason']}")
    if report.get("edges"):
        lines += ["", "Calls (the service graph's edges, over the gateway's window):"]
        lines.append(Table(_EDGE_COLUMNS).render(report["edges"]))
    return "\n".join(lines)


def _name(target: str | None, all_namespaces: bool) -> str | None:
    """The InferenceService `isvc/NAME` names (None for `isvc` or nothing: every one)."""
    if target is None:
        return None
    kind, name = _target(target, None)
    if plural(kind) != "inferenceservices":
        raise typer.BadParameter(f"{kind}: only InferenceServices (isvc/NAME) have replicas")
    if name and all_namespaces:
        raise typer.BadParameter("-A covers every namespace: name no InferenceService with it")
    return name


def _top_tables(items: list[dict[str, Any]], namespaces: bool, namespace: str) -> str:
    if not items:
        return "No revisions running" + ("." if namespaces else f" in namespace {namespace}.")
    replicas = [
        {**replica, "namespace": item["namespace"], "revision": item["revision"]}
        for item in items
        for replica in item["replicaStates"]
    ]
    parts = [Table(_namespaced(_REVISION_COLUMNS, namespaces)).render(items)]
    if replicas:
        parts.append(Table(_namespaced(_REPLICA_COLUMNS, namespaces)).render(replicas))
    return "\n\n".join(parts)


def _namespaced(columns: list[Column], namespaces: bool) -> list[Column]:
    return [("NAMESPACE", lambda item: item["namespace"]), *columns] if namespaces else columns


def _cores(cores: float) -> str:
    """CPU cores as kubectl top writes them: millicores."""
    return f"{cores * 1000:.0f}m"


def _bytes(size: float | None) -> str:
    """Bytes as kubectl top writes memory: mebibytes."""
    return "-" if size is None else f"{size / 2**20:.0f}Mi"


def _share(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


_REVISION_COLUMNS: list[Column] = [
    ("SERVICE", lambda item: item["service"]),
    ("REVISION", lambda item: item["revision"]),
    ("READY", lambda item: f"{item['ready']}/{item['replicas']}"),
    ("DESIRED", lambda item: str(item["desired"])),
    ("IN-FLIGHT", lambda item: str(item["inFlight"])),
    ("WAITING", lambda item: str(item["waiting"])),
    ("CONCURRENCY/TARGET", lambda item: f"{_g(item['concurrency'])}/{_g(item['concurrencyTarget'])}"),
    ("RPS", lambda item: _g(item["requestsPerSecond"])),
    ("PANIC", lambda item: "yes" if item["panicking"] else "no"),
    ("CPU(cores)", lambda item: _cores(item["cpuCores"])),
    ("CPU-SECONDS", lambda item: _g(item["cpuSeconds"])),
    ("MEMORY(bytes)", lambda item: _bytes(item["memoryBytes"])),
]
_REPLICA_COLUMNS: list[Column] = [
    ("REPLICA", lambda replica: replica["replica"]),
    ("REVISION", lambda replica: replica["revision"]),
    ("PID", lambda replica: str(replica["pid"])),
    ("READY", lambda replica: "yes" if replica["ready"] else "no"),
    ("RESTARTS", lambda replica: str(replica["restarts"])),
    ("CPU(cores)", lambda replica: _cores(replica["cpuCores"])),
    ("CPU-SECONDS", lambda replica: _g(replica["cpuSeconds"])),
    ("MEMORY(bytes)", lambda replica: _bytes(replica["memoryBytes"])),
]
_EDGE_COLUMNS: list[Column] = [
    ("SOURCE", lambda e: "/".join(filter(None, (e.get("source"), e.get("sourceComponent"))))),
    ("DESTINATION", lambda e: "/".join(filter(None, (e.get("destination"), e.get("component"))))),
    ("REVISION", lambda e: e.get("revision") or "-"),
    ("REQUESTS", lambda e: str(e.get("requests", 0))),
    ("RPS", lambda e: _g(e.get("requestsPerSecond"))),
    ("ERRORS", lambda e: _share(e.get("errorRatio"))),
    ("P99(ms)", lambda e: _g(e.get("p99Ms"))),
]
_COST_COLUMNS: list[Column] = [
    ("SERVICE", lambda r: r["service"]),
    ("REVISION", lambda r: r["revision"]),
    ("REPLICAS", lambda r: f"{_g(r['figures']['replicasAvg'])}/{r['figures']['replicasMax']}"),
    ("REPLICA-SECONDS", lambda r: f"{r['figures']['replicaSeconds']:.0f}"),
    ("IDLE", lambda r: _share(r["figures"]["idleShare"])),
    ("CPU-SECONDS", lambda r: _g(r["figures"]["cpuSeconds"])),
    ("MEMORY", lambda r: _bytes(r["figures"]["memoryAvgBytes"])),
    ("REQUESTS", lambda r: str(r["figures"]["requests"])),
    ("CONCURRENCY/TARGET", lambda r: f"{_g(r['figures']['concurrencyAvg'])}/{_g(r['figures']['target'])}"),
    ("WAITING", lambda r: f"{_g(r['figures']['waitingAvg'])}/{_g(r['figures']['waitingMax'])}"),
    ("PANIC", lambda r: _share(r["figures"]["panicShare"])),
    ("COLD-STARTS", lambda r: str(r["figures"]["coldStarts"])),
    ("VERDICT", lambda r: r["verdict"]),
]
