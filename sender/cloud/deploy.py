"""Deploying a receiver on a CVM: look it up, check TAT, install, wait, open the port.

The flow, each step one API call or a poll of one:
cvm DescribeInstances -> tat DescribeAutomationAgentStatus -> tat RunCommand (install_script)
-> tat DescribeInvocationTasks until final -> [vpc DescribeSecurityGroupPolicies +
CreateSecurityGroupPolicies]. The token never crosses TAT in clear (token_seal.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.errors import ConfigError
from sender.cloud.client import CloudApi
from sender.cloud.errors import (
    AgentUnavailable,
    CloudApiError,
    InstallFailed,
    InstanceNotFound,
    InstanceNotRunning,
    PortNotOpened,
)
from sender.cloud.install_script import (
    InstallPlan,
    ReadyLine,
    build_install_script,
    encode_content,
    parse_ready_line,
)
from sender.cloud.polling import Timing
from sender.cloud.tat_invocation import TaskOutcome, run_command, wait_for_task
from sender.cloud.token_seal import SealError, TokenSeal

DEFAULT_PORT = 7710
# docker pull or pip install of the receiver on a slow mirror: minutes, not seconds.
INSTALL_TIMEOUT_S = 900
COMMAND_NAME = "cvm-migrate-install-receiver"
RULE_DESCRIPTION = "cvm-migrate receiver"
AGENT_ONLINE = "Online"
AGENT_GONE = {
    "ResourceUnavailable.AgentNotInstalled": "not installed",
    "ResourceUnavailable.AgentStatusNotOnline": "offline",
}
RUNNING = "RUNNING"


@dataclass(frozen=True)
class DeployRequest:
    instance_id: str
    port: int = DEFAULT_PORT
    open_port_from: str | None = None
    image: str | None = None
    pip_spec: str | None = None
    install_timeout_s: int = INSTALL_TIMEOUT_S
    poll_interval_s: float = 3.0


@dataclass(frozen=True)
class InstanceFacts:
    instance_id: str
    state: str
    private_ip: str
    os_name: str
    security_group_ids: tuple[str, ...]


@dataclass(frozen=True)
class Deployment:
    instance: InstanceFacts
    port: int
    token: str
    fingerprint: str | None
    mode: str
    opened_in: str | None

    @property
    def address(self) -> str:
        return f"{self.instance.private_ip}:{self.port}"


def validate(request: DeployRequest) -> None:
    """Checks what can be checked before calling the cloud."""
    if not 1 <= request.port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, not {request.port}")
    if request.image is not None and request.pip_spec is not None:
        raise ConfigError("--image and --pip exclude each other")
    if request.open_port_from is not None:
        try:
            ipaddress.ip_network(request.open_port_from, strict=True)
        except ValueError as exc:
            raise ConfigError(f"--open-port-from is not a CIDR block: {exc}") from exc


def describe_instance(api: CloudApi, instance_id: str) -> InstanceFacts:
    try:
        response = api.call("cvm", "DescribeInstances", {"InstanceIds": [instance_id]})
    except CloudApiError as exc:
        if exc.code.startswith("InvalidInstanceId"):
            raise InstanceNotFound(instance_id, api.region) from exc
        raise
    found = [i for i in response.get("InstanceSet") or [] if i.get("InstanceId") == instance_id]
    if not found:
        raise InstanceNotFound(instance_id, api.region)
    instance: dict[str, Any] = found[0]
    ips = instance.get("PrivateIpAddresses") or []
    return InstanceFacts(
        instance_id=instance_id,
        state=str(instance.get("InstanceState", "UNKNOWN")),
        private_ip=str(ips[0]) if ips else "",
        os_name=str(instance.get("OsName", "")),
        security_group_ids=tuple(instance.get("SecurityGroupIds") or ()),
    )


def check_instance(facts: InstanceFacts) -> None:
    if facts.state != RUNNING:
        raise InstanceNotRunning(facts.instance_id, facts.state)
    if "windows" in facts.os_name.lower():
        raise ConfigError(f"instance {facts.instance_id} runs {facts.os_name}: Linux only")
    if not facts.private_ip:
        raise ConfigError(f"instance {facts.instance_id} has no private IP to receive on")


def check_agent(api: CloudApi, instance_id: str) -> None:
    response = api.call("tat", "DescribeAutomationAgentStatus", {"InstanceIds": [instance_id]})
    agents = [
        a for a in response.get("AutomationAgentSet") or [] if a.get("InstanceId") == instance_id
    ]
    if not agents:
        raise AgentUnavailable(instance_id, "not installed")
    status = str(agents[0].get("AgentStatus", "unknown"))
    if status != AGENT_ONLINE:
        raise AgentUnavailable(instance_id, status.lower())


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _ready(instance_id: str, outcome: TaskOutcome, report: Callable[[str], None]) -> ReadyLine:
    """The script's READY line; on failure its whole output is reported, then the error."""
    ready = parse_ready_line(outcome.output) if outcome.succeeded else None
    if ready is not None:
        return ready
    output = outcome.output or outcome.error_info
    report(f"--- output of the install script on {instance_id} ---")
    report(output.rstrip("\n") or "(no output)")
    if outcome.dropped_bytes:
        report(f"({outcome.dropped_bytes} more bytes of output dropped by TAT)")
    report("---")
    if not outcome.succeeded:
        raise InstallFailed(instance_id, outcome.status, outcome.exit_code, _last_line(output))
    raise InstallFailed(
        instance_id, "SUCCESS", outcome.exit_code, "but printed no CVM_MIGRATE_READY line"
    )


