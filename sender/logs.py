"""Logging for the sender: the terminal (or stderr), and a rotated file under logs/.

go2tencentcloud's --log-level: 1 warnings and errors, 2 also progress, 3 debug.
Every warning names its path, so the file is the list of what went wrong.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

LEVELS = {"1": logging.WARNING, "2": logging.INFO, "3": logging.DEBUG}
DEFAULT_LOG_FILE = Path("logs") / "cvm-migrate.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Ten files of 10 MiB: the warnings of a whole system migration, and bounded.
_MAX_BYTES, _BACKUPS = 10 << 20, 9


def setup_logging(level_name: str, log_file: Path | None, console: Console | None) -> Path | None:
    """Configure the root logger; returns the log file in use, if any."""
    level = LEVELS[level_name]
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if console is not None and console.is_terminal:
        terminal: logging.Handler = RichHandler(console=console, show_path=False)
    else:
        terminal = logging.StreamHandler(sys.stderr)
        terminal.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(terminal)
    path = log_file or DEFAULT_LOG_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8"
        )
    except OSError as exc:
        logging.getLogger("cvm-migrate").warning("no log file: cannot write %s: %s", path, exc)
        return None
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(file_handler)
    return path
