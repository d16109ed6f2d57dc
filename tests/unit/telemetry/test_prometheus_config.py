"""The Prometheus configuration `wharf up` writes: one job discovering its targets, checked by Prometheus' promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.programs import program
from wharf.telemetry.prometheus import command, config_text, duration, scrape_config

URL = "http://127.0.0.1:8002/prometheus/targets"


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (1.0, "1s"), (0.25, "250ms"), (1.5, "1500ms"), (60, "60s")])
def test_durations_are_written_as_prometheus_reads_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_one_job_discovers_every_target_with_the_token_file_only_for_discovery(tmp_path: Path) -> None:
    token = tmp_path / "token"
    job = scrape_config(URL, token, 1.0)
    assert job == {
        "job_name": "wharf",
        "scrape_interval": "1s",
        "scrape_timeout": "1s",  # never longer than the interval
        "http_sd_configs": [
            {
                "url": URL,
                "refresh_interval": "1s",  # a new replica is scraped from its first seconds
                "authorization": {"type": "Bearer", "credentials_file": str(token)},
            }
        ],
    }
    assert "authorization" not in job  # the scrapes themselves carry no token: replicas run users' code
    assert scrape_config(URL, token, 30)["scrape_timeout"] == "10s"  # Prometheus' default timeout, at most


def test_the_whole_file_parses_and_promtool_accepts_it(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret")
    text = config_text(URL, token, 5)
    parsed = yaml.safe_load(text)
    assert parsed["global"] == {"scrape_interval": "5s", "evaluation_interval": "5s"}
    assert [job["job_name"] for job in parsed["scrape_configs"]] == ["wharf"]
    promtool = program("promtool", "prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    checked = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_command_line_names_config_storage_and_address() -> None:
    argv = command("prometheus", Path("/h/prometheus/prometheus.yml"), Path("/h/prometheus/data"), "127.0.0.1:9090")
    assert argv == [
        "prometheus",
        "--config.file=/h/prometheus/prometheus.yml",
        "--storage.tsdb.path=/h/prometheus/data",
        "--web.listen-address=127.0.0.1:9090",
    ]
