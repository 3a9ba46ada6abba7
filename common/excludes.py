"""Exclude rules with rsync's meaning: `--exclude`, `--exclude-from` and the default list.

The rules are what rsync accepts in those two options (rsync's "old prefixes" mode,
`XFLG_OLD_PREFIXES` in its exclude.c): a pattern, optionally prefixed by `- ` (exclude)
or `+ ` (include), or a lone `!` that clears the rules so far. In a file, blank lines
and lines starting with `#` or `;` are skipped and both `\\n` and `\\r` end a line
(so CRLF files work); on the command line the whole argument is one pattern.

Matching follows rsync's exclude.c `rule_matches()` and lib/wildmatch.c exactly:

- a trailing `/` makes the rule match directories only (the `/` is then dropped);
- a leading `/` anchors the pattern at the transfer root; otherwise a pattern without
  `/` or `**` matches the last component, one with an inner `/` (and no `**`) the last
  N components, and one with `**` is tried at the start and after every `/`;
- `*` matches within a component, `**` across `/`, `?` one byte but `/`, `[...]` a class
  (`!`/`^` negates, ranges, `[:alpha:]`-style ASCII classes, never `/`), `\\` escapes;
  a pattern without any of `*?[` is compared literally (a `\\` is then an ordinary byte);
- `dir/***` matches the directory itself and everything below it.

Rules are checked in order, the first match decides, no match means included. A caller
that walks a tree must not enter an excluded directory: rsync never looks below one, so
an include rule cannot bring anything back from inside it (`is_excluded` judges one path
and does not look at its parents).

Deliberately stricter than rsync: it reads `P foo`, `: .rules`, `-! foo`, `exclude, foo`
or `!foo` in an exclude file as a pattern for a file literally named so, which is never
what the author meant. Those lines raise ExcludeRuleError; `- P foo` still names such
a file. rsync drops over-long patterns with a warning; they raise here too.

Paths and patterns are bytes throughout: Linux names need not be UTF-8.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ExcludeFile",
    "ExcludePattern",
    "ExcludeRuleError",
    "ExcludeRules",
    "Rule",
    "RuleAction",
    "RuleSource",
    "default_excludes_file",
    "parse_rules",
]

DEFAULT_EXCLUDES_NAME = "rsync_excludes_linux.txt"

# rsync discards a pattern of MAXPATHLEN (4096) bytes or more ("discarding over-long
# filter"); nothing that long can name a Linux path, so it is an error here.
MAX_PATTERN_LEN = 4096

# The full filter-rule syntax of `--filter` (a rule letter or name, modifiers, a space),
# which `--exclude`/`--exclude-from` do not understand: rsync would take such a line as a
# literal file name. `_` as separator is left out so that `._*` stays a pattern.
_LINE_BREAK = re.compile(rb"[\r\n]")  # rsync ends a line at either

_MODIFIERS = rb"[-+/!Cenrswpx]*"
_FILTER_RULE_SYNTAX = re.compile(
    rb"(?:[-+.:HSPR],?" + _MODIFIERS + rb" "
    rb"|(?:clear|dir-merge|exclude|hide|include|merge|protect|risk|show)," + _MODIFIERS + rb"[ _]?)"
)


class ExcludeRuleError(ValueError):
    """A bad exclude rule or an unreadable exclude file; the message names where."""


class RuleAction(enum.Enum):
    EXCLUDE = "-"
    INCLUDE = "+"
    CLEAR = "!"


@dataclass(frozen=True)
class ExcludePattern:
    """One `--exclude PATTERN` from the command line."""

    pattern: bytes


@dataclass(frozen=True)
class ExcludeFile:
    """One `--exclude-from FILE`."""

    path: Path


RuleSource = ExcludePattern | ExcludeFile


class Rule:
    """One filter rule: an include or exclude pattern, or a `!` that clears the list.

    `matches(relpath, is_dir)` tells whether the pattern matches a non-empty relative
    path; it is a closure specialised for the pattern, because the walker calls it for
    every rule and every entry of the tree.
    """

    __slots__ = ("action", "dir_only", "matches", "pattern")

    matches: Callable[[bytes, bool], bool]

    def __init__(self, action: RuleAction, pattern: bytes = b"") -> None:
        """`pattern` is the rule's text after any `- `/`+ ` prefix (b"" for CLEAR)."""
        self.action = action
        self.pattern = pattern
        self.dir_only = len(pattern) > 1 and pattern.endswith(b"/")
        if action is RuleAction.CLEAR:
            self.matches = _never
        else:
            self.matches = _compile(pattern[:-1] if self.dir_only else pattern, self.dir_only)

    def __repr__(self) -> str:
        if self.action is RuleAction.CLEAR:
            return "Rule(!)"
        return f"Rule({self.action.value} {_show(self.pattern)})"


