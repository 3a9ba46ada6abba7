"""Errors of the Tencent Cloud commands (deploy, image), exit codes 20-29.

Each docstring is the message template (see common/errors.py). None of these
classes imports the SDK, so the CLI can list them without loading it.
"""

from __future__ import annotations

from common.errors import MigrateError


class CloudCredentialsMissing(MigrateError):
    """no Tencent Cloud credentials found ({}): set TENCENTCLOUD_SECRET_ID and \
TENCENTCLOUD_SECRET_KEY, write ~/.tencentcloud/credentials, or bind a CAM role to this CVM"""

    exit_code = 20


class CloudAuthFailed(MigrateError):
    """Tencent Cloud refused the credentials for {}: {}: {}; check the SecretId/SecretKey \
and that this machine's clock is right (signatures expire after 5 minutes)"""

    exit_code = 21


class CloudApiError(MigrateError):
    """Tencent Cloud {} failed: {}: {} (RequestId {})"""

    exit_code = 22

    @property
    def action(self) -> str:
        return str(self.args[0])

    @property
    def code(self) -> str:
        return str(self.args[1])


class InstanceNotFound(MigrateError):
    """instance {} not found in region {}: check --instance-id and --region"""

    exit_code = 23


class InstanceNotRunning(MigrateError):
    """instance {} is {}, not RUNNING: start it and run the command again"""

    exit_code = 24


class AgentUnavailable(MigrateError):
    """the TAT agent on {} is {}: install or start it on the instance (`systemctl start \
tat_agent`; to install it see "Installing the TAT agent" in the Automation Tools docs, \
https://cloud.tencent.com/document/product/1340) and run deploy again"""

    exit_code = 25


class InstallFailed(MigrateError):
    """the install script on {} ended {} (exit code {}): {}"""

    exit_code = 26


class CloudWaitTimeout(MigrateError):
    """{} {} did not reach a final state within {} s (last state {}); check it in the \
console and run the command again"""

    exit_code = 27


class ImageCreateFailed(MigrateError):
    """image {} ({}) ended in state {}: see the instance's event log in the console"""

    exit_code = 28


class PortNotOpened(MigrateError):
    """cannot open TCP port {} to {} on instance {}: {}"""

    exit_code = 29
