"""One runner per tool behind a common interface: start the target-side server, give the
client command, check the client's own report, stop the server and tell its peak RSS."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.netns import Topology
from bench.proc import BenchError, Proc, ProcRegistry, free_port, wait_listening


@dataclass(frozen=True)
class RunDirs:
    work: Path  # logs, configs, summaries of this one run
    target: Path  # fresh and empty: the tool copies the source into it
    state: Path  # fresh and empty: cvm-migrate's state dir


class Tool(ABC):
    name: str

    def __init__(self, registry: ProcRegistry, env: Mapping[str, str]) -> None:
        self._registry = registry
        self._env = env
        self._server: Proc | None = None
        self._port = 0

    @abstractmethod
    def _server_argv(self, topo: Topology, dirs: RunDirs, port: int) -> list[str]: ...

    @abstractmethod
    def client_argv(self, topo: Topology, source: Path, dirs: RunDirs) -> list[str]:
        """The client command (run under `topo.client_prefix` and GNU time by the caller)."""

    @abstractmethod
    def client_report(self, dirs: RunDirs, client: Proc) -> dict[str, float]:
        """Figures from the client's own report (e.g. bytes on the wire); raise BenchError
        if the client says the copy failed."""

    def start_server(self, topo: Topology, dirs: RunDirs) -> None:
        self._port = free_port()
        self._server = self._registry.start(
            f"{self.name}-server",
            self._server_argv(topo, dirs, self._port),
            prefix=topo.server_prefix,
            log_dir=dirs.work,
            env=self._env,
        )
        wait_listening(self._server, self._port)

    def stop_server(self) -> int | None:
        """Stop the server; its peak RSS in KiB (None if GNU time did not report)."""
        if self._server is None:
            return None
        server, self._server = self._server, None
        server.stop()
        return server.peak_rss_kib()

    def server_tail(self) -> str:
        return self._server.tail() if self._server else ""


class CvmMigrate(Tool):
    name = "cvm-migrate"

    def __init__(
        self,
        registry: ProcRegistry,
        env: Mapping[str, str],
        python: str,
        sender_args: Sequence[str],
        receiver_args: Sequence[str],
    ) -> None:
        super().__init__(registry, env)
        self._python = python
        self._sender_args = list(sender_args)
        self._receiver_args = list(receiver_args)

    def _server_argv(self, topo: Topology, dirs: RunDirs, port: int) -> list[str]:
        return [
            *(self._python, "-m", "receiver", "--root", str(dirs.target)),
            *("--listen", f"{topo.server_addr}:{port}", "--state-dir", str(dirs.state)),
            *("--insecure", "--log-level", "warning", *self._receiver_args),
        ]

    def client_argv(self, topo: Topology, source: Path, dirs: RunDirs) -> list[str]:
        return [
            *(self._python, "-m", "sender", "run", str(source)),
            *("--to", f"{topo.server_addr}:{self._port}", "--insecure"),
            *("--no-default-excludes", "--summary-json", str(dirs.work / "summary.json")),
            *("--log-level", "1", *self._sender_args),
        ]

    def client_report(self, dirs: RunDirs, client: Proc) -> dict[str, float]:
        try:
            summary = json.loads((dirs.work / "summary.json").read_text())
        except (OSError, ValueError) as exc:
            raise BenchError(f"cvm-migrate wrote no summary ({exc}):\n{client.tail()}") from None
        if summary.get("exit_code") != 0 or summary.get("files_failed"):
            raise BenchError(
                f"cvm-migrate: exit code {summary.get('exit_code')}, "
                f"{summary.get('files_failed')} files failed:\n{client.tail()}"
            )
        return {
            "wire_bytes": float(summary["bytes_sent_wire"]),
            "warnings": float(summary.get("warnings_count", 0)),
        }


class Rsync(Tool):
    """`rsync` to an `rsync --daemon` of its own, module `bench` at the fresh target."""

    MODULE = "bench"

    def __init__(
        self, registry: ProcRegistry, env: Mapping[str, str], name: str, flags: Sequence[str]
    ) -> None:
        super().__init__(registry, env)
        self.name = name
        self._flags = list(flags)

    def _server_argv(self, topo: Topology, dirs: RunDirs, port: int) -> list[str]:
        conf = dirs.work / "rsyncd.conf"
        conf.write_text(
            "use chroot = no\n"
            "uid = root\n"
            "gid = root\n"
            "munge symlinks = no\n"  # the default without chroot; it would rewrite symlinks
            f"log file = {dirs.work / 'rsyncd.log'}\n"
            f"[{self.MODULE}]\n"
            f"    path = {dirs.target}\n"
            "    read only = no\n"
        )
        return [
            *("rsync", "--daemon", "--no-detach", f"--config={conf}"),
            *(f"--address={topo.server_addr}", f"--port={port}"),
        ]

    def client_argv(self, topo: Topology, source: Path, dirs: RunDirs) -> list[str]:
        url = f"rsync://{topo.server_addr}:{self._port}/{self.MODULE}/"
        return ["rsync", *self._flags, "--stats", f"{source}/", url]

    def client_report(self, dirs: RunDirs, client: Proc) -> dict[str, float]:
        match = re.search(r"Total bytes sent: ([\d,.]+)", client.log.read_text(errors="replace"))
        if not match:
            return {}
        return {"wire_bytes": float(re.sub(r"[,.]", "", match.group(1)))}


def make_tools(
    names: Sequence[str],
    registry: ProcRegistry,
    env: Mapping[str, str],
    python: str,
    sender_args: Sequence[str],
    receiver_args: Sequence[str],
) -> list[Tool]:
    made: dict[str, Tool] = {
        "cvm-migrate": CvmMigrate(registry, env, python, sender_args, receiver_args),
        "rsync-a": Rsync(registry, env, "rsync-a", ["-a"]),
        "rsync-az": Rsync(registry, env, "rsync-az", ["-az", "--compress-choice=zstd"]),
    }
    unknown = [n for n in names if n not in made]
    if unknown:
        raise ValueError(f"unknown tools {unknown}; choose from {', '.join(made)}")
    return [made[n] for n in names]


TOOL_NAMES = ("cvm-migrate", "rsync-a", "rsync-az")