class ExcludeRules:
    """An ordered list of filter rules; the first match decides."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        """The rules in order; a CLEAR rule drops every rule before it."""
        active: list[Rule] = []
        for rule in rules:
            if rule.action is RuleAction.CLEAR:
                active.clear()
            else:
                active.append(rule)
        self._rules = tuple(active)
        self._checks = tuple((r.matches, r.action is RuleAction.EXCLUDE) for r in active)

    @classmethod
    def from_sources(cls, sources: Sequence[RuleSource]) -> ExcludeRules:
        """Rules from `--exclude`/`--exclude-from` sources, in command-line order.

        A `!` in any source clears the rules of the sources before it, as in rsync.
        Raises ExcludeRuleError for a bad rule or an unreadable file.
        """
        rules: list[Rule] = []
        for source in sources:
            if isinstance(source, ExcludePattern):
                rules.extend(_parse_pattern_arg(source.pattern))
            else:
                rules.extend(_read_rule_file(source.path))
        return cls(rules)

    def is_excluded(self, relpath: bytes, is_dir: bool) -> bool:
        """Whether the entry at `relpath` (e.g. b"var/cache/yum/x") is excluded.

        `is_dir` means a real directory, not a symlink to one. The root (b"") is never
        excluded. Only this entry is judged, not its parents: do not enter an excluded
        directory.
        """
        if not relpath:
            return False
        if relpath.startswith(b"/"):
            raise ValueError(f"exclude check needs a relative path, got {_show(relpath)}")
        for matches, excluded in self._checks:
            if matches(relpath, is_dir):
                return excluded
        return False

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def __repr__(self) -> str:
        return f"ExcludeRules({list(self._rules)!r})"

    def to_wire(self) -> list[bytes]:
        """The active rules as rule texts ("- PATTERN", "+ PATTERN"), one per element.

        The receiver rebuilds the same rules with `from_wire` to protect excluded
        paths from --delete and from verify's report of extra paths.
        """
        return [rule.action.value.encode() + b" " + rule.pattern for rule in self._rules]

    @classmethod
    def from_wire(cls, texts: Iterable[bytes]) -> ExcludeRules:
        """Rules sent by `to_wire`; each text is one rule. Raises ExcludeRuleError."""
        rules = []
        for number, text in enumerate(texts, start=1):
            try:
                rules.append(_parse_rule_text(text))
            except ExcludeRuleError as exc:
                raise ExcludeRuleError(f"rule {number} from the sender: {exc}") from None
        return cls(rules)


def default_excludes_file() -> Path:
    """The shipped default list (go2tencentcloud's rsync_excludes_linux.txt)."""
    return Path(__file__).with_name(DEFAULT_EXCLUDES_NAME)


def parse_rules(lines: Iterable[bytes], origin: str) -> list[Rule]:
    """Parse the lines of an exclude file; `origin` (the file name) goes in errors.

    A line may still hold its `\\n`; a `\\r` inside a line ends a rule as in rsync.
    Raises ExcludeRuleError(f"{origin}:{lineno}: cause").
    """
    rules: list[Rule] = []
    for lineno, line in enumerate(lines, start=1):
        for text in _LINE_BREAK.split(line):
            if not text or text[:1] in (b"#", b";"):
                continue
            try:
                rules.append(_parse_rule_text(text))
            except ExcludeRuleError as exc:
                raise ExcludeRuleError(f"{origin}:{lineno}: {exc}") from None
    return rules


def _read_rule_file(path: Path) -> list[Rule]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExcludeRuleError(f"{path}: cannot read exclude file: {exc.strerror or exc}") from None
    return parse_rules(data.split(b"\n"), str(path))


def _parse_pattern_arg(pattern: bytes) -> list[Rule]:
    # rsync parses an --exclude argument like a file line, but it is one rule: no
    # comments, and a newline is part of the pattern. An empty argument adds nothing.
    if not pattern:
        return []
    try:
        return [_parse_rule_text(pattern)]
    except ExcludeRuleError as exc:
        raise ExcludeRuleError(f"--exclude {_show(pattern)!r}: {exc}") from None


def _parse_rule_text(text: bytes) -> Rule:
    """One rule, as rsync's parse_rule_tok() reads it with XFLG_OLD_PREFIXES."""
    if text.startswith((b"- ", b"+ ")):
        action = RuleAction.EXCLUDE if text[:1] == b"-" else RuleAction.INCLUDE
        pattern = text[2:]
        if not pattern:
            raise ExcludeRuleError(f"rule {_show(text)!r} has no pattern")
    elif text == b"!":
        return Rule(RuleAction.CLEAR)
    elif text.startswith(b"!"):
        raise ExcludeRuleError(
            f"{_show(text)!r}: a '!' rule clears the list and takes no pattern "
            f"(include with '+ PATTERN'; a name that starts with '!' is '- {_show(text)}')"
        )
    elif text in (b"-", b"+") or _FILTER_RULE_SYNTAX.match(text):
        raise ExcludeRuleError(
            f"{_show(text)!r}: unsupported filter rule; only '- PATTERN', '+ PATTERN', "
            f"'!' and plain patterns are allowed (a name written so is '- {_show(text)}')"
        )
    else:
        action, pattern = RuleAction.EXCLUDE, text
    if b"\0" in pattern:
        raise ExcludeRuleError(f"pattern {_show(pattern)!r} contains a NUL byte")
    if len(pattern) >= MAX_PATTERN_LEN:
        raise ExcludeRuleError(f"pattern of {len(pattern)} bytes is too long")
    return Rule(action, pattern)


def _show(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


# --- matching a path, as rsync's rule_matches() -----------------------------------

Matcher = Callable[[bytes, bool], bool]


def _never(relpath: bytes, is_dir: bool) -> bool:
    return False


def _compile(pat: bytes, dir_only: bool) -> Matcher:
    """The matcher of one pattern (its trailing `/` already removed into `dir_only`).

    The flags come from the raw text, escapes included, as in rsync's add_rule(), and
    decide what part of the path the pattern must match (rsync's slash_handling).
    """
    wild = any(c in pat for c in (b"*", b"?", b"["))
    wild2 = wild and b"**" in pat
    slashes = pat.count(b"/")
    if not slashes and not wild2:
        scope = "name"  # the last component
    elif pat.startswith(b"/"):
        scope = "path"  # anchored: the whole path
        pat = pat[1:]
    elif wild2 and pat.startswith(b"**"):
        scope = "slash+path"  # "/" + the whole path, so "**/x" also matches "x"
    elif wild2:
        scope = "any start"  # the path from its start or after any "/"
    else:
        scope = "trailing"  # the last slashes+1 components
    if not wild:
        return _literal_matcher(pat, scope, dir_only)
    body = _wildmatch_regex(pat)
    if body is None:
        return _never  # rsync's wildmatch aborts on this pattern: it never matches
    suffix = _literal_suffix(pat)
    # A directory is matched as "dir/" so that "dir/***" covers the dir itself.
    dir_slash = wild2 and pat.endswith(b"***")
    if scope == "name":
        fullmatch = re.compile(body, re.DOTALL).fullmatch
        return _name_matcher(fullmatch, dir_only, suffix)
    if scope == "any start":
        search = re.compile(rb"(?:\A|(?<=/))(?:" + body + rb")\Z", re.DOTALL).search
        return _wild_matcher(search, 0, dir_only, dir_slash, b"", suffix)
    fullmatch = re.compile(body, re.DOTALL).fullmatch
    if scope == "trailing":
        return _wild_matcher(fullmatch, slashes + 1, dir_only, False, b"", suffix)
    if scope == "slash+path":
        return _wild_matcher(fullmatch, -1, dir_only, dir_slash, b"", suffix)
    return _wild_matcher(fullmatch, 0, dir_only, dir_slash, _literal_prefix(pat), suffix)


def _literal_matcher(literal: bytes, scope: str, dir_only: bool) -> Matcher:
    # Without wildcards rsync compares bytes (a backslash is then an ordinary byte):
    # anchored, the whole path; otherwise a suffix that starts a component.
    if scope == "path":
        return lambda relpath, is_dir: (is_dir or not dir_only) and relpath == literal
    size = len(literal)

    def matches(relpath: bytes, is_dir: bool) -> bool:
        return (
            (is_dir or not dir_only)
            and relpath.endswith(literal)
            and (len(relpath) == size or relpath[-size - 1] == 0x2F)
        )

    return matches


def _name_matcher(fullmatch: Callable[..., object], dir_only: bool, suffix: bytes) -> Matcher:
    def matches(relpath: bytes, is_dir: bool) -> bool:
        if (dir_only and not is_dir) or not relpath.endswith(suffix):
            return False
        return fullmatch(relpath, relpath.rfind(b"/") + 1) is not None

    return matches


def _wild_matcher(
    match: Callable[[bytes], object],
    components: int,
    dir_only: bool,
    dir_slash: bool,
    prefix: bytes,
    suffix: bytes,
) -> Matcher:
    """`components` > 0: only the last N; 0: the whole path; -1: "/" + the whole path.

    `prefix` and `suffix` are literal bytes every match starts and ends with: checking
    them first is what keeps a miss cheap.
    """

    def matches(relpath: bytes, is_dir: bool) -> bool:
        if dir_only and not is_dir:
            return False
        subject = relpath
        if components > 0:
            start = len(relpath)
            for _ in range(components - 1):
                start = relpath.rfind(b"/", 0, start)
                if start < 0:
                    return False  # fewer components than the pattern has
            subject = relpath[relpath.rfind(b"/", 0, start) + 1 :]
        elif components < 0:
            subject = b"/" + relpath
        if dir_slash and is_dir:
            subject += b"/"
        if not (subject.startswith(prefix) and subject.endswith(suffix)):
            return False
        return match(subject) is not None

    return matches


def _literal_prefix(pat: bytes) -> bytes:
    """The bytes every match starts with: those before the first special character."""
    return _PLAIN_HEAD.match(pat).group()  # type: ignore[union-attr]  # always matches


def _literal_suffix(pat: bytes) -> bytes:
    """The bytes every match ends with: those after the last special character."""
    return _PLAIN_TAIL.search(pat).group()  # type: ignore[union-attr]  # always matches


_PLAIN_HEAD = re.compile(rb"[^*?\[\\]*")
_PLAIN_TAIL = re.compile(rb"[^*?\[\]\\]*\Z")


# --- rsync's wildmatch as a regular expression -----------------------------------


def _wildmatch_regex(pat: bytes) -> bytes | None:
    """A bytes regex equivalent to rsync's wildmatch of `pat`, None if it never matches."""
    out: list[bytes] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if c == 0x5C:  # backslash: the next byte literally
            if i + 1 == n:
                return None
            out.append(re.escape(pat[i + 1 : i + 2]))
            i += 2
        elif c == 0x3F:  # ?
            out.append(rb"[^/]")
            i += 1
        elif c == 0x2A:  # * or a run of two or more
            j = i
            while j < n and pat[j] == 0x2A:
                j += 1
            out.append(rb"[^/]*" if j - i == 1 else rb".*")
            i = j
        elif c == 0x5B:  # [
            parsed = _char_class(pat, i + 1)
            if parsed is None:
                return None
            members, i = parsed
            if not members:
                return None
            out.append(_class_regex(members))
        else:
            out.append(re.escape(pat[i : i + 1]))
            i += 1
    return b"".join(out)


_POSIX_CLASSES: dict[bytes, frozenset[int]] = {
    name: frozenset(b for b in range(128) if test(chr(b)))
    for name, test in {
        b"alnum": str.isalnum,
        b"alpha": str.isalpha,
        b"blank": lambda ch: ch in " \t",
        b"cntrl": lambda ch: ord(ch) < 32 or ord(ch) == 127,
        b"digit": str.isdigit,
        b"graph": lambda ch: 32 < ord(ch) < 127,
        b"lower": str.islower,
        b"print": lambda ch: 32 <= ord(ch) < 127,
        b"punct": lambda ch: 32 < ord(ch) < 127 and not ch.isalnum(),
        b"space": lambda ch: ch in " \t\n\v\f\r",
        b"upper": str.isupper,
        b"xdigit": lambda ch: ch in "0123456789abcdefABCDEF",
    }.items()
}


def _char_class(pat: bytes, i: int) -> tuple[frozenset[int], int] | None:
    """Parse a class whose `[` is just before `pat[i]`, as wildmatch.c's do-while loop.

    Returns the bytes it matches (never '/') and the index after its `]`, or None where
    wildmatch would abort (unterminated class, unknown `[:name:]`).
    """
    n = len(pat)

    def at(k: int) -> int:
        return pat[k] if k < n else 0

    ch = at(i)
    if ch == 0x5E:  # ^ is the same as !
        ch = 0x21
    negated = ch == 0x21
    if negated:
        i += 1
        ch = at(i)
    members: set[int] = set()
    prev = 0
    while True:
        if not ch:
            return None
        if ch == 0x5C:  # backslash
            i += 1
            ch = at(i)
            if not ch:
                return None
            members.add(ch)
        elif ch == 0x2D and prev and at(i + 1) and at(i + 1) != 0x5D:  # a range a-z
            i += 1
            ch = at(i)
            if ch == 0x5C:
                i += 1
                ch = at(i)
                if not ch:
                    return None
            members.update(range(prev, ch + 1))
            ch = 0  # so that prev is 0 after a range
        elif ch == 0x5B and at(i + 1) == 0x3A:  # [:name:]
            start = i + 2
            end = pat.find(b"]", start)
            if end < 0:
                return None
            if end == start or pat[end - 1] != 0x3A:
                members.add(0x5B)  # no ":]": a literal '[' and go on after it
            else:
                named = _POSIX_CLASSES.get(pat[start : end - 1])
                if named is None:
                    return None
                members.update(named)
                i = end
                ch = 0
        else:
            members.add(ch)
        prev = ch
        i += 1
        ch = at(i)
        if ch == 0x5D:  # ]
            break
    matched = frozenset(range(256)) - members if negated else frozenset(members)
    return matched - {0x2F, 0}, i + 1


def _class_regex(members: frozenset[int]) -> bytes:
    parts: list[bytes] = []
    run: list[int] = []
    for b in sorted(members):
        if run and b != run[-1] + 1:
            parts.append(_class_range(run[0], run[-1]))
            run = []
        run.append(b)
    parts.append(_class_range(run[0], run[-1]))
    return b"[" + b"".join(parts) + b"]"


def _class_range(lo: int, hi: int) -> bytes:
    if lo == hi:
        return b"\\x%02x" % lo
    return b"\\x%02x-\\x%02x" % (lo, hi)
