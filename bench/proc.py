"""Processes the benchmark starts: each in its own session, wrapped in `/usr/bin/time -v`
for peak RSS, tracked so that every one of them is killed in the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

TIME = "/usr/bin/time"


class BenchError(RuntimeError):
    """A run went wrong: the benchmark stops and says why."""


def ensure_gnu_time() -> None:
    """/usr/bin/time (GNU time, for -v); installed with apt-get when it is missing."""
    if os.access(TIME, os.X_OK):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing GNU time (apt-get install -y time) for peak RSS")
        subprocess.run(["apt-get", "install", "-y", "time"], check=True)
    if not os.access(TIME, os.X_OK):
        raise BenchError("GNU time is missing: run `sudo apt-get install -y time`")


def peak_rss_kib(time_output: Path) -> int | None:
    """'Maximum resident set size (kbytes)' from a `time -v -o FILE` report."""
    try:
        text = time_output.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if "Maximum resident set size" in line:
            return int(line.rsplit(":", 1)[1])
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """One started command: `prefix + [time -v -o RSS] + argv`, output to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        prefix: Sequence[str],
        log_dir: Path,
        env: Mapping[str, str],
    ) -> None:
        """Runs in `log_dir`: `python -m` puts the cwd first on sys.path, and the cwd must
        not be a source tree other than the one on PYTHONPATH."""
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.rss_file = log_dir / f"{name}.time"
        self.rss_file.unlink(missing_ok=True)
        command = [*prefix, TIME, "-v", "-o", str(self.rss_file), *argv]
        with open(self.log, "wb") as out:
            out.write((" ".join(command) + "\n").encode())
            out.flush()
            # A session of its own: the whole group is signalled at once. `ip netns exec`
            # execs (no fork), so the group is GNU time and the command under it.
            self.popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=log_dir,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"{self.name} timed out after {timeout:.0f} s") from None

    def stop(self, grace: float = 20.0) -> int | None:
        """SIGINT to the group (GNU time ignores it and waits; the command shuts down and
        time writes its report), then SIGKILL if it is still there after `grace`."""
        if self.running():
            self._signal(signal.SIGINT)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)

    def peak_rss_kib(self) -> int | None:
        return peak_rss_kib(self.rss_file)

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ProcRegistry:
    """Every Proc started, so a `finally` can end them all."""

    def __init__(self) -> None:
        self._procs: list[Proc] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        prefix: Sequence[str],
        log_dir: Path,
        env: Mapping[str, str],
    ) -> Proc:
        proc = Proc(name, argv, prefix=prefix, log_dir=log_dir, env=env)
        self._procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self._procs:
            if proc.running():
                proc.kill()
        self._procs.clear()


def _listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of process `pid`."""
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_listening(proc: Proc, port: int, timeout: float = 30.0) -> None:
    """Until something listens on `port` in `proc`'s network namespace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running():
            raise BenchError(f"{proc.name} exited early:\n{proc.tail()}")
        if port in _listening_ports(proc.pid):
            return
        time.sleep(0.05)
    raise BenchError(f"{proc.name} not listening on port {port} after {timeout:.0f} s")


def run_quiet(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def drop_caches() -> None:
    """Flush dirty pages, then drop the page cache, dentries and inodes."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
