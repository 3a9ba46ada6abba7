"""Wire paths: which ones split_relpath accepts, and display() on any bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.relpath import (
    MAX_DEPTH,
    NAME_MAX,
    ROOT,
    InvalidPath,
    display,
    join_relpath,
    split_relpath,
)

VALID: list[tuple[bytes, list[bytes]]] = [
    (b"", []),
    (b"a", [b"a"]),
    (b"a/b/c", [b"a", b"b", b"c"]),
    (b"etc/localtime", [b"etc", b"localtime"]),
    (b"...", [b"..."]),
    (b"..a", [b"..a"]),
    (b"a..", [b"a.."]),
    (b".hidden/.x", [b".hidden", b".x"]),
    (b" ", [b" "]),
    (b"a\\b", [b"a\\b"]),
    (b"\xff\xfe/latin-1 \xe9", [b"\xff\xfe", b"latin-1 \xe9"]),
    (b"new\nline", [b"new\nline"]),
    (b"x" * NAME_MAX, [b"x" * NAME_MAX]),
    (b"/".join([b"d"] * MAX_DEPTH), [b"d"] * MAX_DEPTH),
]

INVALID: list[tuple[bytes, str]] = [
    (b"/", "absolute-root"),
    (b"/etc/x", "absolute"),
    (b"//a", "double-slash-start"),
    (b"..", "dotdot"),
    (b"../x", "dotdot-first"),
    (b"a/..", "dotdot-last"),
    (b"a/../b", "dotdot-inner"),
    (b".", "dot"),
    (b"./a", "dot-first"),
    (b"a/.", "dot-last"),
    (b"a/./b", "dot-inner"),
    (b"a//b", "empty-inner"),
    (b"a/", "trailing-slash"),
    (b"\0", "nul-alone"),
    (b"a\0b", "nul-inner"),
    (b"a/\0", "nul-component"),
    (b"x" * (NAME_MAX + 1), "component-256"),
    (b"a/" + b"y" * (NAME_MAX + 1), "inner-component-256"),
    (b"/".join([b"d"] * (MAX_DEPTH + 1)), "too-deep"),
]


@pytest.mark.parametrize(("path", "parts"), VALID, ids=[repr(p[:24]) for p, _ in VALID])
def test_valid_path_splits_into_its_components(path: bytes, parts: list[bytes]) -> None:
    assert split_relpath(path) == parts


@pytest.mark.parametrize("path", [p for p, _ in INVALID], ids=[name for _, name in INVALID])
def test_invalid_path_is_refused(path: bytes) -> None:
    with pytest.raises(InvalidPath):
        split_relpath(path)


def test_invalid_path_message_is_short_for_a_huge_path() -> None:
    with pytest.raises(InvalidPath) as caught:
        split_relpath(b"z" * 100_000)
    assert len(str(caught.value)) < 300


@given(st.binary(max_size=600))
def test_split_either_refuses_or_round_trips(path: bytes) -> None:
    try:
        parts = split_relpath(path)
    except InvalidPath:
        return
    assert b"/".join(parts) == path
    for part in parts:
        assert part not in (b"", b".", b"..")
        assert b"/" not in part and b"\0" not in part
        assert len(part) <= NAME_MAX


@given(st.lists(st.binary(min_size=1, max_size=20).filter(lambda b: b"/" not in b), max_size=8))
def test_join_builds_what_split_takes_apart(names: list[bytes]) -> None:
    path = ROOT
    for name in names:
        path = join_relpath(path, name)
    if all(n not in (b".", b"..") and b"\0" not in n for n in names):
        assert split_relpath(path) == names


@given(st.binary(max_size=300))
def test_display_never_raises_and_is_one_line(path: bytes) -> None:
    shown = display(path)
    assert isinstance(shown, str)
    assert shown.startswith("/")
    assert "\n" not in shown


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (b"", "/"),
        (b"etc/passwd", "/etc/passwd"),
        (b"caf\xc3\xa9", "/caf\u00e9"),
        (b"bad\xff", "/bad\\xff"),
        (b"two\nlines", "/two\\nlines"),
    ],
)
def test_display_examples(path: bytes, shown: str) -> None:
    assert display(path) == shown
