"""The bash script TAT runs on the instance to install and start a receiver.

The script is idempotent: run again, it keeps the token, leaves a receiver that already runs
with the same configuration alone, and replaces one whose configuration changed. It uses
docker when present (or when --image is given), else a Python venv + pip + a systemd unit.
Its last line is machine-readable:

    CVM_MIGRATE_READY mode=docker fingerprint=none sealed_token=BASE64

where `sealed_token` is the token encrypted to the deploy's own public key (token_seal.py),
so TAT's records never hold it in clear. Verbose output (docker pull, pip) goes to a log on
the instance and only its tail is printed on failure: TAT keeps 24 KB of output at most.
"""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass

from common.version import SOFTWARE_VERSION

# TAT's RunCommand limit on the base64 Content (API docs of RunCommand).
MAX_CONTENT_B64 = 64 * 1024
READY_MARKER = "CVM_MIGRATE_READY"
DEFAULT_RECEIVER_IMAGE = f"cvm-migrate-receiver:{SOFTWARE_VERSION}"
DEFAULT_PIP_SPEC = f"cvm-migrate=={SOFTWARE_VERSION}"
STATE_DIR = "/var/lib/cvm-migrate"
TARGET_ROOT = "/target"

_READY_LINE = re.compile(
    rf"^{READY_MARKER} mode=(?P<mode>\S+) fingerprint=(?P<fingerprint>\S+)"
    r" sealed_token=(?P<sealed>[A-Za-z0-9+/=]+)\s*$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class InstallPlan:
    """What the script installs; the paths are parameters only so tests can run it unprivileged."""

    port: int
    seal_public_pem: str
    image: str | None = None
    pip_spec: str | None = None
    state_dir: str = STATE_DIR
    target_root: str = TARGET_ROOT
    venv_dir: str = "/opt/cvm-migrate/venv"
    unit_path: str = "/etc/systemd/system/cvm-migrate-receiver.service"
    ready_wait_s: int = 60

    @property
    def mode(self) -> str:
        if self.image is not None:
            return "docker"
        if self.pip_spec is not None:
            return "pip"
        return "auto"


@dataclass(frozen=True)
class ReadyLine:
    mode: str
    fingerprint: str
    sealed_token: str

    @property
    def insecure(self) -> bool:
        return self.fingerprint == "none"


def parse_ready_line(output: str) -> ReadyLine | None:
    """The last CVM_MIGRATE_READY line of the script's output, if any."""
    found = list(_READY_LINE.finditer(output))
    if not found:
        return None
    last = found[-1]
    return ReadyLine(last["mode"], last["fingerprint"], last["sealed"])


def build_install_script(plan: InstallPlan) -> str:
    settings = {
        "MODE": plan.mode,
        "IMAGE": plan.image or DEFAULT_RECEIVER_IMAGE,
        "PIP_SPEC": plan.pip_spec or DEFAULT_PIP_SPEC,
        "PORT": str(plan.port),
        "STATE_DIR": plan.state_dir,
        "TARGET_ROOT": plan.target_root,
        "VENV_DIR": plan.venv_dir,
        "UNIT_PATH": plan.unit_path,
        "READY_WAIT_S": str(plan.ready_wait_s),
        "SEAL_KEY_PEM": plan.seal_public_pem.strip(),
    }
    header = "\n".join(f"{name}={shlex.quote(value)}" for name, value in settings.items())
    return _PROLOGUE + header + "\n" + _BODY


def encode_content(script: str) -> str:
    """RunCommand's Content: the script in base64, within TAT's 64 KB limit."""
    content = base64.b64encode(script.encode("utf-8")).decode("ascii")
    if len(content) > MAX_CONTENT_B64:
        raise ValueError(
            f"install script is {len(content)} bytes in base64, over {MAX_CONTENT_B64}"
        )
    return content


_PROLOGUE = """\
#!/bin/bash
# cvm-migrate: install and start a cvm-migrate receiver. Safe to run again.
set -Eeuo pipefail
umask 077
exec 2>&1
"""

# A constant, not a template: the values above are the script's only inputs.
_BODY = r"""NAME=cvm-migrate-receiver
LOG="$STATE_DIR/install.log"

fail() {  # fail EXIT_CODE MESSAGE: say why, show the end of the install log, stop
    local code=$1
    shift
    trap - ERR
    echo "error: $*"
    if [ -s "$LOG" ]; then
        echo "--- last lines of $LOG ---"
        tail -n 40 "$LOG" | tail -c 8000
    fi
    exit "$code"
}
trap 'fail 1 "unexpected failure (exit $?) at line $LINENO"' ERR

mkdir -p "$STATE_DIR" "$TARGET_ROOT"
chmod 700 "$STATE_DIR"
: >>"$LOG"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE_DIR/install.lock"
    flock -w 600 9 || fail 15 "another install is still running on this instance"
fi

command -v openssl >/dev/null 2>&1 ||
    fail 10 "openssl not found: install it (yum/apt-get install -y openssl) and deploy again"

# The token is made here, once, and kept: it never travels through TAT in clear.
TOKEN_FILE="$STATE_DIR/token"
if [ ! -s "$TOKEN_FILE" ]; then
    openssl rand -hex 32 >"$TOKEN_FILE.new"
    mv -f "$TOKEN_FILE.new" "$TOKEN_FILE"
fi
chmod 600 "$TOKEN_FILE"

receiver_args() {  # receiver_args STATE_DIR ROOT, as the receiver sees them: sets ARGS
    ARGS=(--root "$2" --state-dir "$1" --listen "0.0.0.0:$PORT" --token-file "$1/token")
    if [ -f "$STATE_DIR/tls.crt" ] && [ -f "$STATE_DIR/tls.key" ]; then
        ARGS+=(--tls-cert "$1/tls.crt" --tls-key "$1/tls.key")
    else
        ARGS+=(--insecure)
    fi
}

run_docker() {
    receiver_args /state "$TARGET_ROOT"
    local want have running
    want=$(printf '%s\n' "$IMAGE" "${ARGS[@]}" | openssl dgst -sha256 -r | cut -c1-16)
    have=$(docker inspect -f '{{ index .Config.Labels "cvm-migrate.config" }}' "$NAME" \
        2>/dev/null || true)
    running=$(docker inspect -f '{{ .State.Running }}' "$NAME" 2>/dev/null || true)
    if [ "$have" = "$want" ] && [ "$running" = true ]; then
        echo "container $NAME already runs this configuration"
        return 0
    fi
    echo "starting container $NAME from $IMAGE"
    docker rm -f "$NAME" >>"$LOG" 2>&1 || true
    docker run -d --name "$NAME" --restart unless-stopped --network host \
        --label "cvm-migrate.config=$want" \
        -v "$TARGET_ROOT:$TARGET_ROOT" -v "$STATE_DIR:/state" \
        "$IMAGE" "${ARGS[@]}" >>"$LOG" 2>&1 ||
        fail 12 "docker run $IMAGE failed: can this instance pull it? (deploy --image REF)"
}

find_python() {  # a Python >= 3.11, as the cvm-migrate package requires
    local py
    for py in python3.13 python3.12 python3.11 python3; do
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

run_pip() {
    command -v systemctl >/dev/null 2>&1 ||
        fail 11 "neither docker nor systemd on this instance: install docker and run deploy again"
    local py before after unit
    py=$(find_python) ||
        fail 11 "neither docker nor Python >= 3.11 on this instance: install one and deploy again"
    if [ ! -x "$VENV_DIR/bin/python" ]; then
        echo "creating $VENV_DIR with $py"
        "$py" -m venv "$VENV_DIR" >>"$LOG" 2>&1 ||
            fail 13 "cannot create a venv with $py (install its venv package, e.g. python3-venv)"
    fi
    before=$("$VENV_DIR/bin/cvm-migrate-receiver" --version 2>/dev/null || true)
    echo "installing $PIP_SPEC"
    "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check "$PIP_SPEC" >>"$LOG" 2>&1 ||
        fail 13 "pip install $PIP_SPEC failed"
    after=$("$VENV_DIR/bin/cvm-migrate-receiver" --version 2>/dev/null || true)
    receiver_args "$STATE_DIR" "$TARGET_ROOT"
    unit="[Unit]
Description=cvm-migrate receiver
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$VENV_DIR/bin/cvm-migrate-receiver ${ARGS[*]}
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target"
    if [ "$(cat "$UNIT_PATH" 2>/dev/null || true)" != "$unit" ] || [ "$before" != "$after" ]; then
        echo "starting service $NAME ($after)"
        printf '%s\n' "$unit" >"$UNIT_PATH"
        chmod 644 "$UNIT_PATH"
        systemctl daemon-reload
        systemctl enable "$NAME" >>"$LOG" 2>&1
        systemctl restart "$NAME"
    else
        echo "service $NAME already runs this configuration"
        systemctl enable --now "$NAME" >>"$LOG" 2>&1
    fi
}

wait_listening() {
    local i
    for ((i = 0; ; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            return 0
        fi
        [ "$i" -lt "$READY_WAIT_S" ] || break
        sleep 1
    done
    if [ "$MODE" = docker ]; then
        docker logs --tail 40 "$NAME" >>"$LOG" 2>&1 || true
    else
        journalctl -u "$NAME" -n 40 --no-pager >>"$LOG" 2>&1 || true
    fi
    fail 14 "the receiver is not listening on port $PORT after ${READY_WAIT_S}s"
}

if [ "$MODE" = auto ]; then
    if command -v docker >/dev/null 2>&1; then MODE=docker; else MODE=pip; fi
fi
if [ "$MODE" = docker ]; then
    command -v docker >/dev/null 2>&1 ||
        fail 11 "docker not found on this instance: install it, or deploy with --pip SPEC"
    run_docker
else
    run_pip
fi
wait_listening

fingerprint=none
if [ -f "$STATE_DIR/tls.crt" ]; then
    digest=$(openssl x509 -in "$STATE_DIR/tls.crt" -outform DER | openssl dgst -sha256 -r)
    fingerprint="sha256:${digest%% *}"
    echo "fingerprint: $fingerprint"
else
    echo "fingerprint: none (insecure)"
fi
KEY_FILE=$(mktemp)
trap 'rm -f "$KEY_FILE"' EXIT
printf '%s\n' "$SEAL_KEY_PEM" >"$KEY_FILE"
sealed=$(tr -d '\n' <"$TOKEN_FILE" |
    openssl pkeyutl -encrypt -pubin -inkey "$KEY_FILE" -pkeyopt rsa_padding_mode:oaep \
        -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 | openssl base64 -A) ||
    fail 10 "openssl cannot encrypt the token (RSA-OAEP-SHA256 needs OpenSSL >= 1.0.2)"
echo "receiver ($MODE) listening on port $PORT"
echo "CVM_MIGRATE_READY mode=$MODE fingerprint=$fingerprint sealed_token=$sealed"
"""
