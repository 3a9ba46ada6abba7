"""End to end: the receiver's /metrics as Prometheus and the Grafana dashboard read it.

A real Prometheus (Debian's `prometheus` package: the server and promtool) scrapes a real
receiver every second during a real migration, slowed by a throttled loopback link so that
it spans many scrapes, and every query of dashboards/cvm-migrate.json must parse and return
numbers: a dashboard whose panels show no data is a broken dashboard. The metric values are
checked against the sender's own summary, and the monitoring stack's configuration
(deploy/monitoring) against the files it names.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:  # fixtures come from conftest; importing it at run time would load it twice
    from tests.conftest import ReceiverProcess, RunSender, StartReceiver

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the receiver keeps owners as root")

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_PATH = REPO_ROOT / "dashboards" / "cvm-migrate.json"
MONITORING = REPO_ROOT / "deploy" / "monitoring"
CHART_SCRIPT = REPO_ROOT / "scripts" / "render_throughput_chart.py"
INSTALL_HINT = "apt-get install -y --no-install-recommends prometheus"

MIB = 1 << 20
JOB = "cvm-migrate"
SCRAPE_INTERVAL = "1s"
# What Grafana makes of $__rate_interval with a 1 s scrape: four scrape intervals, plus one.
RATE_INTERVAL = "5s"
PROMETHEUS_READY_S = 15.0
# The first scrape lands about 5 s after Prometheus starts (TESTING.md).
FIRST_SCRAPE_S = 20.0
HTTP_TIMEOUT_S = 10.0
# The migration the dashboard is queried over: 160 MiB in 10 MiB files, alternately random
# and log-like text (zstd -3 shrinks that text about 6x), so 92 MiB on the wire through a
# 6 MiB/s link: 15-16 s measured here, so some 15 scrapes and three $__rate_interval windows.
BIG_FILES = 16
BIG_FILE_SIZE = 10 * MIB
LINK_BYTES_PER_S = 6 * MIB
SLOW_RUN_ARGS = ("--compress-level", "3", "--streams", "1")
# Shorter, and the range queries would see too few $__rate_interval windows to mean much.
MIN_RUN_S = 10.0
UNAUTHENTICATED_EXIT = 6


# --- trees ------------------------------------------------------------------------------


def _write_text_like(path: Path, size: int, seed: int) -> None:
    """Log-like lines: compressible, but not one repeated block."""
    lines, written = [], 0
    while written < size:
        line = f"{seed:04d} {written:012d} GET /srv/data/{written * 7919 % 100003}.bin 200\n"
        lines.append(line)
        written += len(line)
    path.write_bytes("".join(lines).encode()[:size])


def _write_tree(root: Path, files: int, size: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        directory = root / f"dir{i % 3}"
        directory.mkdir(exist_ok=True)
        if i % 2:
            _write_text_like(directory / f"part{i:02d}.log", size, seed=i)
        else:
            (directory / f"part{i:02d}.bin").write_bytes(os.urandom(size))
    (root / "empty").write_bytes(b"")


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small-src")
    _write_tree(root, files=6, size=3 * MIB + 123)
    return root


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big-src")
    _write_tree(root, files=BIG_FILES, size=BIG_FILE_SIZE)
    return root


# --- the receiver's /metrics -------------------------------------------------------------


@dataclass(frozen=True)
class Metered:
    receiver: ReceiverProcess
    metrics_address: str

    def scrape(self) -> str:
        url = f"http://{self.metrics_address}/metrics"
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            return str(response.read().decode())

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(self.scrape())
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """A sample's value; 0 for one not exported (yet), as Prometheus reads a counter."""
        return self.samples().get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def metered_receiver(
    receiver: StartReceiver, tmp_path: Path, free_port: Callable[[], int]
) -> Callable[[], Metered]:
    """Starts a receiver whose metrics port is known (and so can be scraped)."""

    def start() -> Metered:
        address = f"127.0.0.1:{free_port()}"
        started = receiver(
            tmp_path / "dst", tmp_path / "state", extra_args=("--metrics-listen", address)
        )
        return Metered(started, address)

    (tmp_path / "dst").mkdir()
    return start


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(f"promtool is not installed: {INSTALL_HINT}", pytrace=False)
    return path


