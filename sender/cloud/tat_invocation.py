"""Running one shell script on one instance with TAT and waiting for its outcome."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sender.cloud.client import CloudApi
from sender.cloud.polling import Timing, poll_until_final

SUCCESS = "SUCCESS"
# TaskStatus values after which nothing changes any more (DescribeInvocationTasks docs).
FINAL_STATES = frozenset(
    {
        SUCCESS,
        "FAILED",
        "TIMEOUT",
        "TASK_TIMEOUT",
        "CANCELLED",
        "TERMINATED",
        "DELIVER_FAILED",
        "START_FAILED",
    }
)
# Before the task record exists (right after RunCommand) it is reported as this state.
NOT_YET_LISTED = "PENDING"
# The cloud may hold a command before delivering it (DELIVER_DELAYED); wait this much beyond
# the command's own Timeout before giving up on it.
DELIVERY_GRACE_S = 300.0


@dataclass(frozen=True)
class TaskOutcome:
    status: str
    exit_code: int | None
    output: str
    dropped_bytes: int
    error_info: str

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCESS


def decode_output(encoded: str | None) -> str:
    """TaskResult.Output: base64 of at most 24 KB of the script's output."""
    if not encoded:
        return ""
    try:
        return base64.b64decode(encoded).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return f"(undecodable output: {encoded[:200]!r})"


def run_command(
    api: CloudApi, instance_id: str, content_b64: str, timeout_s: int, name: str
) -> str:
    """Starts the script; its InvocationId. Never retried but when throttled (retry.py)."""
    response = api.call(
        "tat",
        "RunCommand",
        {
            "Content": content_b64,
            "InstanceIds": [instance_id],
            "CommandType": "SHELL",
            "CommandName": name,
            "Timeout": timeout_s,
            "WorkingDirectory": "/root",
            "Username": "root",
            "SaveCommand": False,
        },
    )
    return str(response["InvocationId"])


def _outcome(task: dict[str, Any]) -> TaskOutcome:
    result = task.get("TaskResult") or {}
    exit_code = result.get("ExitCode")
    return TaskOutcome(
        status=str(task.get("TaskStatus", "")),
        exit_code=int(exit_code) if exit_code is not None else None,
        output=decode_output(result.get("Output")),
        dropped_bytes=int(result.get("Dropped") or 0),
        error_info=str(task.get("ErrorInfo") or ""),
    )


def wait_for_task(
    api: CloudApi,
    invocation_id: str,
    command_timeout_s: int,
    timing: Timing,
    interval_s: float,
    on_state: Callable[[str], None],
) -> TaskOutcome:
    """Polls DescribeInvocationTasks (with the output) until the task's state is final."""

    def fetch() -> tuple[str, TaskOutcome | None]:
        response = api.call(
            "tat",
            "DescribeInvocationTasks",
            {
                "Filters": [{"Name": "invocation-id", "Values": [invocation_id]}],
                "HideOutput": False,
            },
        )
        tasks = response.get("InvocationTaskSet") or []
        if not tasks:
            return NOT_YET_LISTED, None
        outcome = _outcome(tasks[0])
        return outcome.status, outcome

    final = poll_until_final(
        fetch,
        FINAL_STATES.__contains__,
        timing=timing,
        interval_s=interval_s,
        timeout_s=command_timeout_s + DELIVERY_GRACE_S,
        subject=("invocation", invocation_id),
        on_state=on_state,
    )
    assert final is not None  # a final state comes from a listed task
    return final
