"""The sender's /metrics (--metrics-listen): a view of the run's RunStats."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from common.errors import ConfigError
from common.metrics_http import serve_registry
from sender.stats import RunStats

PREFIX = "cvm_migrate_sender"

_COUNTERS = (
    ("bytes_sent_raw", "sent_raw_bytes", "File bytes sent, uncompressed."),
    ("bytes_sent_wire", "sent_wire_bytes", "Frame payload bytes sent on the wire."),
    ("bytes_resumed", "resumed_bytes", "File bytes the receiver already held from a run before."),
    ("files_transferred", "files_transferred", "Files sent and committed by the receiver."),
    ("files_skipped", "files_skipped", "Files already current on the receiver."),
    ("files_failed", "files_failed", "Entries that failed."),
)
_GAUGES = (
    ("scan_files", "planned_files", "Regular files the run covers (pre-scan)."),
    ("scan_bytes", "planned_bytes", "Bytes of regular files the run covers (pre-scan)."),
    ("done_files", "done_files", "Files current on the receiver."),
    ("done_bytes", "done_bytes", "File bytes current or durable on the receiver."),
    ("attempts", "attempts", "Attempts of this run (more after a dropped link)."),
)


class SenderCollector(Collector):
    def __init__(self, stats: RunStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        for key, name, help_text in _COUNTERS:
            counter = CounterMetricFamily(f"{PREFIX}_{name}", help_text)
            counter.add_metric([], getattr(self._stats, key))
            yield counter
        frames = CounterMetricFamily(
            f"{PREFIX}_frames",
            "Data frames sent, by the zstd level in force for each (0: raw).",
            labels=["level"],
        )
        for level, count in sorted(self._stats.frame_levels().items()):
            frames.add_metric([str(level)], count)
        yield frames
        for key, name, help_text in _GAUGES:
            yield GaugeMetricFamily(f"{PREFIX}_{name}", help_text, getattr(self._stats, key))


def serve_sender_metrics(listen: str, stats: RunStats) -> int:
    """Serve /metrics on HOST:PORT; returns the port."""
    registry = CollectorRegistry()
    registry.register(SenderCollector(stats))
    ProcessCollector(registry=registry)
    try:
        return serve_registry(listen, registry)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot serve metrics on {listen}: {exc}") from exc
