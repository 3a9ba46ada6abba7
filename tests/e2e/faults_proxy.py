"""tinyproxy on loopback, as the HTTP CONNECT proxy of go2tencentcloud's scenario 3.

Each proxy runs in the foreground (`tinyproxy -d -c CONF`) with a config of its own: it
listens on and admits only 127.0.0.1, tunnels CONNECT only to the receiver's port, and with
`basic_auth` asks for those credentials. Its log shows every CONNECT it was asked for.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.faults_support import POLL_S, STARTUP_TIMEOUT_S, free_port

INSTALL_HINT = "tinyproxy is not installed: apt-get install -y tinyproxy"


@dataclass
class TinyProxy:
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="backslashreplace") if self.log_path.exists() else ""

    def connects_to(self, port: int) -> list[str]:
        """The log's lines of CONNECT requests for 127.0.0.1:`port`."""
        wanted = f"CONNECT 127.0.0.1:{port} "
        return [line for line in self.log().splitlines() if wanted in line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_tinyproxy(
    directory: Path, connect_port: int, *, basic_auth: tuple[str, str] | None = None
) -> TinyProxy:
    """A tinyproxy that tunnels to 127.0.0.1:`connect_port` only; wait until it listens."""
    binary = shutil.which("tinyproxy")
    if binary is None:
        pytest.fail(INSTALL_HINT)
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = directory / "tinyproxy.log"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 600",
        "Allow 127.0.0.1",
        f"ConnectPort {connect_port}",
        f'LogFile "{log_path}"',
        "LogLevel Info",
        f'PidFile "{directory / "tinyproxy.pid"}"',
        "MaxClients 100",
    ]
    if basic_auth is not None:
        lines.append(f"BasicAuth {basic_auth[0]} {basic_auth[1]}")
    config = directory / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    with (directory / "stdout").open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-d", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    proxy = TinyProxy(port, log_path, proc)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"tinyproxy exited {proc.returncode}\n{proxy.log()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proxy
        except OSError:
            if time.monotonic() >= deadline:
                proxy.stop()
                pytest.fail(f"tinyproxy not listening after {STARTUP_TIMEOUT_S} s\n{proxy.log()}")
            time.sleep(POLL_S)
