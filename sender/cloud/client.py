"""The one place the Tencent Cloud SDK is called: credentials, clients, one API call.

Flows (deploy, image) call `CloudApi.call(service, action, params)` with the field names of
the API docs and get the `Response` object back as a dict, or a MigrateError. Everything
else about the SDK — its exceptions, profiles, warnings and retry traps — stays in here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from tencentcloud.common.credential import DefaultCredentialProvider
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.cvm.v20170312 import cvm_client
from tencentcloud.cvm.v20170312 import models as cvm_models
from tencentcloud.tat.v20201028 import models as tat_models
from tencentcloud.tat.v20201028 import tat_client
from tencentcloud.vpc.v20170312 import models as vpc_models
from tencentcloud.vpc.v20170312 import vpc_client

from common.errors import ConfigError, MigrateError
from sender.cloud.errors import CloudApiError, CloudAuthFailed, CloudCredentialsMissing
from sender.cloud.retry import ApiFailure, Retrier

# service name -> (client class, models module); the name is the signature's service scope.
_SERVICES: dict[str, tuple[type, ModuleType]] = {
    "cvm": (cvm_client.CvmClient, cvm_models),
    "tat": (tat_client.TatClient, tat_models),
    "vpc": (vpc_client.VpcClient, vpc_models),
}
REQUEST_TIMEOUT_S = 30
_AUTH_PREFIX = "AuthFailure"


@dataclass(frozen=True)
class ApiEndpoint:
    """Where to send API calls instead of <service>.tencentcloudapi.com (tests, private PoPs)."""

    protocol: str
    host: str

    @classmethod
    def parse(cls, url: str) -> ApiEndpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"--api-endpoint must look like https://HOST[:PORT], not {url!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(f"--api-endpoint takes no path or query: {url!r}")
        return cls(parts.scheme, parts.netloc)


def load_credential() -> Any:
    """Credentials the way the SDK finds them: env, ~/.tencentcloud/credentials, CVM role.

    DefaultCredentialProvider raises a plain OSError (from its last, TKE, source) or a
    TencentCloudSDKException when every source comes up empty.
    """
    try:
        return DefaultCredentialProvider().get_credentials()
    except (OSError, TencentCloudSDKException) as exc:
        detail = exc.message if isinstance(exc, TencentCloudSDKException) else str(exc)
        raise CloudCredentialsMissing(detail) from exc


def _client_profile(endpoint: ApiEndpoint | None) -> ClientProfile:
    if endpoint is None:
        http = HttpProfile(reqTimeout=REQUEST_TIMEOUT_S)
    else:
        http = HttpProfile(
            protocol=endpoint.protocol, endpoint=endpoint.host, reqTimeout=REQUEST_TIMEOUT_S
        )
    # No SDK retryer (ours is in retry.py) and no region breaker (it swallows errors).
    return ClientProfile(httpProfile=http, disable_region_breaker=True, retryer=None)


def _check_fields(models: ModuleType, action: str, params: Mapping[str, Any]) -> None:
    """Catches a misspelt top-level field before the cloud silently ignores it."""
    request = getattr(models, f"{action}Request")()
    unknown = sorted(key for key in params if not hasattr(request, key))
    if unknown:
        raise ValueError(f"{action} has no field(s) {', '.join(unknown)}")


def _sdk_failure(action: str, exc: TencentCloudSDKException) -> ApiFailure:
    message = exc.message
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return ApiFailure(action, str(exc.code or "ClientError"), str(message), exc.requestId)


def as_migrate_error(failure: ApiFailure) -> MigrateError:
    if failure.code.startswith(_AUTH_PREFIX):
        return CloudAuthFailed(failure.action, failure.code, failure.message)
    return CloudApiError(failure.action, failure.code, failure.message, failure.request_id)


class CloudApi:
    """cvm, tat and vpc clients of one region, behind one retried call."""

    def __init__(
        self,
        region: str,
        credential: Any,
        retrier: Retrier,
        endpoint: ApiEndpoint | None = None,
    ) -> None:
        self.region = region
        self._retrier = retrier
        self._clients = {
            name: client_class(credential, region, _client_profile(endpoint))
            for name, (client_class, _models) in _SERVICES.items()
        }

    def _call_once(self, service: str, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns about the SDK's datetime.utcfromtimestamp on every call.
                warnings.simplefilter("ignore", DeprecationWarning)
                answer = self._clients[service].call_json(action, dict(params))
        except TencentCloudSDKException as exc:
            raise _sdk_failure(action, exc) from exc
        response = answer.get("Response") if isinstance(answer, dict) else None
        if not isinstance(response, dict):
            raise ApiFailure(action, "InvalidResponse", f"no Response object: {answer!r}", None)
        # The SDK reads an error as success when the Content-Type is not exactly
        # application/json; look again so no error passes as an empty answer.
        error = response.get("Error")
        if isinstance(error, dict):
            raise ApiFailure(
                action,
                str(error.get("Code", "UnknownError")),
                str(error.get("Message", "")),
                response.get("RequestId"),
            )
        return response

    def call(self, service: str, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The call's Response (without retries for non-Describe actions but throttling)."""
        _check_fields(_SERVICES[service][1], action, params)
        try:
            return self._retrier.call(lambda: self._call_once(service, action, params))
        except ApiFailure as failure:
            raise as_migrate_error(failure) from failure
