"""`cvm-migrate deploy` with the real Tencent Cloud SDK against the stand-in cloud."""

from __future__ import annotations

import argparse
import base64
import io
import os
import random
import re
import secrets
import shlex
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from common.errors import ConfigError, MigrateError
from sender.cloud.commands import DEFAULT_SENDER_IMAGE, Runtime, register
from sender.cloud.deploy import INSTALL_TIMEOUT_S
from sender.cloud.errors import (
    AgentUnavailable,
    CloudApiError,
    CloudAuthFailed,
    CloudCredentialsMissing,
    InstallFailed,
    InstanceNotFound,
    InstanceNotRunning,
)
from sender.cloud.retry import RetryPolicy
from tests.tencent_standin import (
    FakeClock,
    ScriptOutcome,
    TencentStandIn,
    use_standin_credentials,
)

INSTANCE = "ins-abcd1234"
REGION = "ap-guangzhou"
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TencentStandIn]:
    with TencentStandIn() as cloud:
        cloud.add_instance(INSTANCE)
        use_standin_credentials(monkeypatch, cloud, tmp_path / "home")
        yield cloud


def run_cli(argv: list[str], clock: FakeClock | None = None) -> Result:
    """Parses argv with register()'s subcommands and runs the handler as cli.main would."""
    parser = argparse.ArgumentParser(prog="cvm-migrate")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    clock = clock or FakeClock()
    out, err = io.StringIO(), io.StringIO()
    runtime = Runtime(
        clock=clock, sleep=clock.sleep, rng=random.Random(7), out=out, err=err, environ={}
    )
    try:
        code = args.func(args, runtime)
    except MigrateError as exc:
        print(f"cvm-migrate: error: {exc}", file=err)
        code = exc.exit_code
    return Result(code, out.getvalue(), err.getvalue())


def deploy_argv(cloud: TencentStandIn) -> list[str]:
    return ["deploy", "--instance-id", INSTANCE, "--region", REGION, "--api-endpoint", cloud.url]


