"""SharedSync: callers that arrive while a syncfs runs share the next one."""

from __future__ import annotations

import threading
import time

import pytest

from receiver import durability


class GatedSyncfs:
    """Stands in for syncfs: counts calls; each waits for its gate."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Semaphore(0)
        self.gates: list[threading.Event] = [threading.Event() for _ in range(8)]
        self.fail_next = False

    def __call__(self, fd: int) -> None:
        self.calls += 1
        gate = self.gates[self.calls - 1]
        self.started.release()
        assert gate.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise OSError(5, "Input/output error")


def _in_thread(sync: durability.SharedSync, done: list[str], name: str) -> threading.Thread:
    def run() -> None:
        sync.sync()
        done.append(name)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_callers_during_a_sync_share_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = GatedSyncfs()
    monkeypatch.setattr(durability, "syncfs", fake)
    sync = durability.SharedSync(fd=-1)
    done: list[str] = []
    first = _in_thread(sync, done, "first")
    assert fake.started.acquire(timeout=10)
    later = [_in_thread(sync, done, f"later-{i}") for i in range(3)]
    time.sleep(0.2)  # they are waiting: their writes may postdate the running sync
    assert fake.calls == 1 and not done

    fake.gates[0].set()
    first.join(10)
    assert done == ["first"]
    assert fake.started.acquire(timeout=10), "no second sync for the callers that waited"
    time.sleep(0.2)
    assert fake.calls == 2 and done == ["first"]

    fake.gates[1].set()
    for thread in later:
        thread.join(10)
    assert sorted(done) == ["first", "later-0", "later-1", "later-2"]
    assert fake.calls == 2


def test_a_failed_sync_is_an_error_and_the_next_caller_tries_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = GatedSyncfs()
    for gate in fake.gates:
        gate.set()
    monkeypatch.setattr(durability, "syncfs", fake)
    sync = durability.SharedSync(fd=-1)
    fake.fail_next = True
    with pytest.raises(OSError, match="Input/output error"):
        sync.sync()
    sync.sync()
    assert fake.calls == 2
