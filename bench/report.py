"""Results: one Measurement per transfer; medians per dataset x topology x tool; a table
for the terminal, the same as markdown, and everything as JSON."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

NOTES = (
    "Times are wall seconds from the start of the client command to the end of a `sync` run "
    "after it on the target side, for every tool (rsync does no fsync; cvm-migrate makes its "
    "data durable itself before it exits, so its `sync` finds little to do). The page cache "
    "is dropped before every transfer (cold source reads for all), each transfer goes into "
    "a fresh empty target (and a fresh state dir for cvm-migrate), and the tools alternate "
    "within a round, the starting tool rotating from round to round. MB/s is apparent bytes "
    "of regular files / s (MB = 10^6 B); files/s is regular files / s. Peak RSS is GNU "
    "time's maximum resident set of one process: the client (sender), and the server "
    "(cvm-migrate receiver; for rsync the daemon and the per-connection processes it forks, "
    "the largest one). Wire MB: bytes the client sent (cvm-migrate summary bytes_sent_wire: "
    "payload; rsync --stats 'Total bytes sent'). vs rsync: cvm-migrate median time / rsync "
    "median time (below 1: cvm-migrate faster). failed: transfers that failed (not timed)."
)


@dataclass(frozen=True)
class Measurement:
    dataset: str
    topology: str
    tool: str
    round: int
    seconds: float  # client start .. end of the target-side sync
    client_seconds: float  # client start .. client exit
    files: int
    bytes: int
    client_rss_kib: int | None
    server_rss_kib: int | None
    wire_bytes: float | None
    load1: float  # 1-minute load average just before the transfer (others share the host)


@dataclass(frozen=True)
class Failure:
    dataset: str
    topology: str
    tool: str
    round: int
    error: str


@dataclass(frozen=True)
class Row:
    dataset: str
    topology: str
    tool: str
    rounds: int
    median_s: float | None  # None: every transfer failed
    min_s: float | None
    max_s: float | None
    mb_per_s: float | None
    files_per_s: float | None
    client_rss_mib: float | None
    server_rss_mib: float | None
    wire_mb: float | None
    vs_rsync_a: float | None
    vs_rsync_az: float | None
    failed: int  # transfers of this dataset x topology x tool that failed (not in the times)


def _max_mib(values: Sequence[int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) / 1024 if known else None


def _ratio(
    medians: dict[tuple[str, str, str], float], key: tuple[str, str, str], baseline: str
) -> float | None:
    """cvm-migrate's median time over `baseline`'s, on the same dataset and topology."""
    base = medians.get((key[0], key[1], baseline))
    own = medians.get(key)
    return own / base if key[2] == "cvm-migrate" and own and base else None


def summarize(measurements: Sequence[Measurement], failures: Sequence[Failure] = ()) -> list[Row]:
    """One row per dataset x topology x tool, in the order they ran; a combination whose
    every transfer failed still gets a row (no times, its failure count)."""
    groups: dict[tuple[str, str, str], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.dataset, m.topology, m.tool), []).append(m)
    failed: dict[tuple[str, str, str], int] = {}
    for f in failures:
        key = (f.dataset, f.topology, f.tool)
        failed[key] = failed.get(key, 0) + 1
    medians = {key: statistics.median(m.seconds for m in ms) for key, ms in groups.items()}
    seen = [(m.topology, m.dataset, m.tool) for m in measurements]
    seen += [(f.topology, f.dataset, f.tool) for f in failures]
    topos = list(dict.fromkeys(t for t, _, _ in seen))
    names = list(dict.fromkeys(d for _, d, _ in seen))
    tools = sorted(dict.fromkeys(t for _, _, t in seen), key=lambda t: (t != "cvm-migrate", t))
    keys = sorted(
        {*groups, *failed},
        key=lambda k: (topos.index(k[1]), names.index(k[0]), tools.index(k[2])),
    )
    rows = []
    for key in keys:
        ms = groups.get(key, [])
        median = medians.get(key)
        wires = [m.wire_bytes for m in ms if m.wire_bytes is not None]
        rows.append(
            Row(
                dataset=key[0],
                topology=key[1],
                tool=key[2],
                rounds=len(ms),
                median_s=median,
                min_s=min((m.seconds for m in ms), default=None),
                max_s=max((m.seconds for m in ms), default=None),
                mb_per_s=ms[0].bytes / 1e6 / median if ms and median else None,
                files_per_s=ms[0].files / median if ms and median else None,
                client_rss_mib=_max_mib([m.client_rss_kib for m in ms]),
                server_rss_mib=_max_mib([m.server_rss_kib for m in ms]),
                wire_mb=statistics.median(wires) / 1e6 if wires else None,
                vs_rsync_a=_ratio(medians, key, "rsync-a"),
                vs_rsync_az=_ratio(medians, key, "rsync-az"),
                failed=failed.get(key, 0),
            )
        )
    return rows


HEADERS = (
    "dataset",
    "topology",
    "tool",
    "n",
    "median s",
    "min-max s",
    "MB/s",
    "files/s",
    "RSS snd MiB",
    "RSS rcv MiB",
    "wire MB",
    "vs rsync -a",
    "vs rsync -az",
    "failed",
)


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _cells(row: Row) -> list[str]:
    return [
        row.dataset,
        row.topology,
        row.tool,
        str(row.rounds),
        _opt(row.median_s, ".2f"),
        "-" if row.min_s is None else f"{row.min_s:.2f}-{row.max_s:.2f}",
        _opt(row.mb_per_s, ".1f"),
        _opt(row.files_per_s, ".0f" if (row.files_per_s or 0) >= 10 else ".2f"),
        _opt(row.client_rss_mib, ".0f"),
        _opt(row.server_rss_mib, ".0f"),
        _opt(row.wire_mb, ".1f"),
        _opt(row.vs_rsync_a, ".2f"),
        _opt(row.vs_rsync_az, ".2f"),
        str(row.failed),
    ]


def text_table(rows: Sequence[Row]) -> str:
    table = [list(HEADERS), *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    numeric = set(range(3, len(HEADERS)))

    def fmt(line: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(table[0]), rule, *(fmt(line) for line in table[1:])])


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |"]
    lines.append("|" + "|".join("---" if i < 3 else "---:" for i in range(len(HEADERS))) + "|")
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def write_documents(
    out_dir: Path, stem: str, title: str, document: dict[str, Any], body: Sequence[str]
) -> tuple[Path, Path]:
    """`stem`.json, the whole document; `stem`.md, the title, the document's meta as a
    list, then `body`'s lines. Used by run.py and floors.py alike."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    meta = document["meta"]
    header = [f"# {title} ({meta.get('started', '')})", ""]
    header += [f"- {key}: `{value}`" for key, value in meta.items()]
    md_path.write_text("\n".join([*header, "", *body]) + "\n")
    return json_path, md_path


def write_results(
    out_dir: Path,
    meta: dict[str, Any],
    measurements: Sequence[Measurement],
    failures: Sequence[Failure],
    rows: Sequence[Row],
) -> tuple[Path, Path]:
    document = {
        "meta": meta,
        "notes": NOTES,
        "rows": [asdict(r) for r in rows],
        "measurements": [asdict(m) for m in measurements],
        "failures": [asdict(f) for f in failures],
    }
    failed = [
        f"- FAILED {f.dataset} {f.topology} {f.tool} r{f.round}: " + f.error.splitlines()[0]
        for f in failures
    ]
    body = [markdown_table(rows), "", NOTES, "", *failed]
    return write_documents(out_dir, "latest", "cvm-migrate vs rsync", document, body)
