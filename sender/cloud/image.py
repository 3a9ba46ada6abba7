"""Making a custom image of the migrated CVM: cvm CreateImage, then DescribeImages until final."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sender.cloud.client import CloudApi
from sender.cloud.errors import CloudApiError, ImageCreateFailed, InstanceNotFound
from sender.cloud.polling import Timing, poll_until_final

NORMAL = "NORMAL"
CREATE_FAILED = "CREATEFAILED"
# Right after CreateImage the image may not be listed yet; it is reported as this state.
NOT_YET_LISTED = "CREATING"
# Imaging copies whole disks: allow hours, look every 15 s (the console refreshes as slowly).
IMAGE_TIMEOUT_S = 4 * 3600.0
POLL_INTERVAL_S = 15.0


@dataclass(frozen=True)
class ImageRequest:
    instance_id: str
    image_name: str
    force_poweroff: bool = False
    timeout_s: float = IMAGE_TIMEOUT_S
    poll_interval_s: float = POLL_INTERVAL_S


def create_image(api: CloudApi, request: ImageRequest) -> str:
    """Starts the image; its ImageId. Never retried but when throttled (retry.py)."""
    params: dict[str, Any] = {
        "InstanceId": request.instance_id,
        "ImageName": request.image_name,
        # A string in the API, "TRUE" or "FALSE", not a boolean.
        "ForcePoweroff": "TRUE" if request.force_poweroff else "FALSE",
    }
    try:
        response = api.call("cvm", "CreateImage", params)
    except CloudApiError as exc:
        if exc.code.startswith("InvalidInstanceId"):
            raise InstanceNotFound(request.instance_id, api.region) from exc
        raise
    return str(response["ImageId"])


def wait_for_image(
    api: CloudApi,
    image_id: str,
    request: ImageRequest,
    timing: Timing,
    on_state: Callable[[str], None],
) -> str:
    """Polls DescribeImages until NORMAL or CREATEFAILED; the final state."""

    def fetch() -> tuple[str, str]:
        response = api.call("cvm", "DescribeImages", {"ImageIds": [image_id]})
        images = [i for i in response.get("ImageSet") or [] if i.get("ImageId") == image_id]
        state = str(images[0].get("ImageState", NOT_YET_LISTED)) if images else NOT_YET_LISTED
        return state, state

    return poll_until_final(
        fetch,
        {NORMAL, CREATE_FAILED}.__contains__,
        timing=timing,
        interval_s=request.poll_interval_s,
        timeout_s=request.timeout_s,
        subject=("image", image_id),
        on_state=on_state,
    )


def make_image(
    api: CloudApi, request: ImageRequest, timing: Timing, report: Callable[[str], None]
) -> str:
    """The id of a NORMAL image of the instance, or ImageCreateFailed."""
    image_id = create_image(api, request)
    report(f"image {image_id} ({request.image_name}) requested")
    state = wait_for_image(
        api, image_id, request, timing, on_state=lambda s: report(f"image {image_id}: {s}")
    )
    if state != NORMAL:
        raise ImageCreateFailed(image_id, request.image_name, state)
    return image_id
