"""`cvm-migrate image` with the real Tencent Cloud SDK against the stand-in cloud."""

from __future__ import annotations

import argparse
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.errors import MigrateError
from sender.cloud.commands import Runtime, register
from sender.cloud.errors import (
    CloudApiError,
    CloudWaitTimeout,
    ImageCreateFailed,
    InstanceNotFound,
)
from tests.tencent_standin import FakeClock, TencentStandIn, use_standin_credentials

INSTANCE = "ins-abcd1234"


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


def run_image(cloud: TencentStandIn, *extra: str, poll_interval_s: float | None = None) -> Result:
    parser = argparse.ArgumentParser(prog="cvm-migrate")
    register(parser.add_subparsers(dest="command", required=True))
    argv = ["image", "--instance-id", INSTANCE, "--image-name", "migrated-web-1"]
    args = parser.parse_args([*argv, "--api-endpoint", cloud.url, *extra])
    clock = FakeClock()
    out, err = io.StringIO(), io.StringIO()
    runtime = Runtime(
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(7),
        out=out,
        err=err,
        environ={"TENCENTCLOUD_REGION": "ap-shanghai"},  # --region's default
        poll_interval_s=poll_interval_s,
    )
    try:
        code = args.func(args, runtime)
    except MigrateError as exc:
        print(f"cvm-migrate: error: {exc}", file=err)
        code = exc.exit_code
    return Result(code, out.getvalue(), err.getvalue())


def test_image_waits_until_normal_and_prints_its_id(standin: TencentStandIn) -> None:
    standin.image_creating_polls = 3

    result = run_image(standin)

    assert result.code == 0, result.err
    (image,) = standin.images.values()
    assert result.out == f"{image.image_id}\n"
    assert image.name == "migrated-web-1"
    assert image.force_poweroff == "FALSE"  # a string, as the API wants
    assert len(standin.calls_of("DescribeImages")) == 4  # CREATING x3, then NORMAL
    assert f"image {image.image_id}: CREATING" in result.err
    assert f"image {image.image_id}: NORMAL" in result.err


def test_force_poweroff_is_the_string_true(standin: TencentStandIn) -> None:
    assert run_image(standin, "--force-poweroff").code == 0
    (image,) = standin.images.values()
    assert image.force_poweroff == "TRUE"


def test_createfailed_is_an_error(standin: TencentStandIn) -> None:
    standin.image_final_state = "CREATEFAILED"

    result = run_image(standin)

    assert result.code == ImageCreateFailed.exit_code
    (image,) = standin.images.values()
    assert f"image {image.image_id} (migrated-web-1) ended in state CREATEFAILED" in result.err
    assert result.out == ""


def test_an_image_that_never_finishes_times_out(standin: TencentStandIn) -> None:
    standin.image_creating_polls = 10**6

    result = run_image(standin, poll_interval_s=1200)

    assert result.code == CloudWaitTimeout.exit_code
    assert "did not reach a final state within 14400 s (last state CREATING)" in result.err


def test_image_of_a_missing_instance(standin: TencentStandIn) -> None:
    del standin.instances[INSTANCE]

    result = run_image(standin)

    assert result.code == InstanceNotFound.exit_code
    assert f"instance {INSTANCE} not found in region ap-shanghai" in result.err


def test_create_image_is_retried_only_when_throttled(standin: TencentStandIn) -> None:
    standin.throttle("CreateImage", 1)
    standin.throttle("DescribeImages", 2)

    assert run_image(standin).code == 0
    assert len(standin.calls_of("CreateImage")) == 2
    assert len(standin.images) == 1


def test_create_image_is_never_retried_blindly(standin: TencentStandIn) -> None:
    standin.inject_error("CreateImage", "InternalError")

    result = run_image(standin)

    assert result.code == CloudApiError.exit_code
    assert "CreateImage failed: InternalError" in result.err
    assert len(standin.calls_of("CreateImage")) == 1
