"""`cvm-migrate verify`: does the target hold exactly what the source has?

The sender walks the source as a run would, with each regular file's content
hash, and streams the manifest through the Verify call; the receiver answers
with one difference per path that is missing, extra, or differs in content,
kind or metadata.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc

from common.content_hash import file_digest
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import display
from sender.connection import ReceiverClient, translate
from sender.migration import RunOptions, source_root
from sender.planner import BATCH_ENTRIES, manifest
from sender.source_file import open_source
from sender.stats import RunStats

KIND_NAMES = {
    pb.DIFFERENCE_KIND_MISSING: "missing",
    pb.DIFFERENCE_KIND_EXTRA: "extra",
    pb.DIFFERENCE_KIND_CONTENT: "content",
    pb.DIFFERENCE_KIND_METADATA: "metadata",
    pb.DIFFERENCE_KIND_TYPE: "type",
}


@dataclass
class VerifyTotals:
    checked: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def identical(self) -> bool:
        return not self.counts

    def line(self) -> str:
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))
        verdict = "identical" if self.identical else f"{sum(self.counts.values())} differences"
        return f"verify: {self.checked} entries checked: {verdict}" + (
            f" ({found})" if found else ""
        )


def describe_difference(difference: pb.Difference) -> str:
    """One line: kind, path, and what differs."""
    kind = KIND_NAMES.get(difference.kind, "unknown")
    detail = f": {difference.detail}" if difference.detail else ""
    return f"{kind:<8} {display(difference.path)}{detail}"


def with_content_hashes(
    entries: Iterator[pb.Entry], source: bytes, stats: RunStats
) -> Iterator[pb.Entry]:
    """The manifest with each regular file's xxh3-128; unreadable files are left out."""
    for entry in entries:
        if entry.kind == pb.ENTRY_KIND_FILE:
            try:
                fd = open_source(os.path.join(source, entry.path))
                try:
                    entry.content_xxh3_128 = file_digest(fd, entry.size)
                finally:
                    os.close(fd)
            except OSError as exc:
                stats.warn(f"cannot read {display(entry.path)}: {exc.strerror}")
                stats.add(files_failed=1)
                continue
        yield entry


def run_verify(
    options: RunOptions, stats: RunStats, report: Callable[[pb.Difference], None]
) -> VerifyTotals:
    source = source_root(options.source)
    client = ReceiverClient(options.endpoint)
    totals = VerifyTotals()
    try:
        hello = client.hello(options.hello_request())
        entries = with_content_hashes(manifest(source, options.walk, stats), source, stats)

        def requests() -> Iterator[pb.VerifyRequest]:
            batch: list[pb.Entry] = []
            for entry in entries:
                batch.append(entry)
                if len(batch) >= BATCH_ENTRIES:
                    yield pb.VerifyRequest(session_id=hello.session_id, entries=batch)
                    batch = []
            yield pb.VerifyRequest(session_id=hello.session_id, entries=batch)

        for response in client.verify(requests()):
            totals.checked += response.checked
            for difference in response.differences:
                totals.counts[KIND_NAMES.get(difference.kind, "unknown")] += 1
                report(difference)
    except grpc.RpcError as exc:
        raise translate(exc, options.endpoint.address) from None
    finally:
        client.close()
    return totals
