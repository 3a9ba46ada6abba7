"""The `target` fixture of the wire-level receiver tests (hostile requests, limits, fuzz)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.receiver.faults_wire import Target
from tests.receiver.wire_client import WireClient

if TYPE_CHECKING:  # the fixture comes from tests/conftest.py; importing it would load it twice
    from tests.conftest import StartReceiver


@pytest.fixture
def target(tmp_path: Path, receiver: StartReceiver) -> Iterator[Target]:
    """A receiver serving an empty `root`, with an empty `outside` beside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    process = receiver(root, tmp_path / "state")
    client = WireClient(process.address, process.token)
    yield Target(root, outside, process, client)
    client.close()
