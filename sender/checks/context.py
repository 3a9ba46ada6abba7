"""What the checks look at: the host system, the source tree, the receiver, the clock."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from common.pb.migrate.v1 import receiver_pb2 as pb
from sender.checks.receiver_contact import ReceiverContact, contact_receiver
from sender.logs import DEFAULT_LOG_FILE
from sender.transport import Endpoint
from sender.tree_count import TreeCount, count_tree
from sender.walk import WalkOptions

if TYPE_CHECKING:  # sender.migration may import the checks to run them first
    from sender.migration import RunOptions

# Where the sender's container sees the host's / (docker run -v /:/host:ro).
CONTAINER_HOST_ROOT = Path("/host")
# Files docker and podman create at the root of every container.
_CONTAINER_MARKERS = (Path("/.dockerenv"), Path("/run/.containerenv"))


def running_in_container() -> bool:
    return any(marker.exists() for marker in _CONTAINER_MARKERS)


def default_host_root() -> Path:
    """/host in a container that has the host's / there, else /."""
    if running_in_container() and (CONTAINER_HOST_ROOT / "etc" / "os-release").exists():
        return CONTAINER_HOST_ROOT
    return Path("/")


def _running_kernel() -> str:
    # A container runs on the host's kernel, so this is the host's release too.
    return os.uname().release


@dataclass
class CheckContext:
    # The system being migrated, as mounted here: / or, in the container, /host.
    host_root: Path
    # SRC of the run, counted for the target-space check.
    source: Path
    # The run's excludes; None means the target-space check has nothing to plan with.
    walk: WalkOptions | None = None
    # The receiver; None skips the checks that need one.
    endpoint: Endpoint | None = None
    clock: Callable[[], float] = time.time
    kernel_release: str = field(default_factory=_running_kernel)
    euid: int = field(default_factory=os.geteuid)
    in_container: bool = field(default_factory=running_in_container)
    # Where the sender writes its logs.
    log_dir: Path = DEFAULT_LOG_FILE.parent
    # SRC as counted by count_source(), once a check has asked for it.
    source_count: TreeCount | None = None

    @classmethod
    def for_run(
        cls, options: RunOptions, *, host_root: Path | None = None, log_dir: Path | None = None
    ) -> CheckContext:
        """The context of a run's preflight."""
        return cls(
            host_root=host_root if host_root is not None else default_host_root(),
            source=options.source,
            walk=options.walk,
            endpoint=options.endpoint,
            log_dir=log_dir if log_dir is not None else DEFAULT_LOG_FILE.parent,
        )

    def count_source(self) -> TreeCount:
        """SRC counted as the run walks it; kept, so the run need not walk it again."""
        if self.source_count is None:
            assert self.walk is not None
            # A symlink to the source directory is followed, as the run does for SRC.
            source = os.fsencode(os.path.realpath(self.source))
            self.source_count = count_tree(source, self.walk)
        return self.source_count

    @functools.cached_property
    def receiver(self) -> ReceiverContact | None:
        """The answer to one Hello, asked the first time a check needs it."""
        if self.endpoint is None:
            return None
        rules = self.walk.rules.to_wire() if self.walk is not None else []
        # A probe opens no session on the receiver.
        request = pb.HelloRequest(exclude_rules=rules, probe=True)
        return contact_receiver(self.endpoint, request, self.clock)
