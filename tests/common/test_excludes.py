"""ExcludeRules: a table of rsync's filter semantics, and real rsync as the oracle.

Every table row is also checked against `rsync -an --out-format=%n`, so the table
cannot drift from what rsync does; a hypothesis test compares whole trees.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.excludes import (
    ExcludeFile,
    ExcludePattern,
    ExcludeRuleError,
    ExcludeRules,
    RuleSource,
    default_excludes_file,
    parse_rules,
)

needs_rsync = pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is the oracle")


@dataclass(frozen=True)
class Arg:
    """An --exclude PATTERN argument; a plain bytes value is an --exclude-from file."""

    pattern: bytes


Sources = tuple[bytes | Arg, ...]
DEFAULT = default_excludes_file().read_bytes()


def as_sources(rules: bytes | Sources) -> Sources:
    return (rules,) if isinstance(rules, bytes) else rules


def rule_sources(sources: Sources, tmp: Path) -> list[RuleSource]:
    out: list[RuleSource] = []
    for i, source in enumerate(sources):
        if isinstance(source, Arg):
            out.append(ExcludePattern(source.pattern))
        else:
            path = tmp / f"rules{i}.txt"
            path.write_bytes(source)
            out.append(ExcludeFile(path))
    return out


def rsync_args(sources: Sequence[RuleSource]) -> list[bytes]:
    return [
        b"--exclude=" + s.pattern
        if isinstance(s, ExcludePattern)
        else b"--exclude-from=" + bytes(s.path)
        for s in sources
    ]


def rsync_transferred(src: Path, args: Sequence[bytes]) -> set[bytes]:
    """What `rsync -a` would send from `src`, as relative paths (a dry run)."""
    with tempfile.TemporaryDirectory() as empty:
        cmd = [b"rsync", b"-an", b"-8", b"--out-format=%n", *args]
        cmd += [bytes(src) + b"/", os.fsencode(empty) + b"/"]
        # LC_ALL=C: [[:alpha:]] and friends are then ASCII, as in common.excludes.
        run = subprocess.run(cmd, capture_output=True, env={**os.environ, "LC_ALL": "C"})
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    names = set()
    for line in run.stdout.split(b"\n"):
        if line and line != b"./":
            # rsync writes unprintable bytes (and a backslash before '#') as \#ooo.
            name = re.sub(rb"\\#([0-7]{3})", lambda m: bytes([int(m[1], 8)]), line)
            names.add(name.removesuffix(b"/"))
    return names


def walk_transferred(root: Path, rules: ExcludeRules) -> set[bytes]:
    """The reference walk: what the sender sends, never entering an excluded dir."""
    found: set[bytes] = set()

    def walk(path: bytes, rel: bytes) -> None:
        with os.scandir(path) as entries:
            for entry in entries:
                relpath = rel + entry.name
                is_dir = entry.is_dir(follow_symlinks=False)
                if not rules.is_excluded(relpath, is_dir):
                    found.add(relpath)
                    if is_dir:
                        walk(entry.path, relpath + b"/")

    walk(bytes(root), b"")
    return found


def make_tree(root: Path, entries: dict[bytes, bool]) -> None:
    """Create relpath -> is_dir entries (and their parents) under root."""
    base = bytes(root)
    for relpath, is_dir in sorted(entries.items()):
        path = base + b"/" + relpath
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if is_dir:
            os.makedirs(path, exist_ok=True)
        else:
            open(path, "wb").close()


# (rules, path, is_dir, expected is_excluded); bytes rules are one --exclude-from file.
CASES: list[tuple[bytes | Sources, bytes, bool, bool]] = [
    # go2tencentcloud's default list: the dirs stay, their contents go.
    (DEFAULT, b"dev", True, False),
    (DEFAULT, b"dev/null", False, True),
    (DEFAULT, b"dev/pts", True, True),
    (DEFAULT, b"a/dev/x", False, False),
    (DEFAULT, b"proc/1", True, True),
    (DEFAULT, b"sys", True, False),
    (DEFAULT, b"var/cache/yum", True, False),
    (DEFAULT, b"var/cache/yum/x86_64", True, True),
    (DEFAULT, b"var/cache/dnf/x", False, False),
    (DEFAULT, b"lost+found/#123", False, True),
    (DEFAULT, b"var/lib/lxcfs/proc", True, True),
    (DEFAULT, b"var/lib/docker-storage.btrfs", False, True),
    (DEFAULT, b"var/lib/docker-storage.btrfs.bak", False, False),
    (DEFAULT, b"root/.local/share/gvfs-metadata", True, False),
    (DEFAULT, b"root/.local/share/gvfs-metadata/root", False, True),
    (DEFAULT, b"home/u/.local/share/gvfs-metadata/x", False, False),
    (DEFAULT, b"etc/passwd", False, False),
    # No '/': the last component, at any depth, whole.
    (b"foo", b"foo", False, True),
    (b"foo", b"a/b/foo", True, True),
    (b"foo", b"a/foobar", False, False),
    (b"foo", b"a/xfoo", False, False),
    (b"*", b"a", True, True),
    # A leading '/' anchors at the transfer root.
    (b"/foo", b"foo", False, True),
    (b"/foo", b"a/foo", False, False),
    (b"/a/b", b"a/b", False, True),
    (b"/a/b", b"x/a/b", False, False),
    (b"/", b"a", True, False),
    # An inner '/': the last components, whole.
    (b"a/b", b"a/b", False, True),
    (b"a/b", b"x/a/b", False, True),
    (b"a/b", b"xa/b", False, False),
    (b"a/*", b"x/a/y", False, True),
    (b"a/*", b"a/y/z", False, False),
    # '*' stops at '/', '**' does not.
    (b"/a/*.c", b"a/x.c", False, True),
    (b"/a/*.c", b"a/b/x.c", False, False),
    (b"/a/**.c", b"a/b/x.c", False, True),
    (b"/a/**/x.c", b"a/b/c/x.c", False, True),
    (b"/a/**/x.c", b"a/x.c", False, False),  # "**" matches "b", not "" between slashes
    (b"**/x.c", b"x.c", False, True),
    (b"**/x.c", b"a/b/x.c", False, True),
    (b"a/**/c", b"q/a/b/c", False, True),
    (b"a/**/c", b"qa/b/c", False, False),
    (b"a**", b"x/ab/c", False, True),  # tried after every '/'
    # '?' is one byte but '/'.
    (b"?.c", b"x.c", False, True),
    (b"?.c", b"xy.c", False, False),
    (b"/a?b", b"a/b", False, False),
    # Character classes.
    (b"[ab].c", b"b.c", False, True),
    (b"[ab].c", b"c.c", False, False),
    (b"[!ab].c", b"c.c", False, True),
    (b"[^ab].c", b"a.c", False, False),
    (b"[a-c]x", b"bx", False, True),
    (b"[a-c]x", b"dx", False, False),
    (b"[]]x", b"]x", False, True),
    (b"[[:digit:]]*", b"1x", False, True),
    (b"[[:digit:]]*", b"x1", False, False),
    (b"[[:alpha:]]", b"\xe9", False, False),
    (b"[\xe0-\xef]x", b"\xe9x", False, True),
    (b"/a[/]b", b"a/b", False, False),  # a class never matches '/'
    (b"a[", b"a[", False, False),  # unterminated: never matches
    (b"[[:nope:]]", b"n", False, False),  # unknown class: never matches
    # Backslash escapes in a wildcard pattern, and is literal in a plain one.
    (b"a\\*", b"a*", False, True),
    (b"a\\*", b"ab", False, False),
    (b"a\\b", b"a\\b", False, True),
    (b"a\\b", b"ab", False, False),
    # dir/*** is the dir and everything in it; a file of that name is not.
    (b"/a/***", b"a", True, True),
    (b"/a/***", b"a", False, False),
    (b"/a/***", b"a/b/c", False, True),
    (b"a/***", b"x/a", True, True),
    (b"a/***", b"x/a", False, False),
    # A trailing '/' matches directories only.
    (b"foo/", b"x/foo", True, True),
    (b"foo/", b"x/foo", False, False),
    (b"/a/*/", b"a/b", True, True),
    (b"/a/*/", b"a/b", False, False),
    # '+ ' and '- ', first match wins.
    (b"+ keep.log\n*.log", b"keep.log", False, False),
    (b"+ keep.log\n*.log", b"x.log", False, True),
    (b"*.log\n+ keep.log", b"keep.log", False, True),
    (b"- *.log", b"a.log", False, True),
    (b"- P foo", b"P foo", False, True),
    (b"+ *", b"a", False, False),
    # Comments and blank lines; spaces are part of a pattern; CR ends a line.
    (b"# foo\n; foo\n\n", b"# foo", False, False),
    (b"#foo", b"#foo", False, False),
    (b" foo", b"foo", False, False),
    (b"foo ", b"foo ", False, True),
    (b"foo ", b"foo", False, False),
    (b"foo\r\nbar\r\n", b"bar", False, True),
    # '!' clears the rules before it.
    (b"foo\n!\n", b"foo", False, False),
    (b"foo\n!\nbar", b"bar", False, True),
    # Bytes that are not UTF-8, and newlines in names.
    (b"\xff\xfe", b"a/\xff\xfe", False, True),
    (b"*\xe9", b"caf\xe9", False, True),
    (b"caf\xc3\xa9", b"caf\xe9", False, False),
    (b"a?b", b"a\nb", False, True),
    (b"a*", b"a\nb", False, True),
    (b"a\\nb", b"a\nb", False, False),
    # --exclude takes the same prefixes, but no comments and no line breaks.
    ((Arg(b"+ foo"), Arg(b"foo")), b"foo", False, False),
    ((Arg(b"- foo"),), b"foo", False, True),
    ((Arg(b"#foo"),), b"#foo", False, True),
    ((Arg(b"a\nb"),), b"a\nb", False, True),
    ((Arg(b""),), b"x", False, False),
    ((Arg(b"foo"), Arg(b"!")), b"foo", False, False),
    # Sources apply in command-line order; a '!' in a file clears earlier --exclude.
    ((Arg(b"foo"), b"!\n"), b"foo", False, False),
    ((b"+ foo\n", Arg(b"*")), b"foo", False, False),
    ((b"+ foo\n", Arg(b"*")), b"bar", False, True),
    ((Arg(b"+ *.c"), b"/a/*\n", Arg(b"- x.c")), b"a/x.c", False, False),
]


def case_id(case: tuple[bytes | Sources, bytes, bool, bool]) -> str:
    rules, path, is_dir, expected = case
    rules_text = b"(default)" if rules == DEFAULT else repr(rules).encode()
    return f"{rules_text.decode(errors='replace')}-{path!r}{'/' if is_dir else ''}-{expected}"


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_is_excluded(case: tuple[bytes | Sources, bytes, bool, bool], tmp_path: Path) -> None:
    rules, path, is_dir, expected = case
    excludes = ExcludeRules.from_sources(rule_sources(as_sources(rules), tmp_path))
    assert excludes.is_excluded(path, is_dir) is expected


def ancestor_includes(path: bytes) -> list[Arg]:
    """'+ /dir/' for each parent, so rsync enters them whatever the rules say."""
    parts = path.split(b"/")[:-1]
    out = []
    for i in range(1, len(parts) + 1):
        anc = b"/".join(parts[:i])
        if re.search(rb"[*?\[]", anc):
            anc = re.sub(rb"([*?\[\\])", rb"\\\1", anc)
        out.append(Arg(b"+ /" + anc + b"/"))
    return out


@needs_rsync
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_table_agrees_with_rsync(
    case: tuple[bytes | Sources, bytes, bool, bool], tmp_path: Path
) -> None:
    rules, path, is_dir, expected = case
    src = tmp_path / "src"
    make_tree(src, {path: is_dir})
    sources = (*ancestor_includes(path), *as_sources(rules))
    sent = rsync_transferred(src, rsync_args(rule_sources(sources, tmp_path)))
    assert all(b"/".join(path.split(b"/")[:i]) in sent for i in range(1, path.count(b"/") + 1))
    assert (path not in sent) is expected


# (rules, tree, what is sent): an excluded directory is never entered.
WALKS: list[tuple[bytes, dict[bytes, bool], set[bytes]]] = [
    (b"- /a\n+ /a/keep", {b"a/keep": False, b"b": False}, {b"b"}),
    (b"+ a/keep\n- /a/*", {b"a/keep": False, b"a/x": False}, {b"a", b"a/keep"}),
    (
        b"+ */\n+ *.c\n- *",
        {b"a/x.c": False, b"a/y.h": False, b"z.c": False, b"w": False},
        {b"a", b"a/x.c", b"z.c"},
    ),
    (b"/a/***", {b"a/b/c": False, b"ab": False}, {b"ab"}),
    (
        DEFAULT,
        {b"dev/null": False, b"proc/1/fd": True, b"etc/hosts": False, b"a/dev/x": False},
        {b"dev", b"proc", b"etc", b"etc/hosts", b"a", b"a/dev", b"a/dev/x"},
    ),
]


@needs_rsync
@pytest.mark.parametrize("rules, tree, expected", WALKS)
def test_excluded_dir_is_not_entered(
    rules: bytes, tree: dict[bytes, bool], expected: set[bytes], tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", tree)
    sources = rule_sources((rules,), tmp_path)
    assert walk_transferred(tmp_path / "src", ExcludeRules.from_sources(sources)) == expected
    assert rsync_transferred(tmp_path / "src", rsync_args(sources)) == expected


def test_root_is_never_excluded() -> None:
    rules = ExcludeRules(parse_rules([b"*", b"/", b"**"], "t"))
    assert not rules.is_excluded(b"", True)
    assert rules.is_excluded(b"x", False)
    with pytest.raises(ValueError):
        rules.is_excluded(b"/x", False)


def test_default_list() -> None:
    path = default_excludes_file()
    assert path.name == "rsync_excludes_linux.txt" and path.is_file()
    assert len(ExcludeRules.from_sources([ExcludeFile(path)])) == 8


@pytest.mark.parametrize(
    "line, cause",
    [
        (b"- ", "has no pattern"),
        (b"+ ", "has no pattern"),
        (b"-", "unsupported filter rule"),
        (b"P foo", "unsupported filter rule"),
        (b"H foo", "unsupported filter rule"),
        (b": .rsync-filter", "unsupported filter rule"),
        (b". more-rules.txt", "unsupported filter rule"),
        (b"-! foo", "unsupported filter rule"),
        (b"+/ foo", "unsupported filter rule"),
        (b"exclude, foo", "unsupported filter rule"),
        (b"!foo", "'!' rule clears the list"),
        (b"a\0b", "NUL"),
        (b"x" * 4096, "too long"),
    ],
)
def test_bad_rule(line: bytes, cause: str) -> None:
    with pytest.raises(ExcludeRuleError, match=rf"^rules\.txt:2: .*{re.escape(cause)}"):
        parse_rules([b"# ok", line], "rules.txt")


def test_bad_pattern_argument() -> None:
    with pytest.raises(ExcludeRuleError, match=r"^--exclude '- ': .*has no pattern"):
        ExcludeRules.from_sources([ExcludePattern(b"- ")])


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ExcludeRuleError, match=r"missing\.txt: .*No such file"):
        ExcludeRules.from_sources([ExcludePattern(b"x"), ExcludeFile(tmp_path / "missing.txt")])
    with pytest.raises(ExcludeRuleError, match=r"Is a directory"):
        ExcludeRules.from_sources([ExcludeFile(tmp_path)])


# --- whole trees against rsync -----------------------------------------------------

NAMES = [b"a", b"b", b"ab", b"b.c", b"a\nb", b"\xe9"]
COMPONENTS = [*NAMES[:5], b"*", b"?", b"a*", b"*b", b"*.c", b"[ab]", b"[!a]*", b"**", b"a?b"]
_node = st.recursive(
    st.none(),  # a file; a dict is a directory
    lambda children: st.dictionaries(st.sampled_from(NAMES), children, max_size=3),
    max_leaves=10,
)
trees = st.dictionaries(st.sampled_from(NAMES), _node, min_size=1, max_size=4)
patterns = st.builds(
    lambda anchor, parts, suffix: anchor + b"/".join(parts) + suffix,
    st.sampled_from([b"", b"/"]),
    st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=3),
    st.sampled_from([b"", b"", b"/", b"/***", b"/**"]),
)
rule_texts = st.builds(bytes.__add__, st.sampled_from([b"", b"- ", b"+ "]), patterns)
file_lines = st.one_of(rule_texts, rule_texts, rule_texts, st.sampled_from([b"# a", b"", b"!"]))
source_specs = st.lists(
    st.one_of(
        st.lists(file_lines, min_size=1, max_size=5).map(b"\n".join),
        st.lists(file_lines, min_size=1, max_size=5).map(b"\n".join),
        rule_texts.map(Arg),
    ),
    min_size=1,
    max_size=3,
)


def flatten(tree: dict[bytes, object], prefix: bytes = b"") -> dict[bytes, bool]:
    out: dict[bytes, bool] = {}
    for name, child in tree.items():
        out[prefix + name] = isinstance(child, dict)
        if isinstance(child, dict):
            out.update(flatten(child, prefix + name + b"/"))
    return out


@needs_rsync
@settings(
    max_examples=int(os.environ.get("EXCLUDES_RSYNC_EXAMPLES", "40")),
    deadline=None,
    database=None,
)
@given(tree=trees, specs=source_specs)
def test_walk_agrees_with_rsync(tree: dict[bytes, object], specs: Sources) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_tree(root / "src", flatten(tree))
        srcs = rule_sources(specs, root)
        expected = rsync_transferred(root / "src", rsync_args(srcs))
        assert walk_transferred(root / "src", ExcludeRules.from_sources(srcs)) == expected
