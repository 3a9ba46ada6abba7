"""Two network namespaces joined by a shaped veth pair: a private link the test can cut.

As in /work/shared/TESTING.md: the sender's side is 192.0.2.1/24, the receiver's side
192.0.2.2/24 (a documentation range), both ends shaped with tbf. Names are unique per use so
tests can run side by side, and the namespaces are deleted in a `finally` (which also
removes the veth pair). Nothing here routes to any other address.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.e2e.faults_support import run_command

SRC_ADDRESS = "192.0.2.1"
DST_ADDRESS = "192.0.2.2"


@dataclass(frozen=True)
class Link:
    src_ns: str
    dst_ns: str
    src_dev: str
    dst_dev: str

    def in_src(self) -> tuple[str, ...]:
        """The command prefix that runs a program in the sender's namespace."""
        return ("ip", "netns", "exec", self.src_ns)

    def in_dst(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.dst_ns)

    def cut(self) -> None:
        run_command("ip", "-n", self.src_ns, "link", "set", self.src_dev, "down")

    def heal(self) -> None:
        run_command("ip", "-n", self.src_ns, "link", "set", self.src_dev, "up")


@contextmanager
def shaped_link(rate: str = "100mbit") -> Iterator[Link]:
    """A fresh pair of namespaces and a veth link between them shaped to `rate`."""
    tag = secrets.token_hex(3)
    link = Link(f"cvmf-src-{tag}", f"cvmf-dst-{tag}", f"vs{tag}", f"vd{tag}")
    try:
        run_command("ip", "netns", "add", link.src_ns)
        run_command("ip", "netns", "add", link.dst_ns)
        run_command("ip", "link", "add", link.src_dev, "type", "veth", "peer", "name", link.dst_dev)
        run_command("ip", "link", "set", link.src_dev, "netns", link.src_ns)
        run_command("ip", "link", "set", link.dst_dev, "netns", link.dst_ns)
        for ns, dev, address in (
            (link.src_ns, link.src_dev, SRC_ADDRESS),
            (link.dst_ns, link.dst_dev, DST_ADDRESS),
        ):
            run_command("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            run_command("ip", "-n", ns, "link", "set", dev, "up")
            run_command("ip", "-n", ns, "link", "set", "lo", "up")
            run_command(
                "tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
                "rate", rate, "burst", "256kb", "latency", "50ms",
            )  # fmt: skip
        yield link
    finally:
        for ns in (link.src_ns, link.dst_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        # Only left if the pair was never moved into the namespaces.
        subprocess.run(["ip", "link", "del", link.src_dev], capture_output=True, check=False)
