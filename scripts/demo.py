"""A local demo migration: a sample tree to a receiver on loopback.

Builds a small system-like tree under .demo/src (text and binary files,
symlinks, a hardlink, a sparse file, modes, a name that is not UTF-8), starts
`cvm-migrate-receiver` rooted at .demo/dst, runs `cvm-migrate run`, prints
the sender's summary, and lets rsync judge the copy.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORDS = (
    b"server kernel module network disk volume backup cloud config service daemon "
    b"package library binary socket thread memory process journal cluster".split()
)


def build_sample_tree(root: Path, files: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for i in range(files):
        directory = root / "usr" / "share" / f"pkg{i % 40:02d}" / f"sub{i % 7}"
        directory.mkdir(parents=True, exist_ok=True)
        text = b" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 4000)))
        (directory / f"file{i}.txt").write_bytes(text + b"\n")
    bin_dir = root / "usr" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = bin_dir / "tool"
    tool.write_bytes(rng.randbytes(8 << 20))
    tool.chmod(0o4755)
    os.link(tool, bin_dir / "tool-hardlink")
    (root / "lib").symlink_to("usr/lib", target_is_directory=True)
    (root / "usr" / "lib").mkdir()
    etc = root / "etc"
    etc.mkdir()
    (etc / "localtime").symlink_to("/usr/share/zoneinfo/UTC")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "shadow").chmod(0o640)
    with open(root / "var.img", "wb") as sparse:
        sparse.truncate(256 << 20)
        sparse.seek(100 << 20)
        sparse.write(b"data in the middle of a hole")
    (root / os.fsdecode(b"caf\xe9-latin1")).write_text("a name that is not UTF-8\n")
    for name in ("proc", "sys", "dev"):
        (root / name).mkdir()
    (root / "proc" / "cpuinfo").write_text("excluded by the default rules\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, receiver: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if receiver.poll() is not None:
            sys.exit(f"demo: the receiver exited with {receiver.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit("demo: the receiver did not start listening")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=REPO / ".demo", help="work directory")
    parser.add_argument("--files", type=int, default=3000, help="text files in the sample tree")
    args = parser.parse_args()

    shutil.rmtree(args.dir, ignore_errors=True)
    src, dst, state = args.dir / "src", args.dir / "dst", args.dir / "state"
    for d in (src, dst):
        d.mkdir(parents=True)
    print(f"demo: building a sample tree in {src} ...")
    build_sample_tree(src, args.files)

    port = free_port()
    env = {**os.environ, "CVM_MIGRATE_TOKEN": secrets.token_hex(16)}
    receiver_cmd = [sys.executable, "-m", "receiver", "--root", str(dst), "--state-dir", str(state)]
    receiver_cmd += ["--listen", f"127.0.0.1:{port}", "--log-level", "warning"]
    receiver = subprocess.Popen(receiver_cmd, env=env, cwd=REPO)
    try:
        wait_for_port(port, receiver)
        # TLS by default: the receiver made a certificate; pin what it wrote down.
        fingerprint = (state / "fingerprint").read_text().strip()
        sender_cmd = [sys.executable, "-m", "sender", "run", str(src), "--to", f"127.0.0.1:{port}"]
        sender_cmd += ["--fingerprint", fingerprint, "--log-level", "1"]
        # The checks judge this machine as a server to migrate; the demo moves a sample tree.
        sender_cmd += ["--ignore-check"]
        sender_cmd += ["--summary-json", str(args.dir / "summary.json")]
        print(f"demo: {' '.join(sender_cmd[1:])}")
        code = subprocess.run(sender_cmd, env=env, cwd=args.dir).returncode
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=30)
    if code != 0:
        return code
    print(f"demo: summary written to {args.dir / 'summary.json'}")
    if shutil.which("rsync"):
        oracle = [
            "rsync", "-aHAXS", "--numeric-ids", "--checksum", "--dry-run", "--itemize-changes",
            "--delete", "--modify-window=-1", "--exclude=/proc/*", f"{src}/", f"{dst}/",
        ]  # fmt: skip
        differences = subprocess.run(oracle, capture_output=True, text=True, check=True).stdout
        verdict = "no differences" if not differences else f"differences:\n{differences}"
        print(f"demo: rsync -aHAXS --checksum --dry-run finds {verdict}")
        return 0 if not differences else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
