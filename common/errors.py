"""Errors that end a command, each with its own exit code.

As in borgbackup, an error's docstring is its message template and each class
carries the exit code the CLI exits with. Library code raises these; only the
CLIs' `main()` turns them into a message on stderr and `sys.exit`.
Exit codes 0 (success) and 2 (usage error, argparse's own) are reserved.
"""

from __future__ import annotations

from typing import ClassVar


class ExitCode:
    OK = 0
    USAGE = 2


class MigrateError(Exception):
    """{}"""

    exit_code: ClassVar[int] = 1
    # Whether running again after a pause may succeed (the link, not the data).
    retryable: ClassVar[bool] = False

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.args = args

    def __str__(self) -> str:
        return (self.__doc__ or "{}").format(*self.args).strip()


class ConfigError(MigrateError):
    """{}"""

    exit_code = 3


class SourceError(MigrateError):
    """cannot read the source {}: {}"""

    exit_code = 4


class ConnectError(MigrateError):
    """cannot reach the receiver at {}: {}"""

    exit_code = 5
    retryable = True


class AuthError(MigrateError):
    """the receiver at {} refused the token: {}"""

    exit_code = 6


class ProtocolMismatch(MigrateError):
    """the receiver speaks protocol {} but this sender speaks {}; use matching versions"""

    exit_code = 7


class TransferError(MigrateError):
    """transfer failed: {}"""

    exit_code = 8


class PartialTransfer(MigrateError):
    """{} entries failed to migrate; see the warnings above and in the summary"""

    exit_code = 9


class TargetFull(MigrateError):
    """the target is out of space: {}"""

    exit_code = 10


class ReceiverSetupError(MigrateError):
    """cannot start the receiver: {}"""

    exit_code = 11


class VerifyMismatch(MigrateError):
    """the target differs from the source: {}"""

    exit_code = 12


class ChecksFailed(MigrateError):
    """pre-migration checks failed: {}; fix them (see above) or pass --ignore-check"""

    exit_code = 14


class UntrustedReceiver(MigrateError):
    """the receiver at {} is not the one pinned: expected {}, it presented {}"""

    exit_code = 13


class Interrupted(MigrateError):
    """interrupted by {}; run the same command again to resume"""

    exit_code = 130


def all_error_classes() -> list[type[MigrateError]]:
    """Every MigrateError subclass, for the exit-code table and its test."""
    found: list[type[MigrateError]] = []
    pending: list[type[MigrateError]] = [MigrateError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found
