"""Where the two ends run: on loopback, or in two network namespaces joined by a shaped
veth pair (TESTING.md, "A network between two hosts"). Only loopback and 192.0.2.1/.2 in
namespaces this module creates are ever used; the namespaces are deleted on the way out."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.proc import BenchError, run_quiet

SRC_NS, DST_NS = "cvmb-src", "cvmb-dst"
SRC_IF, DST_IF = "cvmb-s", "cvmb-d"
SRC_ADDR, DST_ADDR = "192.0.2.1", "192.0.2.2"
NAMES = ("loopback", "netns")


@dataclass(frozen=True)
class Topology:
    name: str
    server_addr: str  # where the receiver / rsync daemon listens
    client_prefix: tuple[str, ...]  # how to run a command on the source side
    server_prefix: tuple[str, ...]  # how to run a command on the target side
    description: str


LOOPBACK = Topology("loopback", "127.0.0.1", (), (), "127.0.0.1, both ends on the same host")


def _delete_namespaces() -> None:
    for ns in (SRC_NS, DST_NS):
        run_quiet(["ip", "netns", "del", ns], check=False)
    # A veth left in the host namespace by a setup that failed half way.
    run_quiet(["ip", "link", "del", SRC_IF], check=False)


def _exists(ns: str) -> bool:
    return ns in run_quiet(["ip", "netns", "list"], check=False).stdout.split()


@contextmanager
def netns_topology(rate: str) -> Iterator[Topology]:
    """cvmb-src (192.0.2.1) <-veth, tbf `rate` both ways-> cvmb-dst (192.0.2.2)."""
    if _exists(SRC_NS) or _exists(DST_NS):
        print(f"removing namespaces {SRC_NS}/{DST_NS} left by an earlier run")
    _delete_namespaces()
    steps = [
        ["ip", "netns", "add", SRC_NS],
        ["ip", "netns", "add", DST_NS],
        ["ip", "link", "add", SRC_IF, "type", "veth", "peer", "name", DST_IF],
        ["ip", "link", "set", SRC_IF, "netns", SRC_NS],
        ["ip", "link", "set", DST_IF, "netns", DST_NS],
        ["ip", "-n", SRC_NS, "addr", "add", f"{SRC_ADDR}/24", "dev", SRC_IF],
        ["ip", "-n", DST_NS, "addr", "add", f"{DST_ADDR}/24", "dev", DST_IF],
        ["ip", "-n", SRC_NS, "link", "set", SRC_IF, "up"],
        ["ip", "-n", DST_NS, "link", "set", DST_IF, "up"],
        ["ip", "-n", SRC_NS, "link", "set", "lo", "up"],
        ["ip", "-n", DST_NS, "link", "set", "lo", "up"],
    ]
    for ns, dev in ((SRC_NS, SRC_IF), (DST_NS, DST_IF)):
        tbf = ["tbf", "rate", rate, "burst", "256kb", "latency", "50ms"]
        steps.append(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", *tbf])
    try:
        for step in steps:
            try:
                run_quiet(step)
            except subprocess.CalledProcessError as exc:
                raise BenchError(f"{' '.join(step)}: {exc.stderr.strip()}") from None
        yield Topology(
            "netns",
            DST_ADDR,
            ("ip", "netns", "exec", SRC_NS),
            ("ip", "netns", "exec", DST_NS),
            f"veth {SRC_ADDR} -> {DST_ADDR}, tbf rate {rate} burst 256kb latency 50ms each way",
        )
    finally:
        _delete_namespaces()


@contextmanager
def topology(name: str, rate: str) -> Iterator[Topology]:
    if name == "loopback":
        yield LOOPBACK
    elif name == "netns":
        with netns_topology(rate) as topo:
            yield topo
    else:
        raise ValueError(f"unknown topology {name!r}; choose from {', '.join(NAMES)}")
