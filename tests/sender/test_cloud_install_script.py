"""The install script: valid bash, within TAT's size limit, and right when actually run.

The real runs use a temp state dir, a fake `docker` that logs its arguments (and answers
`inspect` from what it was last told to run), and a listening socket in place of the
receiver; `openssl` is the machine's own, as on the instance.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sender.cloud.install_script import (
    MAX_CONTENT_B64,
    InstallPlan,
    build_install_script,
    encode_content,
    parse_ready_line,
)
from sender.cloud.token_seal import TokenSeal

# docker inspect answers from the label/state files the last `docker run` left behind.
FAKE_DOCKER = r"""#!/bin/bash
dir=$(dirname "$0")
echo "$*" >>"$dir/docker.log"
case "$1" in
inspect)
    [ -f "$dir/label" ] || exit 1
    case "$3" in
    *Labels*) cat "$dir/label" ;;
    *Running*) echo true ;;
    esac ;;
rm) rm -f "$dir/label" ;;
run)
    for arg in "$@"; do
        case "$arg" in cvm-migrate.config=*) echo "${arg#cvm-migrate.config=}" >"$dir/label" ;; esac
    done ;;
logs) echo "receiver: cannot bind" ;;
esac
"""


@pytest.fixture(scope="module")
def seal() -> TokenSeal:
    return TokenSeal()


@dataclass
class Sandbox:
    root: Path
    bin: Path
    seal: TokenSeal

    @property
    def state(self) -> Path:
        return self.root / "state"

    def plan(self, port: int, **fields: object) -> InstallPlan:
        return InstallPlan(
            port=port,
            seal_public_pem=self.seal.public_pem(),
            state_dir=str(self.state),
            target_root=str(self.root / "target"),
            **fields,  # type: ignore[arg-type]
        )

    def run(self, plan: InstallPlan) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PATH=f"{self.bin}:{os.environ['PATH']}")
        return subprocess.run(
            ["bash", "-c", build_install_script(plan)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    def docker_log(self) -> list[str]:
        log = self.bin / "docker.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def sandbox(tmp_path: Path, seal: TokenSeal) -> Sandbox:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    return Sandbox(tmp_path, bin_dir, seal)


@pytest.fixture
def receiver_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("image", "pip_spec"),
    [(None, None), ("ccr.ccs.tencentyun.com/team/receiver:1.2", None), (None, "cvm-migrate>=0.1")],
)
def test_script_is_valid_bash(seal: TokenSeal, image: str | None, pip_spec: str | None) -> None:
    plan = InstallPlan(7710, seal.public_pem(), image=image, pip_spec=pip_spec)
    script = build_install_script(plan)
    checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_script_fits_tats_content_limit(seal: TokenSeal) -> None:
    plan = InstallPlan(port=7710, seal_public_pem=seal.public_pem(), image="r/" + "x" * 500)
    content = encode_content(build_install_script(plan))
    assert len(content) <= MAX_CONTENT_B64
    assert base64.b64decode(content).decode() == build_install_script(plan)


def test_an_oversized_script_is_refused(seal: TokenSeal) -> None:
    plan = InstallPlan(port=7710, seal_public_pem=seal.public_pem(), image="x" * MAX_CONTENT_B64)
    with pytest.raises(ValueError, match="over 65536"):
        encode_content(build_install_script(plan))


def test_values_are_quoted(seal: TokenSeal) -> None:
    plan = InstallPlan(port=7710, seal_public_pem=seal.public_pem(), image="a'b; rm -rf /")
    assert f"IMAGE={shlex.quote(plan.image or '')}\n" in build_install_script(plan)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_docker_install_prints_a_sealed_token(sandbox: Sandbox, receiver_port: int) -> None:
    done = sandbox.run(sandbox.plan(receiver_port))

    assert done.returncode == 0, done.stdout + done.stderr
    ready = parse_ready_line(done.stdout)
    assert ready is not None and ready.mode == "docker" and ready.insecure
    token = (sandbox.state / "token").read_text().strip()
    assert len(token) == 64
    assert sandbox.seal.open(ready.sealed_token) == token
    assert token not in done.stdout
    assert (sandbox.state / "token").stat().st_mode & 0o777 == 0o600
    assert "fingerprint: none (insecure)" in done.stdout
    run = [line for line in sandbox.docker_log() if line.startswith("run ")]
    assert len(run) == 1
    assert run[0].startswith("run -d --name cvm-migrate-receiver --restart unless-stopped ")
    target = sandbox.root / "target"
    assert f"-v {target}:{target} -v {sandbox.state}:/state cvm-migrate-receiver:0.1.0 " in run[0]
    assert run[0].endswith(
        f"--root {target} --state-dir /state --listen 0.0.0.0:{receiver_port} "
        "--token-file /state/token --insecure"
    )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_running_again_keeps_token_and_container(sandbox: Sandbox, receiver_port: int) -> None:
    first = sandbox.run(sandbox.plan(receiver_port))
    second = sandbox.run(sandbox.plan(receiver_port))

    assert first.returncode == 0 and second.returncode == 0, second.stdout
    assert "already runs this configuration" in second.stdout
    assert len([line for line in sandbox.docker_log() if line.startswith("run ")]) == 1
    tokens = {sandbox.seal.open(parse_ready_line(r.stdout).sealed_token) for r in (first, second)}  # type: ignore[union-attr]
    assert len(tokens) == 1

    changed = sandbox.run(sandbox.plan(receiver_port, image="other/receiver:2"))
    assert changed.returncode == 0, changed.stdout
    assert len([line for line in sandbox.docker_log() if line.startswith("run ")]) == 2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_a_tls_certificate_gives_its_fingerprint(sandbox: Sandbox, receiver_port: int) -> None:
    sandbox.state.mkdir()
    cert, key = sandbox.state / "tls.crt", sandbox.state / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=receiver", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    der = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True, capture_output=True
    ).stdout

    done = sandbox.run(sandbox.plan(receiver_port))

    assert done.returncode == 0, done.stdout
    ready = parse_ready_line(done.stdout)
    assert ready is not None
    assert ready.fingerprint == "sha256:" + hashlib.sha256(der).hexdigest()
    assert "--tls-cert /state/tls.crt --tls-key /state/tls.key" in sandbox.docker_log()[-1]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_a_receiver_that_does_not_listen_fails_with_its_logs(sandbox: Sandbox) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening

        done = sandbox.run(sandbox.plan(port, ready_wait_s=0))

    assert done.returncode == 14
    assert f"the receiver is not listening on port {port}" in done.stdout
    assert "receiver: cannot bind" in done.stdout  # docker logs, from the install log
    assert parse_ready_line(done.stdout) is None


def test_ready_line_parsing() -> None:
    output = "noise\nCVM_MIGRATE_READY mode=pip fingerprint=sha256:ab sealed_token=QUJD+/==\n"
    ready = parse_ready_line(output)
    assert ready is not None
    assert (ready.mode, ready.fingerprint, ready.sealed_token) == ("pip", "sha256:ab", "QUJD+/==")
    assert not ready.insecure
    assert parse_ready_line("CVM_MIGRATE_READY token=secret\n") is None


FAKE_PYTHON = r"""#!/bin/bash
echo "python $*" >>LOG
case "$1 $2" in
"-m venv")
    mkdir -p "$3/bin"
    cp "$0" "$3/bin/python"
    printf '#!/bin/bash\necho cvm-migrate-receiver 0.1.0\n' >"$3/bin/cvm-migrate-receiver"
    chmod +x "$3/bin/cvm-migrate-receiver" ;;
