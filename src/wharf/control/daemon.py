"""`wharf up`: the control plane, with embedded defaults, and its gateway and model monitor as processes of their own.

State lives in SQLite under WHARF_HOME; a lock file there keeps a second daemon out. The gateway runs apart
(`GatewayProcess`), so that the control plane's work never delays traffic. On SIGTERM/SIGINT the daemon stops its
API, the gateway and then its replicas; after a crash (SIGKILL) the gateway and the replicas go on serving, and the
next daemon adopts the gateway and the replicas that are still healthy and restarts the others.

The control API listens on `control_host` (loopback by default, whatever address the gateway is given) and asks
every caller for a bearer token (`wharf.control.auth`); the daemon tells its clients where it is and the token in
WHARF_HOME/daemon.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import ipaddress
import json
import logging
import signal
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from wharf.client.control import DEFAULT_HOME, DaemonAddress
from wharf.console.assets import console_routes
from wharf.control.api import create_app
from wharf.control.auth import ControlGuard, Credentials, write_private
from wharf.control.backends import LocalBackend, ReplicaState
from wharf.control.backends.base import Backend
from wharf.control.bandit_link import BanditLink
from wharf.control.bandit_state import BanditState
from wharf.control.bandit_view import bandit_router
from wharf.control.console_api import console_router
from wharf.control.controller import Controller
from wharf.control.discovery import ScrapeTargets, discovery_url
from wharf.control.gateway_process import GatewayProcess
from wharf.control.history import History
from wharf.control.kube import kubeconfig
from wharf.control.kube.routes import kube_router
from wharf.control.kube.tls import KubeListener
from wharf.control.batch_jobs import BatchJobs
from wharf.control.kafka_sources import KafkaSources
from wharf.control.monitor_process import MonitorProcess
from wharf.control.monitor_view import MonitorView
from wharf.control.policy import ManifestPolicy
from wharf.control.prometheus_process import PrometheusProcess
from wharf.control.reconciler import Ingress, Reconciler
from wharf.control.store import Store
from wharf.control.trained_models import TrainedModels
from wharf.control.usage import UsageRecorder
from wharf.control.usage_table import UsageTable
from wharf.embedded_http import EmbeddedServer, listen
from wharf.errors import ConfigurationError
from wharf.monitor.settings import MonitorSettings

log = logging.getLogger("wharf.daemon")


class DaemonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHARF_", extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="where state, logs and the lock file live")
    host: str = Field("127.0.0.1", description="the gateway's address")
    gateway_http_port: int = Field(8000, ge=0, le=65535)
    gateway_grpc_port: int = Field(8001, ge=0, le=65535)
    control_host: str = Field("127.0.0.1", description="the control API's address, apart from the gateway's")
    control_port: int = Field(8002, ge=0, le=65535)
    control_allowed_hosts: list[str] = Field(
        [], description="host names the control API answers to besides localhost and IP addresses"
    )
    kube_port: int = Field(
        8443, ge=0, le=65535, description="the control API over TLS, for kubectl (it sends a token only over TLS)"
    )
    domain: str = "example.com"
    resync_s: float = Field(1.0, gt=0, description="how often load is sampled, canaries judged, replicas recorded")
    scale_to_zero_grace_s: float = Field(30.0, ge=0, description="an idle revision's last replica goes after this")
    max_replicas: int = Field(64, ge=1, description="replicas on this machine in all")
    history_interval_s: float = Field(
        10.0, gt=0, description="the console's charts: a sample of each revision every this many seconds"
    )
    prometheus: bool = Field(False, description="run a Prometheus server scraping this Wharf (`--prometheus`)")
    prometheus_host: str = Field("127.0.0.1", description="where that Prometheus listens")
    prometheus_port: int = Field(9090, ge=0, le=65535, description="its port (0: a free one)")
    prometheus_scrape_interval_s: float = Field(5.0, gt=0, description="how often it scrapes every target")
    prometheus_binary: str = Field("prometheus", description="the Prometheus server to run")
    backend: Literal["local", "ray"] = Field("local", description="where replicas run: this machine, or a Ray cluster")
    ray_address: str = Field(
        "auto", description="the Ray cluster of `backend: ray` (auto: this machine's, RAY_ADDRESS)"
    )


def _backend(settings: DaemonSettings) -> Backend:
    """The backend `settings` ask for (Ray's module is imported only when it is the one)."""
    if settings.backend == "local":
        return LocalBackend(settings.home)
    from wharf.control.backends.ray import RayBackend, RayBackendSettings

    return RayBackend(settings.home, RayBackendSettings(address=settings.ray_address))


def _ingress(host: str, http_port: int, grpc_port: int) -> Ingress:
    """Where replicas on this machine reach the gateway: its listening address, or loopback for a wildcard."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name
        address = None
    if address is not None and address.is_unspecified:
        host = "::1" if address.version == 6 else "127.0.0.1"
    bracketed = f"[{host}]" if ":" in host else host
    return Ingress(f"http://{bracketed}:{http_port}", f"{bracketed}:{grpc_port}")


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _log_failure(task: asyncio.Task[None]) -> None:
    """A background reconcile (on a replica's change or on demand) that failed: logged, the next pass retries."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("background reconcile failed", exc_info=error)


@contextlib.contextmanager
def exclusive(home: Path) -> Iterator[IO[str]]:
    """Hold WHARF_HOME's lock for as long as the daemon runs."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "wharf.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigurationError(f"another `wharf up` is running with WHARF_HOME={home}") from None
        yield lock


async def run(settings: DaemonSettings) -> None:
    with exclusive(settings.home):
        settings.home.chmod(0o700)  # state, logs, tokens and the gateway's socket: this user's only
        (settings.home / "models").mkdir(exist_ok=True)  # where manifests may load models from, beside the cwd
        credentials, made = Credentials.load_or_create(settings.home)
        store = Store(settings.home / "wharf.db")
        bandit_state = BanditState(settings.home / "wharf.db")
        store.subscribe(bandit_state.forget_deleted)  # a graph deleted takes its bandits' counts with it
        bandits: BanditLink | None = None
        gateway = GatewayProcess(settings.home)
        prometheus = PrometheusProcess(settings.home, settings.prometheus_binary)
        monitor: MonitorProcess | None = None
        backend = _backend(settings)
        batch_jobs = BatchJobs(store, settings.home)
        kafka_sources: KafkaSources | None = None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            http_port, grpc_port = await gateway.start(
                settings.host, settings.gateway_http_port, settings.gateway_grpc_port
            )
            ingress = _ingress(settings.host, http_port, grpc_port)
            reconciler = Reconciler(
                store,
                backend,
                gateway,
                ingress,
                settings.domain,
                settings.scale_to_zero_grace_s,
                max_replicas=settings.max_replicas,
                bandit_arms=bandit_state.arms,
            )
            trained_models = TrainedModels(store, backend, reconciler)
            monitored, monitor_url = MonitorSettings(), None
            if monitored.enabled:
                monitor = MonitorProcess(settings.home, ingress.http_url, settings.domain)
                try:
                    monitor_url = await monitor.start(monitored.host, monitored.port)
                except ConfigurationError as e:  # serving goes on without it; the log says why
                    log.error("the model monitor did not start; running without it", extra={"reason": e.message})
                    monitor = None
            bandits = BanditLink(bandit_state, monitor_url)  # the gateway's bandit counts, and ground truth
            gateway.on_bandit = bandits.received
            adopted = [ReplicaState(**record) for _, record in store.replicas().values()]
            await backend.adopt(adopted, reconciler.adoptable_specs())  # replicas a crashed daemon left running
            kafka_sources = KafkaSources(store, settings.home, ingress.http_url, settings.domain, backend=backend)
            await kafka_sources.adopt()  # and its KafkaSources' consumers
            tasks: set[asyncio.Task[None]] = set()  # kept referenced until done

            def soon(work: Coroutine[Any, Any, None]) -> None:
                task = loop.create_task(work)
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(_log_failure)

            usage = UsageRecorder(reconciler, UsageTable(settings.home / "wharf.db"))
            soon(usage.run(stop))
            backend.on_change = lambda: soon(reconciler.reconcile())
            gateway.on_demand = lambda revision: soon(reconciler.demand(revision))
            try:
                await reconciler.reconcile()
            except Exception:  # a stored resource that cannot run must not keep the API (and `wharf delete`) down
                log.exception("reconcile failed; the next pass retries", extra={"retry_in_s": settings.resync_s})
            control = listen(settings.control_host, settings.control_port)
            control_port = control.getsockname()[1]
            control_url = _url(settings.control_host, control_port)
            controller = Controller(store, reconciler, ManifestPolicy(home=settings.home))
            targets = ScrapeTargets.of_daemon(store, backend, ingress.http_url, control_url, monitor_url)
            history = History(settings.history_interval_s)  # the console's charts: the last hour of each revision
            monitor_view = MonitorView(monitor_url, history)
            gateway_url = _url(settings.host, http_port)
            console = [console_routes(), console_router(controller, history, monitor_view, gateway_url)]
            routers = [*console, bandit_router(store, bandit_state), kube_router()]
            app = create_app(controller, targets=targets, usage=usage, routers=routers)
            guarded = ControlGuard(app, credentials, settings.control_allowed_hosts)
            api = EmbeddedServer(guarded)
            api_task = await api.start(control)
            kube, kube_url = KubeListener(settings.home), None
            try:  # kubectl's way in: WHARF_HOME/kubeconfig points at it
                kube_url, authority = await kube.start(
                    guarded, settings.control_host, settings.kube_port, settings.control_allowed_hosts
                )
                kubeconfig.write(
                    settings.home / kubeconfig.FILE, kubeconfig.kubeconfig(kube_url, authority, credentials.admin)
                )
            except OSError as e:  # serving goes on without it; the log says why
                log.error("the Kubernetes API (kubectl) did not start; running without it", extra={"reason": str(e)})
            prometheus_config = prometheus.configure(
                discovery_url(settings.control_host, control_port),
                credentials.viewer,
                settings.prometheus_scrape_interval_s,
            )
            prometheus_url = None
            if settings.prometheus:
                try:
                    prometheus_url = await prometheus.start(settings.prometheus_host, settings.prometheus_port)
                except ConfigurationError as e:  # serving goes on without it; the log says why
                    log.error("prometheus did not start; running without it", extra={"reason": e.message})
            address = DaemonAddress(
                control_url,
                gateway_url,
                f"{settings.host}:{grpc_port}",
                credentials.admin,
                monitor_url,
            )
            write_private(settings.home / DaemonAddress.FILE, json.dumps(dataclasses.asdict(address)))
            tokens = {"admin_token": credentials.admin, "viewer_token": credentials.viewer} if made else {}
            log.info(
                "wharf is up",
                extra={
                    "gateway": address.gateway_url,
                    "gateway_grpc": address.gateway_grpc,
                    "control": address.control_url,
                    "home": str(settings.home.resolve()),
                    "http_port": http_port,
                    "grpc_port": grpc_port,
                    "control_port": control_port,
                    "kube": kube_url,
                    "monitor": address.monitor_url,
                    "prometheus": prometheus_url,
                    "prometheus_config": str(prometheus_config),
                    **tokens,  # printed once, when made; kept in WHARF_HOME (credentials.json, daemon.json)
                },
            )
            while not stop.is_set() and not api_task.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.resync_s)
                try:
                    await prometheus.supervise()
                    if monitor is not None:
                        await monitor.supervise()
                        if (summary := await monitor.summary()) is not None:
                            reconciler.monitoring = summary
                    await kafka_sources.sync()
                    reconciler.waiting = kafka_sources.waiting  # the lag feeds the sinks' autoscalers
                    await reconciler.resync()
                    await batch_jobs.sync()
                    await trained_models.sync()
                    history.observe(time.time(), gateway.stats(), reconciler.metrics)
                    await monitor_view.sample(time.time())
                except Exception:  # one bad pass must not stop the daemon: the next resync tries again
                    log.exception("resync failed; the next pass retries", extra={"retry_in_s": settings.resync_s})
            controller.close()  # ends watches and followed logs, which would keep the API from stopping
            api.should_exit = True
            await api_task
            await kube.stop()
            await monitor_view.close()
            await trained_models.close()
        finally:
            await batch_jobs.stop()
            if kafka_sources is not None:
                await kafka_sources.stop()
            await prometheus.stop(5.0)
            if monitor is not None:
                await monitor.stop(5.0)
            await gateway.stop(5.0)
            if bandits is not None:
                await bandits.close()
            await backend.close(stop_replicas=True)
            bandit_state.close()
            store.close()
            log.info("wharf is down")