def ready_output(script: str, token: str, fingerprint: str = "none") -> str:
    """What the install script prints: the token sealed to the public key inside the script."""
    match = re.search(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", script, re.S)
    assert match is not None, "the script carries no public key"
    key = serialization.load_pem_public_key(match.group(0).encode())
    sealed = base64.b64encode(key.encrypt(token.encode(), _OAEP)).decode()  # type: ignore[union-attr]
    return (
        "starting container cvm-migrate-receiver\nfingerprint: none (insecure)\n"
        f"CVM_MIGRATE_READY mode=docker fingerprint={fingerprint} sealed_token={sealed}\n"
    )


def succeed_with(token: str, fingerprint: str = "none"):  # type: ignore[no-untyped-def]
    return lambda script: ScriptOutcome(output=ready_output(script, token, fingerprint))


def test_deploy_prints_address_token_and_sender_command(standin: TencentStandIn) -> None:
    token = secrets.token_hex(32)
    standin.script_outcome = succeed_with(token)

    result = run_cli(deploy_argv(standin))

    assert result.code == 0, result.err
    assert "address:     10.0.0.12:7710" in result.out
    assert f"token:       {token}" in result.out
    assert "fingerprint: none (insecure" in result.out
    expected = (
        f"docker run --rm --network host -v /:/host:ro -e CVM_MIGRATE_TOKEN={token} "
        f"{DEFAULT_SENDER_IMAGE} run /host --to 10.0.0.12:7710 --insecure"
    )
    assert expected in result.out
    # Progress goes to stderr, through the invocation's states.
    assert "install script: PENDING" in result.err
    assert "install script: RUNNING" in result.err
    assert "install script: SUCCESS" in result.err


def test_run_command_carries_a_script_but_never_the_token(standin: TencentStandIn) -> None:
    token = secrets.token_hex(32)
    standin.script_outcome = succeed_with(token)

    assert run_cli(deploy_argv(standin)).code == 0

    (call,) = standin.calls_of("RunCommand")
    assert call.params["Timeout"] == INSTALL_TIMEOUT_S
    assert call.params["CommandType"] == "SHELL"
    assert "Parameters" not in call.params
    script = base64.b64decode(call.params["Content"]).decode()
    assert script.startswith("#!/bin/bash\n")
    assert "docker run -d" in script and "--restart unless-stopped" in script
    assert token not in script
    # Nowhere in what TAT (or any service) received or returned is the token in clear.
    assert all(token.encode() not in c.body for c in standin.calls)
    (invocation,) = standin.invocations.values()
    assert token not in invocation.outcome.output
    polls = standin.calls_of("DescribeInvocationTasks")
    assert len(polls) == 3  # PENDING, RUNNING, SUCCESS
    assert all(c.params["HideOutput"] is False for c in polls)


def test_deploy_passes_image_or_pip_spec_to_the_script(standin: TencentStandIn) -> None:
    standin.script_outcome = succeed_with("t0ken")
    assert run_cli([*deploy_argv(standin), "--image", "ccr.example/ns/recv:1"]).code == 0
    assert run_cli([*deploy_argv(standin), "--pip", "cvm-migrate==9.9"]).code == 0

    first, second = (
        base64.b64decode(c.params["Content"]).decode() for c in standin.calls_of("RunCommand")
    )
    assert "MODE=docker\nIMAGE=ccr.example/ns/recv:1\n" in first
    assert "MODE=pip\n" in second and "PIP_SPEC=cvm-migrate==9.9\n" in second


def test_a_missing_instance_is_named(standin: TencentStandIn) -> None:
    result = run_cli(["deploy", "--instance-id", "ins-00000000", "--region", REGION,
                      "--api-endpoint", standin.url])  # fmt: skip

    assert result.code == InstanceNotFound.exit_code
    assert "instance ins-00000000 not found in region ap-guangzhou" in result.err
    assert not standin.calls_of("RunCommand")


def test_a_malformed_instance_id_is_not_found(standin: TencentStandIn) -> None:
    result = run_cli(["deploy", "--instance-id", "web-1", "--region", REGION,
                      "--api-endpoint", standin.url])  # fmt: skip

    assert result.code == InstanceNotFound.exit_code
    assert "instance web-1 not found" in result.err


def test_a_stopped_instance_is_refused(standin: TencentStandIn) -> None:
    standin.instances[INSTANCE].state = "STOPPED"

    result = run_cli(deploy_argv(standin))

    assert result.code == InstanceNotRunning.exit_code
    assert f"instance {INSTANCE} is STOPPED, not RUNNING" in result.err
    assert not standin.calls_of("DescribeAutomationAgentStatus")


@pytest.mark.parametrize(
    ("agent_status", "said"), [("Offline", "is offline"), (None, "is not installed")]
)
def test_an_unavailable_agent_says_how_to_fix_it(
    standin: TencentStandIn, agent_status: str | None, said: str
) -> None:
    standin.instances[INSTANCE].agent_status = agent_status

    result = run_cli(deploy_argv(standin))

    assert result.code == AgentUnavailable.exit_code
    assert f"the TAT agent on {INSTANCE} {said}" in result.err
    assert "systemctl start tat_agent" in result.err
    assert "https://cloud.tencent.com/document/product/1340" in result.err
    assert not standin.calls_of("RunCommand")


def test_an_agent_that_goes_offline_before_the_run(standin: TencentStandIn) -> None:
    standin.inject_error("RunCommand", "ResourceUnavailable.AgentStatusNotOnline")

    result = run_cli(deploy_argv(standin))

    assert result.code == AgentUnavailable.exit_code
    assert f"the TAT agent on {INSTANCE} is offline" in result.err
    assert len(standin.calls_of("RunCommand")) == 1


def test_an_unreachable_api_is_retried_then_reported(standin: TencentStandIn) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        clock = FakeClock()
        result = run_cli(
            ["deploy", "--instance-id", INSTANCE, "--region", REGION, "--api-endpoint", url],
            clock,
        )

    assert result.code == CloudApiError.exit_code
    assert "DescribeInstances failed: ClientNetworkError" in result.err
    assert len(clock.sleeps) == RetryPolicy().max_attempts - 1


def test_a_failing_script_shows_its_output(standin: TencentStandIn) -> None:
    standin.script_outcome = ScriptOutcome(
        exit_code=11,
        output="checking docker\nerror: neither docker nor Python >= 3.11 on this instance\n",
    )

    result = run_cli(deploy_argv(standin))

    assert result.code == InstallFailed.exit_code
    assert "checking docker\nerror: neither docker" in result.err  # the whole output, decoded
    assert result.err.rstrip().endswith(
        f"cvm-migrate: error: the install script on {INSTANCE} ended FAILED (exit code 11): "
        "error: neither docker nor Python >= 3.11 on this instance"
    )
    assert result.out == ""


def test_a_timed_out_script_is_a_failure(standin: TencentStandIn) -> None:
    standin.script_outcome = ScriptOutcome(
        exit_code=-1, status="TIMEOUT", output="installing cvm-migrate==0.1.0\n"
    )

    result = run_cli(deploy_argv(standin))

    assert result.code == InstallFailed.exit_code
    assert "ended TIMEOUT" in result.err
    assert "installing cvm-migrate==0.1.0" in result.err


def test_success_without_a_ready_line_is_a_failure(standin: TencentStandIn) -> None:
    standin.script_outcome = ScriptOutcome(output="all good, trust me\n")

    result = run_cli(deploy_argv(standin))

    assert result.code == InstallFailed.exit_code
    assert "printed no CVM_MIGRATE_READY line" in result.err
    assert "all good, trust me" in result.err


def test_describe_calls_are_retried_when_throttled(standin: TencentStandIn) -> None:
    standin.script_outcome = succeed_with("t0ken")
    standin.throttle("DescribeInstances", 2)
    standin.throttle("DescribeInvocationTasks", 1)
    standin.inject_error("DescribeAutomationAgentStatus", "InternalError", 1)
    clock = FakeClock()

    result = run_cli(deploy_argv(standin), clock)

    assert result.code == 0, result.err
    assert [c.error for c in standin.calls_of("DescribeInstances")] == [
        "RequestLimitExceeded",
        "RequestLimitExceeded",
        None,
    ]
    assert len(standin.calls_of("DescribeAutomationAgentStatus")) == 2
    assert "DescribeInstances: RequestLimitExceeded, retrying in" in result.err


def test_describe_retries_are_bounded(standin: TencentStandIn) -> None:
    standin.throttle("DescribeInstances", 100)

    result = run_cli(deploy_argv(standin))

    assert result.code == CloudApiError.exit_code
    assert "DescribeInstances failed: RequestLimitExceeded" in result.err
    assert len(standin.calls_of("DescribeInstances")) == RetryPolicy().max_attempts


def test_run_command_is_retried_only_when_throttled(standin: TencentStandIn) -> None:
    standin.script_outcome = succeed_with("t0ken")
    standin.throttle("RunCommand", 2)

    assert run_cli(deploy_argv(standin)).code == 0
    assert len(standin.calls_of("RunCommand")) == 3
    assert len(standin.invocations) == 1


@pytest.mark.parametrize("code", ["InternalError", "ResourceUnavailable"])
def test_run_command_is_never_retried_blindly(standin: TencentStandIn, code: str) -> None:
    standin.inject_error("RunCommand", code, 1)

    result = run_cli(deploy_argv(standin))

    assert result.code == CloudApiError.exit_code
    assert f"RunCommand failed: {code}" in result.err
    assert len(standin.calls_of("RunCommand")) == 1


@pytest.mark.parametrize(
    ("secret_id", "secret_key", "code"),
    [
        ("AKIDstandin0001", "not-the-key", "AuthFailure.SignatureFailure"),
        ("AKIDnobodyknows", "standin-key", "AuthFailure.SecretIdNotFound"),
    ],
)
def test_wrong_credentials_are_a_clear_error(
    standin: TencentStandIn,
    monkeypatch: pytest.MonkeyPatch,
    secret_id: str,
    secret_key: str,
    code: str,
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", secret_id)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", secret_key)

    result = run_cli(deploy_argv(standin))

    assert result.code == CloudAuthFailed.exit_code
    assert f"Tencent Cloud refused the credentials for DescribeInstances: {code}" in result.err
    assert len(standin.calls) == 1  # an auth failure is not retried


def test_clock_skew_is_reported_as_such(standin: TencentStandIn) -> None:
    standin.clock_skew_s = 400

    result = run_cli(deploy_argv(standin))

    assert result.code == CloudAuthFailed.exit_code
    assert "AuthFailure.SignatureExpire" in result.err
    assert "clock" in result.err


def test_missing_credentials_are_a_clear_error(
    standin: TencentStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TENCENTCLOUD_SECRET_ID")
    monkeypatch.delenv("TENCENTCLOUD_SECRET_KEY")

    result = run_cli(deploy_argv(standin))

    assert result.code == CloudCredentialsMissing.exit_code
    assert "no Tencent Cloud credentials found" in result.err
    assert "TENCENTCLOUD_SECRET_ID" in result.err
    assert not standin.calls


def test_open_port_from_adds_one_rule_with_port_as_a_string(standin: TencentStandIn) -> None:
    standin.script_outcome = succeed_with("t0ken")
    argv = [*deploy_argv(standin), "--port", "7711", "--open-port-from", "10.8.0.0/16"]

    first = run_cli(argv)
    second = run_cli(argv)

    assert first.code == 0 and second.code == 0, first.err + second.err
    (create,) = standin.calls_of("CreateSecurityGroupPolicies")  # none the second time
    (rule,) = create.params["SecurityGroupPolicySet"]["Ingress"]
    assert rule["Port"] == "7711"
    assert create.params["SecurityGroupId"] == "sg-standin1"
    assert standin.policies["sg-standin1"] == [
        {
            "Protocol": "TCP",
            "Port": "7711",
            "CidrBlock": "10.8.0.0/16",
            "Action": "ACCEPT",
            "PolicyDescription": "cvm-migrate receiver",
        }
    ]
    assert "firewall:    TCP 7711 open to 10.8.0.0/16 in sg-standin1" in first.out
    assert "--to 10.0.0.12:7711" in first.out


def test_a_bad_cidr_is_refused_before_any_call(standin: TencentStandIn) -> None:
    result = run_cli([*deploy_argv(standin), "--open-port-from", "10.8.0.1/16"])

    assert result.code == ConfigError.exit_code
    assert "--open-port-from is not a CIDR block" in result.err
    assert not standin.calls


def test_token_file_keeps_the_token_off_the_terminal(
    standin: TencentStandIn, tmp_path: Path
) -> None:
    token = secrets.token_hex(32)
    standin.script_outcome = succeed_with(token)
    token_file = tmp_path / "receiver.token"

    result = run_cli([*deploy_argv(standin), "--token-file", str(token_file)])

    assert result.code == 0, result.err
    assert token_file.read_text() == token + "\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token not in result.out
    assert f'-e CVM_MIGRATE_TOKEN="$(cat {token_file})"' in result.out


def test_a_tls_fingerprint_goes_into_the_sender_command(standin: TencentStandIn) -> None:
    fingerprint = "sha256:" + "ab" * 32
    standin.script_outcome = succeed_with("t0ken", fingerprint)

    result = run_cli(deploy_argv(standin))

    assert result.code == 0, result.err
    assert f"fingerprint: {fingerprint}" in result.out
    assert f"--fingerprint {fingerprint}" in result.out
    assert "--insecure" not in result.out


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_deploy_with_the_real_script_run_in_a_sandbox(
    standin: TencentStandIn, tmp_path: Path
) -> None:
    """The stand-in runs the very script deploy sent (in a temp dir, docker faked), so the
    token generated by the script is the one deploy prints."""
    state, root, bin_dir = tmp_path / "state", tmp_path / "target", tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/bash\necho "$*" >>{shlex.quote(str(tmp_path / "docker.log"))}\n')
    docker.chmod(0o755)

    def run_script(script: str) -> ScriptOutcome:
        script = script.replace("STATE_DIR=/var/lib/cvm-migrate\n", f"STATE_DIR={state}\n")
        script = script.replace("TARGET_ROOT=/target\n", f"TARGET_ROOT={root}\n")
        env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
        done = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60
        )
        return ScriptOutcome(exit_code=done.returncode, output=done.stdout + done.stderr)

    standin.script_outcome = run_script
    with _listening_socket() as receiver:  # stands in for the receiver the container runs
        port = receiver.getsockname()[1]
        result = run_cli([*deploy_argv(standin), "--port", str(port)])

    assert result.code == 0, result.err
    token = (state / "token").read_text().strip()
    assert f"token:       {token}" in result.out
    assert f"--to 10.0.0.12:{port} --insecure" in result.out
    assert f"--listen 0.0.0.0:{port}" in (tmp_path / "docker.log").read_text()
