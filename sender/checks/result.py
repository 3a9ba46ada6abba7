"""What a check finds, and the report of all of them: one line each, or JSON."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass


class Status(enum.StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    # Not applicable here, e.g. a receiver check without --to.
    SKIP = "SKIP"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    message: str
    # How to fix it, one sentence; empty when there is nothing to do.
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status.value:<4}  {self.name}: {self.message}"
        return f"{text} — fix: {self.fix}" if self.fix else text


# `cvm-migrate check` exits with the worst status found.
_EXIT_CODES = {Status.PASS: 0, Status.SKIP: 0, Status.WARN: 1, Status.FAIL: 2}


@dataclass(frozen=True)
class Report:
    results: tuple[CheckResult, ...]

    @property
    def exit_code(self) -> int:
        """0 all passed (or skipped), 1 some warned, 2 some failed."""
        return max((_EXIT_CODES[r.status] for r in self.results), default=0)

    def lines(self) -> list[str]:
        return [result.line() for result in self.results]

    def to_json(self) -> str:
        checks = [{**asdict(r), "status": r.status.value} for r in self.results]
        return json.dumps({"checks": checks, "exit_code": self.exit_code}, indent=2)


def human_size(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