def _rule_exists(policies: list[dict[str, Any]], port: int, cidr: str) -> bool:
    return any(
        str(p.get("Protocol", "")).upper() == "TCP"
        and str(p.get("Port", "")) == str(port)
        and p.get("CidrBlock") == cidr
        and str(p.get("Action", "")).upper() == "ACCEPT"
        for p in policies
    )


def open_port(api: CloudApi, facts: InstanceFacts, port: int, cidr: str) -> str:
    """Allows TCP `port` from `cidr` in the instance's first security group; that group's id.

    Inserted first (PolicyIndex 0) so an earlier DROP rule cannot shadow it; left alone when
    the same ACCEPT rule is already there, so deploying twice adds no duplicate.
    """
    if not facts.security_group_ids:
        raise PortNotOpened(port, cidr, facts.instance_id, "it is in no security group")
    group = facts.security_group_ids[0]
    existing = api.call("vpc", "DescribeSecurityGroupPolicies", {"SecurityGroupId": group})
    ingress = (existing.get("SecurityGroupPolicySet") or {}).get("Ingress") or []
    if _rule_exists(ingress, port, cidr):
        return group
    rule = {
        "PolicyIndex": 0,
        "Protocol": "TCP",
        "Port": str(port),  # a string in the API ("80" or "8000-8010"), not a number
        "CidrBlock": cidr,
        "Action": "ACCEPT",
        "PolicyDescription": RULE_DESCRIPTION,
    }
    try:
        api.call(
            "vpc",
            "CreateSecurityGroupPolicies",
            {"SecurityGroupId": group, "SecurityGroupPolicySet": {"Ingress": [rule]}},
        )
    except CloudApiError as exc:
        raise PortNotOpened(port, cidr, facts.instance_id, f"{group}: {exc}") from exc
    return group


def deploy(
    api: CloudApi,
    request: DeployRequest,
    timing: Timing,
    report: Callable[[str], None],
    seal: TokenSeal | None = None,
) -> Deployment:
    validate(request)
    facts = describe_instance(api, request.instance_id)
    report(
        f"instance {facts.instance_id}: {facts.state}, {facts.private_ip}, {facts.os_name or '?'}"
    )
    check_instance(facts)
    check_agent(api, facts.instance_id)
    report("TAT agent: online")

    seal = seal or TokenSeal()
    plan = InstallPlan(
        port=request.port,
        seal_public_pem=seal.public_pem(),
        image=request.image,
        pip_spec=request.pip_spec,
    )
    content = encode_content(build_install_script(plan))
    try:
        invocation_id = run_command(
            api, facts.instance_id, content, request.install_timeout_s, COMMAND_NAME
        )
    except CloudApiError as exc:
        # The agent can go away between the check and the run.
        if exc.code in AGENT_GONE:
            raise AgentUnavailable(facts.instance_id, AGENT_GONE[exc.code]) from exc
        raise
    report(f"install script started: invocation {invocation_id}")
    outcome = wait_for_task(
        api,
        invocation_id,
        request.install_timeout_s,
        timing,
        request.poll_interval_s,
        on_state=lambda state: report(f"install script: {state}"),
    )
    ready = _ready(facts.instance_id, outcome, report)
    try:
        token = seal.open(ready.sealed_token)
    except SealError as exc:
        raise InstallFailed(facts.instance_id, "SUCCESS", outcome.exit_code, exc) from exc

    opened_in = None
    if request.open_port_from is not None:
        opened_in = open_port(api, facts, request.port, request.open_port_from)
        report(f"security group {opened_in}: TCP {request.port} open to {request.open_port_from}")
    return Deployment(
        instance=facts,
        port=request.port,
        token=token,
        fingerprint=None if ready.insecure else ready.fingerprint,
        mode=ready.mode,
        opened_in=opened_in,
    )
