"""go2tencentcloud's client.json: the fields read, their forms, and what is ignored."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from common.errors import ConfigError
from common.excludes import default_excludes_file
from sender.client_config import load_client_config
from sender.options import add_target_options, add_transfer_options, apply_client_config


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "client.json"
    path.write_text(json.dumps(document))
    return path


FULL = {
    "Client": {
        "Net": {
            "Mode": 1,
            "Proxy": {"Ip": "10.1.2.3", "Port": "3128", "User": "ops", "Password": "p@ss:w/rd"},
        },
        "Extra": {"IgnoreCheck": True, "Daemon": "true"},
        "Rsync": {"BandwidthLimit": 2048, "Checksum": True},
    },
    "Migrate": {"MigrateTaskId": "x-123"},
}


def test_every_field_read_takes_effect(tmp_path: Path) -> None:
    config = load_client_config(_write(tmp_path, FULL))
    assert config.proxy == "http://ops:p%40ss%3Aw%2Frd@10.1.2.3:3128"
    assert config.ignore_check is True
    assert config.daemon is True
    assert config.bwlimit_kbytes_per_s == 2048
    assert config.checksum is True
    assert config.ignored == ["Client.Net.Mode", "Migrate.MigrateTaskId"]
    assert config.excludes_file is None


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({}, (None, False, False, 0, False)),
        ({"Client": {"Net": {"Proxy": {"Ip": "", "Port": ""}}}}, (None, False, False, 0, False)),
        (
            {"Client": {"Net": {"Proxy": {"Ip": "p", "Port": 8080}}}},
            ("http://p:8080", False, False, 0, False),
        ),
        (
            {"Client": {"Extra": {"IgnoreCheck": "false", "Daemon": 0}}},
            (None, False, False, 0, False),
        ),
        (
            {"Client": {"Rsync": {"BandwidthLimit": "512", "Checksum": "1"}}},
            (None, False, False, 512, True),
        ),
    ],
)
def test_forms_go2tencentcloud_writes(
    tmp_path: Path, document: Any, expected: tuple[Any, ...]
) -> None:
    config = load_client_config(_write(tmp_path, document))
    got = (
        config.proxy,
        config.ignore_check,
        config.daemon,
        config.bwlimit_kbytes_per_s,
        config.checksum,
    )
    assert got == expected


@pytest.mark.parametrize(
    "document",
    [
        {"Client": {"Net": {"Proxy": {"Ip": "p", "Port": "http"}}}},
        {"Client": {"Rsync": {"BandwidthLimit": "fast"}}},
        {"Client": {"Extra": {"Daemon": "maybe"}}},
        [1, 2],
    ],
)
def test_bad_values_are_config_errors_naming_the_field(tmp_path: Path, document: Any) -> None:
    with pytest.raises(ConfigError):
        load_client_config(_write(tmp_path, document))


def test_a_file_that_is_not_json_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "client.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_client_config(path)


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_target_options(parser)
    add_transfer_options(parser)
    parser.add_argument("--ignore-check", action="store_true", default=None)
    parser.add_argument("--daemon", action="store_true", default=None)
    return parser.parse_args(["--to", "h:1", *argv])


def test_the_command_line_wins_over_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, FULL)
    args = _args(["--config", str(path), "--bwlimit", "0", "--proxy", "http://other:1"])
    apply_client_config(args)
    assert args.bwlimit == 0
    assert args.proxy == "http://other:1"
    assert args.checksum is True and args.ignore_check is True and args.daemon is True


def test_excludes_beside_the_config_replace_the_shipped_default(tmp_path: Path) -> None:
    path = _write(tmp_path, {})
    args = _args(["--config", str(path)])
    apply_client_config(args)
    assert args.default_excludes == default_excludes_file()
    beside = tmp_path / "rsync_excludes_linux.txt"
    beside.write_text("/data/cache/*\n")
    apply_client_config(args)
    assert args.default_excludes == beside