@needs_root
def test_metrics_pass_promtool_after_a_migration(
    metered_receiver: Callable[[], Metered], run_sender: RunSender, small_tree: Path
) -> None:
    metered = metered_receiver()
    run_sender(small_tree, metered.receiver)
    run_sender(small_tree, metered.receiver, token="wrong", check=False)  # an errors_total
    exposition = metered.scrape()
    assert 'cvm_migrate_errors_total{code="UNAUTHENTICATED"}' in exposition
    linted = subprocess.run(
        [_promtool(), "check", "metrics"], input=exposition, capture_output=True, text=True
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


@needs_root
def test_metrics_agree_with_the_sender_summary(
    metered_receiver: Callable[[], Metered], run_sender: RunSender, small_tree: Path
) -> None:
    metered = metered_receiver()
    summary = run_sender(small_tree, metered.receiver).summary
    assert summary is not None and summary["files_transferred"] > 0

    def value(name: str, **labels: str) -> float:
        return metered.value(f"cvm_migrate_{name}", **labels)

    assert value("frames_total") > 0
    assert value("received_raw_bytes_total") == summary["bytes_sent_raw"]
    assert value("received_wire_bytes_total") == summary["bytes_sent_wire"]
    assert value("files_committed_total") == summary["files_transferred"]
    assert value("session_done_bytes") == value("session_planned_bytes") == summary["bytes_total"]
    assert value("session_done_files") == value("session_planned_files")
    assert value("sessions_open") == 0
    assert value("errors_total", code="UNAUTHENTICATED") == 0

    refused = run_sender(small_tree, metered.receiver, token="wrong", check=False)
    assert refused.returncode == UNAUTHENTICATED_EXIT, refused.describe()
    assert value("errors_total", code="UNAUTHENTICATED") == 1
    assert value("files_committed_total") == summary["files_transferred"]


# --- a real Prometheus --------------------------------------------------------------------


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **params: str | float) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(
            f"{self.url}{path}?{query}", timeout=HTTP_TIMEOUT_S
        ) as response:
            return json.load(response)

    def api(self, path: str, **params: str | float) -> Any:
        """The `data` of a successful /api/v1 call; a failed one fails the test."""
        try:
            body = self.get(path, **params)
        except urllib.error.HTTPError as error:  # 400 for a query that does not parse
            body = json.loads(error.read() or b"{}")
        if body.get("status") != "success":
            pytest.fail(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def wait_for(self, what: str, timeout: float, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited {self.proc.returncode}\n{self.output()}")
            try:
                if check():
                    return
            except (OSError, ValueError):
                pass  # not listening yet, or not ready
            time.sleep(0.25)
        pytest.fail(f"{what} after {timeout} s\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="backslashreplace")[-4000:]


@pytest.fixture
def prometheus(
    tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[Callable[[str], Prometheus]]:
    """`prometheus(target)` starts a Prometheus scraping HOST:PORT every second."""
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail(f"prometheus is not installed: {INSTALL_HINT}", pytrace=False)
        config = tmp_path / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": SCRAPE_INTERVAL},
                    "scrape_configs": [
                        {"job_name": JOB, "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        address = f"127.0.0.1:{free_port()}"
        log = tmp_path / "prometheus.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address={address}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Prometheus(f"http://{address}", proc, log)
        started.append(server)

        def ready() -> bool:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)

        server.wait_for("prometheus not ready", PROMETHEUS_READY_S, ready)
        return server

    yield start

    for server in started:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


# --- a slow link ------------------------------------------------------------------------


class ThrottledLink:
    """A loopback TCP relay that paces the sender's bytes to `rate` bytes per second.

    Only the sender-to-receiver direction is paced (acknowledgements flow freely), and
    the pace is shared by all connections, as one link's would be.
    """

    CHUNK = 64 * 1024

    def __init__(self, upstream: str, rate: float) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._rate = rate
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._paced = 0
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self._upstream)
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, paced: bool) -> None:
        try:
            while data := source.recv(self.CHUNK):
                if paced:
                    time.sleep(self._delay(len(data)))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def _delay(self, size: int) -> float:
        """How long to hold `size` more bytes so the total so far keeps to the rate."""
        with self._lock:
            self._paced += size
            due = self._started + self._paced / self._rate
        return max(0.0, due - time.monotonic())

    def close(self) -> None:
        self._listener.close()
        for one in self._sockets:
            one.close()


@pytest.fixture
def throttled() -> Iterator[Callable[[str], ThrottledLink]]:
    links: list[ThrottledLink] = []

    def open_link(upstream: str) -> ThrottledLink:
        links.append(ThrottledLink(upstream, LINK_BYTES_PER_S))
        return links[-1]

    yield open_link
    for link in links:
        link.close()


# --- the dashboard against Prometheus ----------------------------------------------------


@dataclass(frozen=True)
class DashboardQuery:
    panel: str
    ref_id: str
    expr: str
    instant: bool


def _dashboard_queries(instance: str) -> list[DashboardQuery]:
    """Every query of the dashboard, as Grafana sends it for this one instance."""
    dashboard = json.loads(DASHBOARD_PATH.read_text())
    # Grafana escapes a single value for a regex matcher, and the PromQL string escapes it.
    instance_regex = re.escape(instance).replace("\\", "\\\\")
    queries = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            assert "$datasource" not in expr, f"{panel['title']}: a query names a data source"
            expr = expr.replace("$instance", instance_regex)
            expr = expr.replace("$__rate_interval", RATE_INTERVAL)
            assert "$" not in expr, f"{panel['title']}: a variable the test does not know"
            queries.append(
                DashboardQuery(panel["title"], target["refId"], expr, bool(target.get("instant")))
            )
    return queries


def _numbers(data: dict[str, Any]) -> list[float]:
    """The finite values of a query's result, instant or range."""
    values = [
        float(value)
        for series in data["result"]
        for _, value in ([series["value"]] if "value" in series else series["values"])
    ]
    return [value for value in values if math.isfinite(value)]


@needs_root
def test_every_dashboard_query_returns_data_during_a_real_migration(
    metered_receiver: Callable[[], Metered],
    run_sender: RunSender,
    prometheus: Callable[[str], Prometheus],
    throttled: Callable[[str], ThrottledLink],
    big_tree: Path,
    tmp_path: Path,
) -> None:
    metered = metered_receiver()
    server = prometheus(metered.metrics_address)
    instance = metered.metrics_address  # a static target's instance label is its address
    selector = f'{{job="{JOB}",instance="{instance}"}}'

    def scraped(expr: str, expected: float) -> Callable[[], bool]:
        def check() -> bool:
            result = server.api("/api/v1/query", query=expr)["result"]
            return bool(result) and float(result[0]["value"][1]) == expected

        return check

    server.wait_for("no scrape of the receiver", FIRST_SCRAPE_S, scraped(f"up{selector}", 1))

    # A refused sender first, so that the errors panel has a series to show.
    refused = run_sender(big_tree, metered.receiver, token="wrong", check=False)
    assert refused.returncode == UNAUTHENTICATED_EXIT, refused.describe()
    link = throttled(metered.receiver.address)
    started = time.time()
    result = run_sender(big_tree, replace(metered.receiver, address=link.address), *SLOW_RUN_ARGS)
    ended = time.time()
    summary = result.summary
    assert summary is not None
    raw_total = f"cvm_migrate_received_raw_bytes_total{selector}"
    server.wait_for(
        "the final counters not scraped",
        FIRST_SCRAPE_S,
        scraped(raw_total, float(summary["bytes_sent_raw"])),
    )
    print("migration:", {k: v for k, v in summary.items() if k != "warnings"})
    assert ended - started > MIN_RUN_S, f"the migration took {ended - started:.1f} s: too fast"

    labels = server.api("/api/v1/label/instance/values", **{"match[]": "cvm_migrate_build_info"})
    assert instance in labels, "the dashboard's instance variable would not offer the receiver"

    middle = (started + ended) / 2
    empty = []
    for query in _dashboard_queries(instance):
        if query.instant:
            data = server.api("/api/v1/query", query=query.expr, time=middle)
        else:
            data = server.api(
                "/api/v1/query_range", query=query.expr, start=started, end=ended, step=1
            )
        if not _numbers(data):
            empty.append(f"{query.panel} {query.ref_id}: {query.expr} -> {data['result']}")
    assert empty == [], "panels with no data:\n" + "\n".join(empty)

    progress = server.api(
        "/api/v1/query",
        query=f"cvm_migrate_session_done_bytes{selector} / cvm_migrate_session_planned_bytes",
    )
    assert _numbers(progress) == [1.0]

    chart = tmp_path / "throughput.svg"
    rendered = subprocess.run(
        [
            sys.executable,
            str(CHART_SCRIPT),
            *("--prometheus", server.url, "--instance", instance),
            *("--start", str(started), "--end", str(ended), "--step", "1"),
            *("--rate-interval", RATE_INTERVAL, "--out", str(chart)),
        ],
        capture_output=True,
        text=True,
    )
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    paths = ET.parse(chart).getroot().findall("{http://www.w3.org/2000/svg}path")
    assert len(paths) == 3 and all(path.get("d") for path in paths)


# --- the monitoring stack's configuration ------------------------------------------------


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_the_monitoring_stack_provisions_the_repository_dashboard() -> None:
    compose = _yaml(MONITORING / "docker-compose.yml")
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    provider = _yaml(MONITORING / "grafana/provisioning/dashboards/cvm-migrate.yml")
    (dashboards,) = provider["providers"]
    host_dir = next(
        host for host, inside in mounts.items() if inside == dashboards["options"]["path"]
    )
    assert (MONITORING / host_dir).resolve() == DASHBOARD_PATH.parent
    provisioning = MONITORING / next(
        h for h, c in mounts.items() if c == "/etc/grafana/provisioning"
    )
    assert provisioning.resolve() == (MONITORING / "grafana/provisioning").resolve()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards['options']['path']}/{DASHBOARD_PATH.name}"

    (datasource,) = _yaml(provisioning / "datasources/prometheus.yml")["datasources"]
    assert datasource["type"] == "prometheus" and datasource["uid"] == "prometheus"
    assert datasource["isDefault"] is True
    assert urllib.parse.urlsplit(datasource["url"]).hostname in compose["services"]


def test_the_monitoring_prometheus_config_passes_promtool() -> None:
    compose = _yaml(MONITORING / "docker-compose.yml")
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["prometheus"]["volumes"])
    config = MONITORING / next(h for h, c in mounts.items() if c.endswith("/prometheus.yml"))
    checked = subprocess.run(
        [_promtool(), "check", "config", str(config)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (job,) = _yaml(config)["scrape_configs"]
    assert job["job_name"] == JOB
