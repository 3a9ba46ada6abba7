"""Errors that end a command: one exit code each, and a message from the docstring."""

from __future__ import annotations

import string

import pytest

from common.errors import ExitCode, MigrateError, all_error_classes

ERRORS = all_error_classes()


def _placeholders(cls: type[MigrateError]) -> int:
    return sum(
        1 for _, field, _, _ in string.Formatter().parse(cls.__doc__ or "") if field is not None
    )


def test_the_walk_finds_the_base_and_its_subclasses() -> None:
    assert MigrateError in ERRORS
    assert len(ERRORS) > 1
    assert all(issubclass(cls, MigrateError) for cls in ERRORS)
    assert len(set(ERRORS)) == len(ERRORS)


def test_exit_codes_are_distinct() -> None:
    codes = [cls.exit_code for cls in ERRORS]
    duplicated = {
        c: [k.__name__ for k in ERRORS if k.exit_code == c] for c in codes if codes.count(c) > 1
    }
    assert not duplicated


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_exit_code_is_not_reserved_and_fits_a_process(cls: type[MigrateError]) -> None:
    assert cls.exit_code not in (ExitCode.OK, ExitCode.USAGE)
    assert 0 < cls.exit_code < 256


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_message_renders_the_docstring_with_the_arguments(cls: type[MigrateError]) -> None:
    assert cls.__doc__, f"{cls.__name__} has no message template"
    args = [f"<argument {i}>" for i in range(_placeholders(cls))]
    assert args, f"{cls.__name__} names nothing in its message"
    message = str(cls(*args))
    assert message == cls.__doc__.format(*args).strip()
    assert all(arg in message for arg in args)
    assert "\n" not in message and "{" not in message
