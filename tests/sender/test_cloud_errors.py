"""The cloud commands' errors: their own exit codes, and messages that format."""

from __future__ import annotations

import string

import sender.cloud.errors as cloud_errors
from common.errors import MigrateError, all_error_classes


def cloud_error_classes() -> list[type[MigrateError]]:
    return [
        cls
        for cls in vars(cloud_errors).values()
        if isinstance(cls, type) and issubclass(cls, MigrateError) and cls is not MigrateError
    ]


def test_cloud_exit_codes_are_20_to_29_and_unique_among_all_errors() -> None:
    cloud = cloud_error_classes()
    assert cloud, "no error classes found"
    assert all(20 <= cls.exit_code <= 29 for cls in cloud)
    codes = [cls.exit_code for cls in all_error_classes()]
    assert len(codes) == len(set(codes))


def test_every_message_template_formats() -> None:
    for cls in cloud_error_classes():
        fields = [f for _, f, _, _ in string.Formatter().parse(cls.__doc__ or "") if f is not None]
        message = str(cls(*[f"<argument {i}>" for i in range(len(fields))]))
        assert message and "{" not in message and "\n" not in message, cls.__name__
