"""The end-of-run summary: for people on stdout, for machines as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.pb.migrate.v1 import receiver_pb2 as pb

# Warnings listed in the human summary; all of them are in the JSON file.
_SHOWN_WARNINGS = 20


def human_size(n: float) -> str:
    """Bytes for people: '512 B', '1.5 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def human_summary(summary: dict[str, Any], source: str, target: str) -> str:
    elapsed = max(float(summary["elapsed_s"]), 1e-9)
    raw, wire = summary["bytes_sent_raw"], summary["bytes_sent_wire"]
    ratio = f"{raw / wire:.2f}" if wire else "-"
    code = summary["exit_code"]
    outcome = "done" if code == 0 else f"exit code {code}"
    lines = [
        f"{source} -> {target}: {outcome} in {elapsed:.2f} s",
        f"  files   {summary['files_total']} in plan, {summary['files_transferred']} sent, "
        f"{summary['files_skipped']} unchanged, {summary['files_failed']} failed; "
        f"{summary['hardlinks']} hardlinks, {summary['sockets_skipped']} sockets skipped",
        f"  bytes   {human_size(summary['bytes_total'])} in plan, {human_size(raw)} sent "
        f"({human_size(raw / elapsed)}/s), {human_size(wire)} on the wire (compression {ratio})",
    ]
    levels = summary.get("frames_per_level") or {}
    if levels:
        per_level = ", ".join(f"level {level}: {n}" for level, n in levels.items())
        mean = summary["compress_level_mean"]
        lines.append(
            f"  zstd    mean level {mean:.1f} over {sum(levels.values())} frames ({per_level})"
        )
    warnings = summary["warnings"]
    if summary["warnings_count"]:
        lines.append(f"  warnings {summary['warnings_count']}:")
        lines += [f"    {w}" for w in warnings[:_SHOWN_WARNINGS]]
        if summary["warnings_count"] > _SHOWN_WARNINGS:
            lines.append(f"    ... {summary['warnings_count'] - _SHOWN_WARNINGS} more")
    return "\n".join(lines)


def describe_status(status: pb.StatusResponse) -> str:
    """The receiver's view of its current session, for `cvm-migrate status`."""
    if not status.session_id:
        return "no session yet"
    done = status.bytes_durable
    pct = f"{100 * done / status.bytes_to_send:.1f}%" if status.bytes_to_send else "-"
    state = "finished" if status.finished else "in progress"
    return "\n".join(
        [
            f"session {status.session_id}: {state}",
            f"  entries planned  {status.entries_planned}",
            f"  files            {status.files_committed} of {status.files_to_send} committed",
            f"  bytes            {human_size(done)} of {human_size(status.bytes_to_send)}"
            f" durable ({pct})",
        ]
    )


def write_summary_json(path: Path, summary: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a summary."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(path)
