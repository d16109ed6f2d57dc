"""kubectl's way in: this Wharf's certificate authority (kept across restarts), the control API served over TLS with
a certificate it signs, the kubeconfig that trusts it, merged into another, and `wharf kubeconfig`."""

from __future__ import annotations

import base64
import json
import ssl
import stat
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from typer.testing import CliRunner

from wharf.cli.main import app
from wharf.control.auth import ControlGuard, Credentials
from wharf.control.kube import kubeconfig
from wharf.control.kube.tls import Authority, KubeListener, url

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_a_kubeconfig_has_one_cluster_user_and_context_trusting_the_authority() -> None:
    config = kubeconfig.kubeconfig("https://127.0.0.1:8443", CA, "tok")
    assert config["current-context"] == "wharf"
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"] == "https://127.0.0.1:8443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == CA
    assert config["users"] == [{"name": "wharf", "user": {"token": "tok"}}]
    assert config["contexts"] == [
        {"name": "wharf", "context": {"cluster": "wharf", "user": "wharf", "namespace": "default"}}
    ]
    viewer = kubeconfig.with_user(config, "wharf-viewer", "view")
    assert viewer["current-context"] == "wharf-viewer" and viewer["users"][0]["user"]["token"] == "view"
    assert viewer["clusters"] == config["clusters"]


def test_merging_replaces_entries_of_the_same_names_keeps_others_and_switches_context() -> None:
    mine = kubeconfig.kubeconfig("https://127.0.0.1:8443", CA, "new")
    other = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "prod", "cluster": {"server": "https://prod"}},
            {"name": "wharf", "cluster": {"server": "old"}},
        ],
        "users": [{"name": "prod", "user": {"token": "p"}}, {"name": "wharf", "user": {"token": "old"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod"}}],
        "current-context": "prod",
    }
    merged = kubeconfig.merged(other, mine)
    assert [c["name"] for c in merged["clusters"]] == ["prod", "wharf"]
    assert merged["clusters"][1]["cluster"]["server"] == "https://127.0.0.1:8443"
    assert [u["user"]["token"] for u in merged["users"]] == ["p", "new"]
    assert [c["name"] for c in merged["contexts"]] == ["prod", "wharf"]
    assert merged["current-context"] == "wharf"
    assert kubeconfig.merged(None, mine) == {**mine, "preferences": {}}


def test_the_authority_is_made_once_its_key_private_and_kept(tmp_path: Path) -> None:
    first = Authority.load_or_create(tmp_path / "tls")
    assert stat.S_IMODE((tmp_path / "tls" / "ca.key").stat().st_mode) == 0o600
    again = Authority.load_or_create(tmp_path / "tls")
    assert again.pem == first.pem
    cert_pem, _ = first.issue(["10.1.2.3", "wharf.internal", "0.0.0.0"])
    names = (
        x509.load_pem_x509_certificate(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    )
    assert set(map(str, names.get_values_for_type(x509.IPAddress))) == {"127.0.0.1", "::1", "10.1.2.3"}
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "wharf.internal"]


def test_clients_reach_a_wildcard_address_on_loopback() -> None:
    assert url("0.0.0.0", 8443) == "https://127.0.0.1:8443"
    assert url("::", 8443) == "https://[::1]:8443"
    assert url("10.0.0.1", 1) == "https://10.0.0.1:1"


@pytest.mark.anyio
async def test_the_api_over_tls_is_trusted_by_the_authority_and_keeps_its_guard(tmp_path: Path) -> None:
    async def hello(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"hello"})  # type: ignore[operator]

    credentials, _ = Credentials.load_or_create(tmp_path)
    listener = KubeListener(tmp_path)
    server, authority = await listener.start(ControlGuard(hello, credentials), "127.0.0.1", 0)
    try:
        trust = ssl.create_default_context(cadata=authority.decode())
        headers = {"authorization": f"Bearer {credentials.admin}"}
        async with httpx.AsyncClient(verify=trust, timeout=10) as client:
            assert (await client.get(f"{server}/apis", headers=headers)).text == "hello"
            assert (await client.get(f"{server}/apis")).status_code == 401
            port = server.rpartition(":")[2]
            assert (await client.get(f"https://localhost:{port}/apis", headers=headers)).status_code == 200
        async with httpx.AsyncClient(timeout=10) as untrusting:  # the system's authorities do not know this one
            with pytest.raises(httpx.ConnectError):
                await untrusting.get(server)
    finally:
        await listener.stop()


def home_of_a_daemon(home: Path) -> Credentials:
    credentials, _ = Credentials.load_or_create(home)
    kubeconfig.write(home / kubeconfig.FILE, kubeconfig.kubeconfig("https://127.0.0.1:8443", CA, credentials.admin))
    return credentials


def test_wharf_kubeconfig_prints_the_admins_or_the_viewers(tmp_path: Path) -> None:
    credentials = home_of_a_daemon(tmp_path)
    printed = CliRunner().invoke(app, ["kubeconfig"], env={"WHARF_HOME": str(tmp_path)})
    assert printed.exit_code == 0, printed.output
    assert yaml.safe_load(printed.stdout)["users"] == [{"name": "wharf", "user": {"token": credentials.admin}}]
    viewer = yaml.safe_load(
        CliRunner().invoke(app, ["kubeconfig", "--viewer"], env={"WHARF_HOME": str(tmp_path)}).stdout
    )
    assert viewer["users"] == [{"name": "wharf-viewer", "user": {"token": credentials.viewer}}]
    assert viewer["current-context"] == "wharf-viewer"


def test_wharf_kubeconfig_write_merges_into_a_file_private_to_the_user(tmp_path: Path) -> None:
    credentials = home_of_a_daemon(tmp_path / "home")
    target = tmp_path / "kube" / "config"
    target.parent.mkdir()
    target.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "prod", "cluster": {}}],
                "current-context": "prod",
            }
        )
    )
    written = CliRunner().invoke(
        app, ["kubeconfig", "--write", str(target)], env={"WHARF_HOME": str(tmp_path / "home")}
    )
    assert written.exit_code == 0, written.output
    assert str(target) in written.stdout
    config = yaml.safe_load(target.read_text())
    assert [c["name"] for c in config["clusters"]] == ["prod", "wharf"]
    assert config["current-context"] == "wharf" and config["users"][0]["user"]["token"] == credentials.admin
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_wharf_kubeconfig_without_a_daemon_says_so(tmp_path: Path) -> None:
    refused = CliRunner().invoke(app, ["kubeconfig"], env={"WHARF_HOME": str(tmp_path)})
    assert refused.exit_code == 1
    assert "no `wharf up` found" in refused.output
