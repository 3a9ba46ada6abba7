"""Running detached (go2tencentcloud's Client.Extra.Daemon, or --daemon).

The classic double fork: the command returns at once with the worker's PID,
the worker has no terminal, and everything it says goes to the log file. It
must happen before any gRPC channel or thread exists: neither survives fork.
"""

from __future__ import annotations

import os


def detach() -> int | None:
    """In the parent, the detached worker's PID; in the worker, None."""
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            return int(pipe.read() or 0)
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    with os.fdopen(write_end, "w") as pipe:
        pipe.write(str(os.getpid()))
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return None
