"""The control API over TLS, for kubectl and every client-go program: they send a kubeconfig's credentials (the
bearer token) only to an `https://` server, never over plain HTTP.

`KubeListener` serves the control API's app (the same routes, behind the same guard) on a port of its own
(`WHARF_KUBE_PORT`, 8443 by default) with a certificate of this Wharf's own authority: a CA made on the first start
and kept in WHARF_HOME/tls (its key readable by this user only), and a server certificate it signs at each start
for the names the API answers to (loopback, `localhost`, the control host and the allowed host names). The
kubeconfig (`wharf.control.kube.kubeconfig`) carries the CA, so kubectl verifies the server as it verifies a
cluster's, and a restart keeps every kubeconfig written before valid. Keys are ECDSA P-256: made in milliseconds.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wharf.control.auth import write_private
from wharf.embedded_http import EmbeddedServer, listen

DIRECTORY = "tls"
AUTHORITY_YEARS = 10
SERVER_DAYS = 365  # re-issued at every start
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Wharf"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


_USAGES = (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
    "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
)  # fmt: skip


def _key_usage(*allowed: str) -> x509.KeyUsage:
    """A key usage extension that allows `allowed` only."""
    return x509.KeyUsage(**{usage: usage in allowed for usage in _USAGES})


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def subject_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """Each host as a certificate's subject alternative name: an IP address or a DNS name; loopback always."""
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([*LOOPBACK, *hosts]):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            names.append(x509.DNSName(host))
            continue
        if not address.is_unspecified:
            names.append(x509.IPAddress(address))
    return names


@dataclass(frozen=True)
class Authority:
    """This Wharf's certificate authority: its certificate (PEM) and key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def load_or_create(cls, directory: Path) -> Authority:
        """The authority kept in `directory`, made (and kept, its key this user's only) when there is none yet."""
        cert_path, key_path = directory / "ca.crt", directory / "ca.key"
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        except FileNotFoundError:
            return cls._create(cert_path, key_path)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or certificate.not_valid_after_utc <= _now():
            return cls._create(cert_path, key_path)
        return cls(certificate, key)

    @classmethod
    def _create(cls, cert_path: Path, key_path: Path) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name("Wharf local authority")
        now = _now()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365 * AUTHORITY_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage("key_cert_sign", "crl_sign"), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private(key_path, _pem(key).decode())
        write_private(cert_path, certificate.public_bytes(serialization.Encoding.PEM).decode())
        return cls(certificate, key)

    def issue(self, hosts: Iterable[str]) -> tuple[bytes, bytes]:
        """A server certificate for `hosts` (and loopback), signed by this authority, and its key: both PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        authority_key = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name("wharf-control"))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage("digital_signature"), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(subject_names(hosts)), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(authority_key), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM), _pem(key)


def url(host: str, port: int) -> str:
    """The https URL clients reach `host:port` at (loopback for a wildcard address)."""
    try:
        if ipaddress.ip_address(host).is_unspecified:
            host = "::1" if ":" in host else "127.0.0.1"
    except ValueError:
        pass
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


STOP_GRACE_S = 1.0  # what requests in flight get to finish when the daemon stops


class KubeListener:
    """The control API's app served over TLS on a port of its own (see the module's docstring)."""

    def __init__(self, home: Path) -> None:
        self.directory = home / DIRECTORY
        self._server: EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, app: Any, host: str, port: int, names: Iterable[str] = ()) -> tuple[str, bytes]:
        """Serve `app` on `host:port` (0: any free port); its URL and the authority's certificate (PEM), which
        clients trust. The server's certificate names `host` and `names` besides loopback."""
        authority = Authority.load_or_create(self.directory)
        certificate, key = authority.issue([host, *names])
        cert_path, key_path = self.directory / "server.crt", self.directory / "server.key"
        write_private(key_path, key.decode())
        write_private(cert_path, certificate.decode())
        sock = listen(host, port)
        self._server = EmbeddedServer(app, ssl_certfile=os.fspath(cert_path), ssl_keyfile=os.fspath(key_path))
        self._task = await self._server.start(sock)
        return url(host, sock.getsockname()[1]), authority.pem

    async def stop(self) -> None:
        """Stop serving. Connections a client keeps open (a notebook's KServeClient) are cut after `STOP_GRACE_S`:
        closing a TLS connection would wait up to 30 s for the client's close notice."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_S)
        except TimeoutError:
            for connection in list(self._server.server_state.connections):
                if connection.transport is not None:
                    connection.transport.abort()
            await self._task
