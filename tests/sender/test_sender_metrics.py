"""The sender's /metrics are a view of RunStats, served over HTTP, lint-clean."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from sender.metrics import serve_sender_metrics
from sender.stats import RunStats


def test_metrics_follow_the_run_stats_and_pass_promtool() -> None:
    stats = RunStats()
    stats.add(bytes_sent_raw=5000, bytes_sent_wire=1200, files_transferred=3, done_bytes=5000)
    stats.set_scan(4, 8000, complete=True)
    port = serve_sender_metrics("127.0.0.1:0", stats)
    url = f"http://127.0.0.1:{port}/metrics"

    text = urllib.request.urlopen(url, timeout=10).read().decode()
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples["cvm_migrate_sender_sent_raw_bytes_total"] == 5000
    assert samples["cvm_migrate_sender_sent_wire_bytes_total"] == 1200
    assert samples["cvm_migrate_sender_files_transferred_total"] == 3
    assert samples["cvm_migrate_sender_planned_bytes"] == 8000
    assert samples["cvm_migrate_sender_done_bytes"] == 5000

    stats.add(bytes_sent_raw=1)  # a view, not a copy: the next scrape sees it
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    assert "cvm_migrate_sender_sent_raw_bytes_total 5001.0" in text

    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (./dev test does)"
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
