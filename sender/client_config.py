"""go2tencentcloud's client.json, read for the settings cvm-migrate shares with it.

    Client.Net.Proxy.{Ip, Port, User, Password}   -> --proxy http://user:pass@ip:port
    Client.Extra.IgnoreCheck                      -> --ignore-check
    Client.Extra.Daemon                           -> --daemon
    Client.Rsync.BandwidthLimit (KBytes/s)        -> --bwlimit
    Client.Rsync.Checksum                         -> --checksum

Options given on the command line win over the file. Other fields are the
console's business (migration tasks, keys, ...): they are listed once in the
log and otherwise ignored. An rsync_excludes_linux.txt beside the file is the
default exclude list, as go2tencentcloud uses it.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import ConfigError

EXCLUDES_BESIDE = "rsync_excludes_linux.txt"

# The fields read, as paths into the JSON object.
_KNOWN = {
    ("Client", "Net", "Proxy", "Ip"),
    ("Client", "Net", "Proxy", "Port"),
    ("Client", "Net", "Proxy", "User"),
    ("Client", "Net", "Proxy", "Password"),
    ("Client", "Extra", "IgnoreCheck"),
    ("Client", "Extra", "Daemon"),
    ("Client", "Rsync", "BandwidthLimit"),
    ("Client", "Rsync", "Checksum"),
}


@dataclass(frozen=True)
class ClientConfig:
    proxy: str | None = None
    ignore_check: bool = False
    daemon: bool = False
    bwlimit_kbytes_per_s: float = 0
    checksum: bool = False
    excludes_file: Path | None = None
    ignored: list[str] = field(default_factory=list)


def _leaves(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in _leaves(value, (*path, key))]
    return [path]


def _get(document: dict[str, Any], *path: str) -> Any:
    node: Any = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _flag(value: Any, where: str) -> bool:
    if value in (None, "", 0, "0"):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if value in (1, "1"):
        return True
    raise ConfigError(f"client.json: {where} should be true or false, not {value!r}")


def _proxy(proxy: Any) -> str | None:
    if not isinstance(proxy, dict) or not proxy.get("Ip"):
        return None
    host, port = str(proxy["Ip"]).strip(), str(proxy.get("Port", "")).strip()
    if not port.isdigit():
        raise ConfigError(f"client.json: Client.Net.Proxy.Port {port!r} is not a port number")
    auth = ""
    if proxy.get("User"):
        user = urllib.parse.quote(str(proxy["User"]), safe="")
        auth = f"{user}:{urllib.parse.quote(str(proxy.get('Password', '')), safe='')}@"
    return f"http://{auth}{host}:{port}"


def load_client_config(path: Path) -> ClientConfig:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    limit = _get(document, "Client", "Rsync", "BandwidthLimit") or 0
    try:
        bwlimit = float(limit)
    except (TypeError, ValueError):
        raise ConfigError(
            f"client.json: Client.Rsync.BandwidthLimit {limit!r} is not a number"
        ) from None
    beside = path.parent / EXCLUDES_BESIDE
    return ClientConfig(
        proxy=_proxy(_get(document, "Client", "Net", "Proxy")),
        ignore_check=_flag(_get(document, "Client", "Extra", "IgnoreCheck"), "IgnoreCheck"),
        daemon=_flag(_get(document, "Client", "Extra", "Daemon"), "Daemon"),
        bwlimit_kbytes_per_s=max(0.0, bwlimit),
        checksum=_flag(_get(document, "Client", "Rsync", "Checksum"), "Checksum"),
        excludes_file=beside if beside.is_file() else None,
        ignored=sorted(".".join(p) for p in _leaves(document) if p not in _KNOWN),
    )
