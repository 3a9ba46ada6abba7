"""`cvm-migrate deploy` and `cvm-migrate image`: arguments, wiring, and what is printed.

sender/cli.py calls `register(commands)`. The SDK is imported only when one of these
commands runs, so `cvm-migrate run` does not pay for loading it.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from common.errors import ConfigError, ExitCode
from common.token import TOKEN_ENV
from common.version import SOFTWARE_VERSION
from sender.cloud import errors  # noqa: F401  (so the CLI's exit-code table lists them)
from sender.cloud.install_script import DEFAULT_PIP_SPEC, DEFAULT_RECEIVER_IMAGE

if TYPE_CHECKING:
    from sender.cloud.client import CloudApi
    from sender.cloud.deploy import Deployment

DEFAULT_PORT = 7710
DEFAULT_SENDER_IMAGE = f"cvm-migrate-sender:{SOFTWARE_VERSION}"
REGION_ENV = "TENCENTCLOUD_REGION"
_LOG_LEVELS = ("1", "2", "3")


@dataclass
class Runtime:
    """The edges a command touches; tests pass a fake clock so polls take no time."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    load_credential: Callable[[], Any] | None = None  # None: the SDK's default chain
    poll_interval_s: float | None = None  # None: each flow's own default


def _add_cloud_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance-id", required=True, metavar="ins-...", help="the CVM")
    parser.add_argument(
        "--region", metavar="ap-...", help=f"the instance's region (default: ${REGION_ENV})"
    )
    parser.add_argument(
        "--api-endpoint",
        metavar="URL",
        help="send API calls to URL (e.g. http://127.0.0.1:8080) instead of tencentcloudapi.com",
    )
    parser.add_argument(
        "--log-level", choices=_LOG_LEVELS, default="2", help="1 warnings, 2 info, 3 debug"
    )


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds the `deploy` and `image` subcommands to cvm-migrate's parser."""
    deploy = commands.add_parser(
        "deploy",
        help="install and start a receiver on a CVM through TAT",
        description="Install and start a receiver on a Tencent Cloud CVM through TAT, and "
        "print its address, token and the sender command to run on the source.",
    )
    _add_cloud_options(deploy)
    deploy.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="receiver port (default %(default)s)"
    )
    deploy.add_argument(
        "--open-port-from",
        metavar="CIDR",
        help="allow TCP PORT from CIDR in the instance's first security group",
    )
    how = deploy.add_mutually_exclusive_group()
    how.add_argument(
        "--image",
        metavar="REF",
        help=f"run the receiver with docker from REF (default when docker is present: "
        f"{DEFAULT_RECEIVER_IMAGE})",
    )
    how.add_argument(
        "--pip",
        metavar="SPEC",
        help=f"install SPEC in a venv with a systemd unit (default without docker: "
        f"{DEFAULT_PIP_SPEC})",
    )
    deploy.add_argument(
        "--token-file",
        type=Path,
        metavar="F",
        help="write the receiver's token to F (mode 0600) instead of printing it",
    )
    deploy.add_argument(
        "--sender-image",
        default=DEFAULT_SENDER_IMAGE,
        metavar="REF",
        help="sender image in the printed command (default %(default)s)",
    )
    deploy.set_defaults(func=command_deploy)

    image = commands.add_parser(
        "image",
        help="make a custom image of a CVM and wait until it is ready",
        description="Create a custom image of a Tencent Cloud CVM (cvm CreateImage) and "
        "wait until it is NORMAL; prints the image id.",
    )
    _add_cloud_options(image)
    image.add_argument("--image-name", required=True, metavar="NAME", help="the image's name")
    image.add_argument(
        "--force-poweroff",
        action="store_true",
        help="power the instance off if it does not shut down cleanly",
    )
    image.set_defaults(func=command_image)


