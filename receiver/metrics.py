"""The receiver's /metrics for Prometheus: a view of ReceiverStats at scrape time.

Names follow Prometheus conventions: one prefix, units in the names, counters
ending in _total, and labels with a few fixed values (never paths or
tokens). Throughput is `rate()` of the byte counters; there is no speed gauge.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from common.version import PROTOCOL_VERSION, SOFTWARE_VERSION
from receiver.stats import Histogram, ReceiverStats

PREFIX = "cvm_migrate"

# (counter key in ReceiverStats.counters, metric name without prefix/_total, help)
_COUNTERS = (
    ("received_wire_bytes", "received_wire_bytes", "Frame payload bytes received, as sent."),
    ("received_raw_bytes", "received_raw_bytes", "File bytes received, decompressed."),
    ("written_bytes", "written_bytes", "Bytes written to disk, holes excluded."),
    ("frames", "frames", "Content frames (chunks) received."),
    ("entries_planned", "entries_planned", "Manifest entries planned."),
    ("files_committed", "files_committed", "Files made whole and renamed into place."),
    ("files_skipped", "files_skipped", "Files already current, no content moved."),
    ("files_failed", "files_failed", "Entries that failed on the receiver."),
    ("files_resumed", "files_resumed", "Partial files resumed from a durable offset."),
    ("deleted", "deleted_entries", "Entries removed by --delete."),
)


_ALWAYS_REPORTED_CODES = frozenset(
    {
        "UNAUTHENTICATED",
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "DATA_LOSS",
        "RESOURCE_EXHAUSTED",
        "NOT_FOUND",
        "CANCELLED",
        "UNKNOWN",
        "INTERNAL",
    }
)


class ReceiverCollector(Collector):
    def __init__(self, stats: ReceiverStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats.snapshot()
        for key, name, help_text in _COUNTERS:
            family = CounterMetricFamily(f"{PREFIX}_{name}", help_text)
            family.add_metric([], stats.counters[key])
            yield family
        errors = CounterMetricFamily(
            f"{PREFIX}_errors", "Calls that ended in an error, by gRPC code.", labels=["code"]
        )
        # The usual codes are always there, at 0 until they happen, so a
        # dashboard panel has a series before the first error.
        for code in sorted(_ALWAYS_REPORTED_CODES | stats.errors.keys()):
            errors.add_metric([code], stats.errors[code])
        yield errors
        streams = GaugeMetricFamily(
            f"{PREFIX}_active_streams", "Streams being served, by method.", labels=["method"]
        )
        for method in ("plan", "transfer", "verify"):
            streams.add_metric([method], stats.active_streams[method])
        yield streams
        yield GaugeMetricFamily(
            f"{PREFIX}_sessions_open", "Sessions opened and not finished.", stats.sessions_open
        )
        yield from _session_gauges(stats)
        yield _histogram(
            "frame_write_seconds", "Time to check and write one frame.", stats.frame_write
        )
        yield _histogram("sync_seconds", "Time to make one sync group durable.", stats.sync)
        info = InfoMetricFamily(f"{PREFIX}_build", "The receiver's version.")
        info.add_metric([], {"version": SOFTWARE_VERSION, "protocol": str(PROTOCOL_VERSION)})
        yield info


def _session_gauges(stats: ReceiverStats) -> Iterator[Metric]:
    session = stats.session
    for name, value, help_text in (
        ("session_planned_files", session.planned_files, "Files the current session must send."),
        ("session_planned_bytes", session.planned_bytes, "Bytes the current session must send."),
        ("session_done_files", session.done_files, "Files of the current session committed."),
        ("session_done_bytes", session.done_bytes, "Bytes of the current session durable."),
    ):
        yield GaugeMetricFamily(f"{PREFIX}_{name}", help_text, value)


def _histogram(name: str, help_text: str, histogram: Histogram) -> Metric:
    family = HistogramMetricFamily(f"{PREFIX}_{name}", help_text)
    family.add_metric([], histogram.cumulative(), histogram.total)
    return family


def registry_for(stats: ReceiverStats) -> CollectorRegistry:
    """Our metrics, and the process's (RSS, CPU, open files) as Prometheus names them."""
    registry = CollectorRegistry()
    registry.register(ReceiverCollector(stats))
    ProcessCollector(registry=registry)
    return registry
