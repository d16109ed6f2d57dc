"""A Prometheus server's configuration and command line for scraping one Wharf (`wharf up --prometheus`).

The configuration has one scrape job, `wharf`, with one `http_sd_configs` entry: the control API's discovery
endpoint (`wharf.telemetry.discovery`), asked with a bearer token read from a file (the control API's viewer token:
it may only read). The token goes to the discovery endpoint only, never to the scraped processes (replicas run
users' code). Targets are scraped every `scrape_interval_s` and discovery is asked as often, so that a replica
that starts (a scale from zero, a canary) is scraped from its first seconds. `honor_labels` is left false: the
targets' labels and their metrics' labels never clash (see `wharf.telemetry.discovery`).

Pure: plain data in, YAML text and an argument list out; the control plane writes the files and runs the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

JOB = "wharf"
MAX_SCRAPE_TIMEOUT_S = 10.0  # Prometheus' default; a timeout may not exceed the interval


def duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds as `5s`, else milliseconds (`1500ms`)."""
    milliseconds = round(seconds * 1000)
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


def scrape_config(discovery_url: str, credentials_file: Path, scrape_interval_s: float) -> dict[str, Any]:
    """The one scrape job: every target the discovery endpoint at `discovery_url` lists, with the token read from
    `credentials_file` (asked every `scrape_interval_s`)."""
    interval = duration(scrape_interval_s)
    return {
        "job_name": JOB,
        "scrape_interval": interval,
        "scrape_timeout": duration(min(scrape_interval_s, MAX_SCRAPE_TIMEOUT_S)),
        "http_sd_configs": [
            {
                "url": discovery_url,
                "refresh_interval": interval,
                "authorization": {"type": "Bearer", "credentials_file": str(credentials_file)},
            }
        ],
    }


def config_text(discovery_url: str, credentials_file: Path, scrape_interval_s: float) -> str:
    """A whole Prometheus configuration file (YAML) with the one scrape job of `scrape_config`."""
    interval = duration(scrape_interval_s)
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [scrape_config(discovery_url, credentials_file, scrape_interval_s)],
    }
    header = "# Written by `wharf up`: Prometheus scraping this Wharf through its service discovery.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def command(binary: str, config_file: Path, storage: Path, listen: str) -> list[str]:
    """The command line of a Prometheus server with `config_file`, its database in `storage`, its web UI and API
    on `listen` (`HOST:PORT`)."""
    return [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address={listen}",
    ]