esac
exit 0
"""


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_pip_install_writes_a_unit_and_keeps_it(sandbox: Sandbox, receiver_port: int) -> None:
    log = sandbox.root / "calls.log"
    fake_python = sandbox.bin / "python3.13"  # found first, before the machine's python3
    fake_python.write_text(FAKE_PYTHON.replace("LOG", shlex.quote(str(log))))
    fake_python.chmod(0o755)
    systemctl = sandbox.bin / "systemctl"
    systemctl.write_text(f'#!/bin/bash\necho "systemctl $*" >>{shlex.quote(str(log))}\n')
    systemctl.chmod(0o755)
    venv, unit = sandbox.root / "venv", sandbox.root / "receiver.service"
    plan = sandbox.plan(
        receiver_port, pip_spec="cvm-migrate==0.1.0", venv_dir=str(venv), unit_path=str(unit)
    )

    first = sandbox.run(plan)

    assert first.returncode == 0, first.stdout
    ready = parse_ready_line(first.stdout)
    assert ready is not None and ready.mode == "pip"
    assert sandbox.seal.open(ready.sealed_token) == (sandbox.state / "token").read_text().strip()
    target = sandbox.root / "target"
    assert (
        f"ExecStart={venv}/bin/cvm-migrate-receiver --root {target} --state-dir {sandbox.state} "
        f"--listen 0.0.0.0:{receiver_port} --token-file {sandbox.state}/token --insecure\n"
    ) in unit.read_text()
    calls = log.read_text().splitlines()
    assert f"python -m venv {venv}" in calls
    assert "python -m pip install --disable-pip-version-check cvm-migrate==0.1.0" in calls
    assert "systemctl restart cvm-migrate-receiver" in calls

    second = sandbox.run(plan)

    assert second.returncode == 0, second.stdout
    assert "service cvm-migrate-receiver already runs this configuration" in second.stdout
    calls = log.read_text().splitlines()
    assert calls.count("systemctl restart cvm-migrate-receiver") == 1
    assert calls.count(f"python -m venv {venv}") == 1
