"""Draw the dashboard's Throughput panel for one receiver and one time range, as an SVG.

    python scripts/render_throughput_chart.py --prometheus http://127.0.0.1:9090 \\
        --instance 10.0.0.5:9710 --start 2025-06-01T10:00:00Z --end 2025-06-01T10:20:00Z

runs the panel's own queries (from dashboards/cvm-migrate.json, so the picture is what the
dashboard shows) through Prometheus' /api/v1/query_range and writes docs/throughput.svg.
The SVG is written by hand: the script needs nothing but the standard library.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DASHBOARD = REPO_ROOT / "dashboards" / "cvm-migrate.json"
DEFAULT_OUT = REPO_ROOT / "docs" / "throughput.svg"
# Grafana's $__rate_interval is at least four scrape intervals; 20s fits the 5 s scrape of
# deploy/monitoring/prometheus.yml.
DEFAULT_RATE_INTERVAL = "20s"
# About this many points across the chart when --step is not given.
DEFAULT_POINTS = 300
HTTP_TIMEOUT_S = 30.0

WIDTH, HEIGHT = 800, 340
LEFT, RIGHT, TOP, BOTTOM = 78, 20, 48, 78  # plot margins, pixels
# matplotlib's tab10: readable on the white background of a README.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
BINARY_UNITS = ("B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s")


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Series:
    legend: str
    points: list[tuple[float, float]]  # (unix seconds, bytes per second); NaN for none


def panel_queries(dashboard: dict[str, Any], title: str) -> list[Query]:
    """The queries of the dashboard's panel called `title`, in the panel's order."""
    for panel in dashboard["panels"]:
        if panel.get("title") == title:
            return [Query(t["expr"], t.get("legendFormat", "")) for t in panel["targets"]]
    raise LookupError(f"the dashboard has no panel {title!r}")


def substitute(expr: str, instance: str, rate_interval: str) -> str:
    """What Grafana sends: the variables replaced (a single instance is matched literally)."""
    escaped = re.escape(instance).replace("\\", "\\\\")  # a PromQL string holds the regex
    return expr.replace("$instance", escaped).replace("$__rate_interval", rate_interval)


def query_range(
    prometheus: str, expr: str, start: float, end: float, step: float
) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    url = f"{prometheus.rstrip('/')}/api/v1/query_range?{params}"
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body.get('error', body)}")
    return list(body["data"]["result"])


def legend_for(template: str, labels: dict[str, str]) -> str:
    """Grafana's legend format: {{label}} replaced by the series' label value."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def fetch_series(
    prometheus: str, queries: Sequence[Query], start: float, end: float, step: float
) -> list[Series]:
    series = []
    for query in queries:
        for result in query_range(prometheus, query.expr, start, end, step):
            points = [(float(t), float(v)) for t, v in result["values"]]
            series.append(Series(legend_for(query.legend, result["metric"]), points))
    return series


def nice_step(span: float, count: int) -> float:
    """A step of 1, 2 or 5 times a power of ten that cuts `span` into about `count` parts."""
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _binary_unit(peak: float) -> tuple[str, float]:
    exponent = 0 if peak < 1 else min(int(math.log(peak, 1024)), len(BINARY_UNITS) - 1)
    return BINARY_UNITS[exponent], 1024.0**exponent


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}:{seconds:02d}"


def _path(points: Sequence[tuple[float, float]]) -> str:
    """SVG path data; a NaN (no data) breaks the line rather than drawing through it."""
    commands, pen_down = [], False
    for x, y in points:
        if math.isnan(y):
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        pen_down = True
    return " ".join(commands)


def render_svg(
    title: str, subtitle: str, series: Sequence[Series], start: float, end: float
) -> str:
    finite = [v for s in series for _, v in s.points if math.isfinite(v)]
    peak = max(finite, default=0.0)
    unit, scale = _binary_unit(peak)
    y_step = nice_step(max(peak / scale, 1e-9), 5)
    y_top = y_step * math.ceil(max(peak / scale, y_step) / y_step)
    x_step = nice_step(max(end - start, 1.0), 8)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(t: float) -> float:
        return LEFT + (t - start) / max(end - start, 1e-9) * plot_w

    def y_of(v: float) -> float:
        return TOP + plot_h - v / scale / y_top * plot_h if math.isfinite(v) else math.nan

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<text x="{LEFT}" y="37" fill="#555555">{escape(subtitle)}</text>',
    ]
    for i in range(round(y_top / y_step) + 1):
        value = i * y_step
        y = TOP + plot_h - value / y_top * plot_h
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" '
            f'stroke="#e0e0e0"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g} {unit}</text>'
        )
    for i in range(int((end - start) // x_step) + 1):
        x = x_of(start + i * x_step)
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#f0f0f0"/>'
            f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
            f"{_clock(i * x_step)}</text>"
        )
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="#999999"/>'
    )
    legend_x = LEFT
    for i, one in enumerate(series):
        color = COLORS[i % len(COLORS)]
        data = _path([(x_of(t), y_of(v)) for t, v in one.points])
        # Series often coincide (raw and written, with no holes in the files): each is
        # drawn thinner than the one before, and dashed from the third on, so the earlier
        # ones still show around and through it.
        width = max(1.2, 3.4 - 1.0 * i)
        dashes = ' stroke-dasharray="6 4"' if i >= 2 else ""
        out.append(
            f'<path class="series" d="{data}" fill="none" stroke="{color}" '
            f'stroke-width="{width:g}"{dashes} stroke-linejoin="round"/>'
        )
        legend_y = HEIGHT - 22
        out.append(
            f'<rect x="{legend_x}" y="{legend_y - 9}" width="14" height="4" fill="{color}"/>'
            f'<text x="{legend_x + 20}" y="{legend_y - 3}">{escape(one.legend)}</text>'
        )
        legend_x += 30 + 7 * len(one.legend)
    out.append(
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 25}" text-anchor="end" fill="#555555">'
        "minutes:seconds</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def parse_time(text: str) -> float:
    """Unix seconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        return float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    parser.add_argument("--instance", required=True, help="the receiver's instance label")
    parser.add_argument("--start", required=True, type=parse_time, help="unix s or ISO 8601")
    parser.add_argument("--end", required=True, type=parse_time, help="unix s or ISO 8601")
    parser.add_argument("--step", type=float, help="seconds between points")
    parser.add_argument(
        "--rate-interval",
        default=DEFAULT_RATE_INTERVAL,
        help=f"$__rate_interval: 4x the scrape interval (default {DEFAULT_RATE_INTERVAL})",
    )
    parser.add_argument("--dashboard", type=Path, default=DEFAULT_DASHBOARD)
    parser.add_argument("--panel", default="Throughput", help="the panel's title")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    if args.end <= args.start:
        print("render_throughput_chart: --end must be after --start", file=sys.stderr)
        return 2
    step = args.step or max(1.0, (args.end - args.start) / DEFAULT_POINTS)
    queries = [
        Query(substitute(q.expr, args.instance, args.rate_interval), q.legend)
        for q in panel_queries(json.loads(args.dashboard.read_text()), args.panel)
    ]
    series = fetch_series(args.prometheus, queries, args.start, args.end, step)
    if not series:
        print("render_throughput_chart: the queries returned no data", file=sys.stderr)
        return 1
    began = datetime.fromtimestamp(args.start, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    subtitle = f"receiver {args.instance}, from {began}, rate over {args.rate_interval}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_svg(args.panel, subtitle, series, args.start, args.end))
    print(f"wrote {args.out}: {len(series)} series, {step:g} s apart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
