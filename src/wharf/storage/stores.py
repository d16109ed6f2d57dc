"""The stores: for each remote URI scheme, the fsspec filesystem options that set its endpoint and timeouts.

Credentials are never handled here: each plugin reads its store's standard environment variables and files
(s3fs through botocore, gcsfs through google-auth, adlfs through the Azure SDK).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from wharf.errors import ConfigurationError
from wharf.storage.settings import StorageSettings
from wharf.storage.uri import LOCAL_SCHEMES, local_path, redact, scheme

if TYPE_CHECKING:  # imported when an http(s) or gs store is opened: 0.2 s a process that reads none
    import aiohttp

Options = dict[str, Any]


def _aiohttp_timeout(settings: StorageSettings) -> aiohttp.ClientTimeout:
    # no total limit: a large artifact may take long, as long as bytes keep coming
    import aiohttp

    wait = settings.storage_timeout_s
    return aiohttp.ClientTimeout(total=None, sock_connect=wait, sock_read=wait)


def _http(settings: StorageSettings) -> Options:
    return {"client_kwargs": {"timeout": _aiohttp_timeout(settings)}}


def _s3(settings: StorageSettings) -> Options:
    timeout = settings.storage_timeout_s
    return {
        "anon": not _has_aws_credentials(),
        "endpoint_url": settings.s3_endpoint_url,
        "config_kwargs": {"connect_timeout": timeout, "read_timeout": timeout},
    }


def _gcs(settings: StorageSettings) -> Options:
    return {"requests_timeout": _aiohttp_timeout(settings)}


def _azure(settings: StorageSettings) -> Options:
    return {"connection_timeout": settings.storage_timeout_s, "read_timeout": settings.storage_timeout_s}


def _has_aws_credentials() -> bool:
    """Whether botocore finds credentials (environment, shared files, web identity, instance role)."""
    import botocore.session

    return botocore.session.get_session().get_credentials() is not None


STORES: dict[str, Callable[[StorageSettings], Options]] = {
    "http": _http,
    "https": _http,
    "s3": _s3,
    "gs": _gcs,
    "az": _azure,
}


def options(uri: str, settings: StorageSettings) -> Options:
    """The filesystem options for the remote store that `uri` names."""
    try:
        store = STORES[scheme(uri)]
    except KeyError:
        known = ", ".join(f"{s}://" for s in STORES)
        raise ConfigurationError(
            f"{redact(uri)}: unsupported storage scheme (supported: paths, file://, pvc://, {known})"
        ) from None
    return store(settings)


def connect(uri: str, settings: StorageSettings) -> tuple[AbstractFileSystem, str]:
    """The filesystem holding `uri`, and the path of `uri` in it."""
    if scheme(uri) in LOCAL_SCHEMES:
        return LocalFileSystem(), str(local_path(uri, settings))
    try:
        return fsspec.core.url_to_fs(uri, skip_instance_cache=True, **options(uri, settings))
    except ImportError as e:  # a plugin is an extra: wharf[s3], wharf[gcs], wharf[azure]
        raise ConfigurationError(f"{redact(uri)}: {e}") from None