def _region(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    region = args.region or environ.get(REGION_ENV, "")
    if not region:
        raise ConfigError(f"no region: pass --region or set {REGION_ENV}")
    return str(region)


def _cloud_api(args: argparse.Namespace, runtime: Runtime) -> CloudApi:
    from sender.cloud.client import ApiEndpoint, CloudApi, load_credential
    from sender.cloud.retry import Retrier, RetryPolicy

    region = _region(args, runtime.environ)
    endpoint = ApiEndpoint.parse(args.api_endpoint) if args.api_endpoint else None
    credential = (runtime.load_credential or load_credential)()

    def on_retry(failure: Any, wait: float) -> None:
        print(f"{failure.action}: {failure.code}, retrying in {wait:.1f} s", file=runtime.err)

    retrier = Retrier(RetryPolicy(), runtime.clock, runtime.sleep, runtime.rng, on_retry)
    return CloudApi(region, credential, retrier, endpoint)


def _write_token_file(path: Path, token: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(token + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the token to {path}: {exc.strerror}") from exc


def sender_command(deployment: Deployment, sender_image: str, token_file: Path | None) -> str:
    """The command to paste on the source."""
    if token_file is None:
        token_env = f"{TOKEN_ENV}={shlex.quote(deployment.token)}"
    else:
        token_env = f'{TOKEN_ENV}="$(cat {shlex.quote(str(token_file))})"'
    if deployment.fingerprint is None:
        security = "--insecure"
    else:
        security = f"--fingerprint {shlex.quote(deployment.fingerprint)}"
    return (
        f"docker run --rm --network host -v /:/host:ro -e {token_env} "
        f"{shlex.quote(sender_image)} run /host --to {deployment.address} {security}"
    )


def deployment_report(
    deployment: Deployment, sender_image: str, token_file: Path | None, open_from: str | None
) -> str:
    token = deployment.token if token_file is None else f"written to {token_file} (mode 0600)"
    fingerprint = deployment.fingerprint or "none (insecure: plaintext gRPC, trusted links only)"
    lines = [
        f"receiver ready on {deployment.instance.instance_id} ({deployment.mode})",
        f"  address:     {deployment.address}",
        f"  token:       {token}",
        f"  fingerprint: {fingerprint}",
    ]
    if deployment.opened_in is not None:
        lines.append(
            f"  firewall:    TCP {deployment.port} open to {open_from} in {deployment.opened_in}"
        )
    lines += ["run on the source:", f"  {sender_command(deployment, sender_image, token_file)}"]
    return "\n".join(lines)


def command_deploy(args: argparse.Namespace, runtime: Runtime | None = None) -> int:
    from sender.cloud.deploy import DeployRequest, deploy, validate
    from sender.cloud.polling import Timing

    runtime = runtime or Runtime()
    request = DeployRequest(
        instance_id=args.instance_id,
        port=args.port,
        open_port_from=args.open_port_from,
        image=args.image,
        pip_spec=args.pip,
    )
    if runtime.poll_interval_s is not None:
        request = replace(request, poll_interval_s=runtime.poll_interval_s)
    validate(request)
    api = _cloud_api(args, runtime)
    deployment = deploy(
        api,
        request,
        Timing(runtime.clock, runtime.sleep),
        report=lambda line: print(line, file=runtime.err),
    )
    if args.token_file is not None:
        _write_token_file(args.token_file, deployment.token)
    report = deployment_report(deployment, args.sender_image, args.token_file, args.open_port_from)
    print(report, file=runtime.out)
    return ExitCode.OK


def command_image(args: argparse.Namespace, runtime: Runtime | None = None) -> int:
    from sender.cloud.image import ImageRequest, make_image
    from sender.cloud.polling import Timing

    runtime = runtime or Runtime()
    request = ImageRequest(
        instance_id=args.instance_id,
        image_name=args.image_name,
        force_poweroff=args.force_poweroff,
    )
    if runtime.poll_interval_s is not None:
        request = replace(request, poll_interval_s=runtime.poll_interval_s)
    api = _cloud_api(args, runtime)
    image_id = make_image(
        api, request, Timing(runtime.clock, runtime.sleep), lambda s: print(s, file=runtime.err)
    )
    print(image_id, file=runtime.out)
    return ExitCode.OK
