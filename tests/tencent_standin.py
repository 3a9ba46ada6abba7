"""A stand-in for the Tencent Cloud API (cvm, tat, vpc) on 127.0.0.1, for tests.

It checks requests the way the cloud does — TC3-HMAC-SHA256 signatures over
`content-type;host` and the body hash, keys derived from "TC3"+SecretKey, date, service and
"tc3_request", at most 300 s of clock skew — and answers the way the cloud does:
`Content-Type: application/json` exactly, `{"Response": {..., "RequestId": ...}}`, errors as
`{"Response": {"Error": {"Code", "Message"}, "RequestId"}}` with HTTP 200.

It models the state the deploy and image flows walk through: instances (RUNNING/STOPPED),
a TAT agent per instance (Online/Offline/absent), invocations PENDING -> RUNNING -> final
over successive polls (the script is not run: its outcome is configured, or computed by a
function of the script), images CREATING -> NORMAL/CREATEFAILED, security-group policies
(Port must arrive as a string), and injectable errors such as RequestLimitExceeded for the
next N calls of an action. The service comes from the credential scope, checked against
X-TC-Version; the Host header is the stand-in's own address for every service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SERVICE_VERSIONS = {"cvm": "2017-03-12", "tat": "2020-10-28", "vpc": "2017-03-12"}
MAX_SKEW_S = 300
TAT_CONTENT_LIMIT = 64 * 1024
TAT_OUTPUT_LIMIT = 24 * 1024
_AUTHORIZATION = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)"
    r"/tc3_request, SignedHeaders=(?P<signed>[a-z;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)
_INSTANCE_ID = re.compile(r"^ins-[0-9a-z]{8}$")


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


@dataclass
class Instance:
    instance_id: str
    state: str = "RUNNING"
    private_ip: str = "10.0.0.12"
    os_name: str = "TencentOS Server 3.1 (TK4)"
    security_group_ids: list[str] = field(default_factory=lambda: ["sg-standin1"])
    agent_status: str | None = "Online"  # None: no agent installed


@dataclass
class ScriptOutcome:
    """What the 'script' does: its exit code and output, after some polls of each state."""

    exit_code: int = 0
    output: str = ""
    status: str | None = None  # None: SUCCESS for exit code 0, else FAILED
    pending_polls: int = 1
    running_polls: int = 1

    @property
    def final_status(self) -> str:
        if self.status is not None:
            return self.status
        return "SUCCESS" if self.exit_code == 0 else "FAILED"


@dataclass
class Invocation:
    invocation_id: str
    task_id: str
    command_id: str
    instance_id: str
    script: str
    timeout: int | None
    outcome: ScriptOutcome
    polls: int = 0

    def status(self) -> str:
        if self.polls <= self.outcome.pending_polls:
            return "PENDING"
        if self.polls <= self.outcome.pending_polls + self.outcome.running_polls:
            return "RUNNING"
        return self.outcome.final_status


@dataclass
class Image:
    image_id: str
    name: str
    instance_id: str
    force_poweroff: str | None
    final_state: str
    creating_polls: int
    polls: int = 0

    def state(self) -> str:
        return "CREATING" if self.polls <= self.creating_polls else self.final_state


@dataclass
class Call:
    service: str
    action: str
    params: dict[str, Any]
    body: bytes
    error: str | None = None  # the error code answered, if any


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_signature(
    secret_key: str,
    *,
    method: str,
    content_type: str,
    host: str,
    body: bytes,
    timestamp: int,
    service: str,
    date: str,
    payload_hash: str | None = None,
) -> str:
    """The TC3-HMAC-SHA256 signature of a request, computed as the cloud does."""
    canonical_request = "\n".join(
        [
            method,
            "/",
            "",
            f"content-type:{content_type.strip().lower()}\nhost:{host.strip().lower()}\n",
            "content-type;host",
            payload_hash or hashlib.sha256(body).hexdigest(),
        ]
    )
    string_to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            f"{date}/{service}/tc3_request",
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ]
    )
    key = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    key = _hmac(key, service)
    key = _hmac(key, "tc3_request")
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class TencentStandIn:
    """The fake cloud and its state; use as a context manager, point the SDK at `.url`."""

    def __init__(self, secret_id: str = "AKIDstandin0001", secret_key: str = "standin-key"):
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.credentials = {secret_id: secret_key}
        self.clock_skew_s = 0.0  # the stand-in's clock minus the real one
        self.instances: dict[str, Instance] = {}
        self.script_outcome: ScriptOutcome | Callable[[str], ScriptOutcome] = ScriptOutcome()
        self.invocations: dict[str, Invocation] = {}
        self.image_final_state = "NORMAL"
        self.image_creating_polls = 1
        self.images: dict[str, Image] = {}
        self.policies: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[Call] = []
        self._errors: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- set-up -------------------------------------------------------------------------

    def add_instance(self, instance_id: str, **fields: Any) -> Instance:
        instance = Instance(instance_id, **fields)
        self.instances[instance_id] = instance
        for group in instance.security_group_ids:
            self.policies.setdefault(group, [])
        return instance

    def inject_error(self, action: str, code: str, times: int = 1) -> None:
        """The next `times` calls of `action` answer error `code` (after the auth checks)."""
        with self._lock:
            self._errors.setdefault(action, []).extend([code] * times)

    def throttle(self, action: str, times: int) -> None:
        self.inject_error(action, "RequestLimitExceeded", times)

    def calls_of(self, action: str) -> list[Call]:
        return [c for c in self.calls if c.action == action]

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> TencentStandIn:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one of them.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ---- request checks -----------------------------------------------------------------

    def authenticate(self, headers: Any, body: bytes) -> str:
        """The service the request is signed for, or ApiError as the cloud would answer."""
        match = _AUTHORIZATION.match(headers.get("Authorization", ""))
        if match is None:
            raise ApiError("AuthFailure.InvalidAuthorization", "Authorization is malformed")
        try:
            timestamp = int(headers.get("X-TC-Timestamp", ""))
        except ValueError:
            raise ApiError("AuthFailure.InvalidAuthorization", "bad X-TC-Timestamp") from None
        now = time.time() + self.clock_skew_s
        if abs(now - timestamp) > MAX_SKEW_S:
            raise ApiError(
                "AuthFailure.SignatureExpire",
                f"the request's timestamp {timestamp} is more than {MAX_SKEW_S}s from "
                f"the server time {int(now)}",
            )
        secret_key = self.credentials.get(match["id"])
        if secret_key is None:
            raise ApiError("AuthFailure.SecretIdNotFound", "the SecretId is not found")
        service = match["service"]
        date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
        if match["date"] != date or service not in SERVICE_VERSIONS:
            raise ApiError("AuthFailure.SignatureFailure", "the credential scope is wrong")
        if match["signed"] != "content-type;host":
            raise ApiError(
                "AuthFailure.SignatureFailure", "SignedHeaders must be content-type;host"
            )
        expected = tc3_signature(
            secret_key,
            method="POST",
            content_type=headers.get("Content-Type", ""),
            host=headers.get("Host", ""),
            body=body,
            timestamp=timestamp,
            service=service,
            date=match["date"],
            payload_hash="UNSIGNED-PAYLOAD"
            if headers.get("X-TC-Content-SHA256") == "UNSIGNED-PAYLOAD"
            else None,
        )
        if not hmac.compare_digest(expected, match["signature"]):
            raise ApiError("AuthFailure.SignatureFailure", "the signature does not match")
        if headers.get("X-TC-Version") != SERVICE_VERSIONS[service]:
            raise ApiError(
                "InvalidParameter", f"{service} has no version {headers['X-TC-Version']}"
            )
        if headers.get("Content-Type") != "application/json":
            raise ApiError("InvalidParameter", "only application/json bodies are modelled")
        return service

    def handle(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            pending = self._errors.get(action)
            if pending:
                code = pending.pop(0)
                raise ApiError(code, f"injected {code}")
            method = getattr(self, f"_{service}_{action}", None)
            if method is None:
                raise ApiError("InvalidAction", f"{service} has no action {action}")
            result: dict[str, Any] = method(params)
            return result

    # ---- cvm ----------------------------------------------------------------------------

    def _cvm_DescribeInstances(self, params: dict[str, Any]) -> dict[str, Any]:
        ids = params.get("InstanceIds") or list(self.instances)
        for instance_id in ids:
            if not _INSTANCE_ID.match(instance_id):
                raise ApiError("InvalidInstanceId.Malformed", f"{instance_id} is malformed")
        found = [self.instances[i] for i in ids if i in self.instances]
        return {
            "TotalCount": len(found),
            "InstanceSet": [
                {
                    "InstanceId": i.instance_id,
                    "InstanceState": i.state,
                    "PrivateIpAddresses": [i.private_ip],
                    "OsName": i.os_name,
                    "SecurityGroupIds": list(i.security_group_ids),
                }
                for i in found
            ],
        }

    def _cvm_CreateImage(self, params: dict[str, Any]) -> dict[str, Any]:
        force = params.get("ForcePoweroff")
        if force is not None and force not in ("TRUE", "FALSE"):
            raise ApiError(
                "InvalidParameter", f"ForcePoweroff must be 'TRUE' or 'FALSE': {force!r}"
            )
        instance_id = params.get("InstanceId", "")
        if instance_id not in self.instances:
            raise ApiError("InvalidInstanceId.NotFound", f"{instance_id} does not exist")
        if not params.get("ImageName"):
            raise ApiError("MissingParameter", "ImageName is required")
        image = Image(
            image_id=f"img-{uuid.uuid4().hex[:8]}",
            name=params["ImageName"],
            instance_id=instance_id,
            force_poweroff=force,
            final_state=self.image_final_state,
            creating_polls=self.image_creating_polls,
        )
        self.images[image.image_id] = image
        return {"ImageId": image.image_id}

    def _cvm_DescribeImages(self, params: dict[str, Any]) -> dict[str, Any]:
        found = [self.images[i] for i in params.get("ImageIds") or [] if i in self.images]
        for image in found:
            image.polls += 1
        return {
            "TotalCount": len(found),
            "ImageSet": [
                {"ImageId": i.image_id, "ImageName": i.name, "ImageState": i.state()} for i in found
            ],
        }

    # ---- tat ----------------------------------------------------------------------------

    def _tat_DescribeAutomationAgentStatus(self, params: dict[str, Any]) -> dict[str, Any]:
        agents = [
            {
                "InstanceId": i.instance_id,
                "Version": "1.1.0",
                "LastHeartbeatTime": "2026-01-01T00:00:00Z",
                "AgentStatus": i.agent_status,
                "Environment": "Linux",
                "SupportFeatures": [],
            }
            for i in (self.instances.get(x) for x in params.get("InstanceIds") or [])
            if i is not None and i.agent_status is not None
        ]
        return {"TotalCount": len(agents), "AutomationAgentSet": agents}

    def _tat_RunCommand(self, params: dict[str, Any]) -> dict[str, Any]:
        content = params.get("Content", "")
        if len(content) > TAT_CONTENT_LIMIT:
            raise ApiError("InvalidParameterValue.ContentTooLong", "Content is over 64 KB")
        try:
            script = base64.b64decode(content, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(
                "InvalidParameterValue.ContentInvalid", "Content is not base64"
            ) from None
        timeout = params.get("Timeout")
        if timeout is not None and (not isinstance(timeout, int) or not 1 <= timeout <= 86400):
            raise ApiError("InvalidParameterValue", f"Timeout out of range: {timeout!r}")
        instance_ids = params.get("InstanceIds") or []
        if len(instance_ids) != 1 or instance_ids[0] not in self.instances:
            raise ApiError("InvalidParameterValue.InvalidInstanceId", f"{instance_ids}")
        agent = self.instances[instance_ids[0]].agent_status
        if agent is None:
            raise ApiError("ResourceUnavailable.AgentNotInstalled", "the agent is not installed")
        if agent != "Online":
            raise ApiError("ResourceUnavailable.AgentStatusNotOnline", "the agent is not online")
        outcome = self.script_outcome
        if callable(outcome):
            outcome = outcome(script)
        invocation = Invocation(
            invocation_id=f"inv-{uuid.uuid4().hex[:8]}",
            task_id=f"invt-{uuid.uuid4().hex[:8]}",
            command_id=f"cmd-{uuid.uuid4().hex[:8]}",
            instance_id=instance_ids[0],
            script=script,
            timeout=timeout,
            outcome=outcome,
        )
        self.invocations[invocation.invocation_id] = invocation
        return {"CommandId": invocation.command_id, "InvocationId": invocation.invocation_id}

    def _tat_DescribeInvocationTasks(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted: set[str] | None = None
        for f in params.get("Filters") or []:
            if f.get("Name") == "invocation-id":
                wanted = set(f.get("Values") or [])
        hide_output = params.get("HideOutput", True)  # the API hides output by default
        tasks = []
        for inv in self.invocations.values():
            if wanted is not None and inv.invocation_id not in wanted:
                continue
            inv.polls += 1
            status = inv.status()
            final = status not in ("PENDING", "RUNNING")
            raw = inv.outcome.output.encode("utf-8") if final else b""
            kept = raw[:TAT_OUTPUT_LIMIT]
            tasks.append(
                {
                    "InvocationId": inv.invocation_id,
                    "InvocationTaskId": inv.task_id,
                    "CommandId": inv.command_id,
                    "InstanceId": inv.instance_id,
                    "TaskStatus": status,
                    "TaskResult": {
                        "ExitCode": inv.outcome.exit_code if final else 0,
                        "Output": "" if hide_output else base64.b64encode(kept).decode(),
                        "Dropped": len(raw) - len(kept),
                    },
                    "ErrorInfo": "",
                }
            )
        return {"TotalCount": len(tasks), "InvocationTaskSet": tasks}

    # ---- vpc ----------------------------------------------------------------------------

    def _security_group(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        group = params.get("SecurityGroupId", "")
        if group not in self.policies:
            raise ApiError("ResourceNotFound", f"security group {group} does not exist")
        return self.policies[group]

    def _vpc_DescribeSecurityGroupPolicies(self, params: dict[str, Any]) -> dict[str, Any]:
        ingress = self._security_group(params)
        return {
            "SecurityGroupPolicySet": {
                "Version": str(len(ingress)),
                "Ingress": [dict(p, PolicyIndex=n) for n, p in enumerate(ingress)],
                "Egress": [],
            }
        }

    def _vpc_CreateSecurityGroupPolicies(self, params: dict[str, Any]) -> dict[str, Any]:
        ingress = self._security_group(params)
        new = (params.get("SecurityGroupPolicySet") or {}).get("Ingress") or []
        for rule in new:
            if not isinstance(rule.get("Port"), str):
                raise ApiError("InvalidParameter", f"Port must be a string: {rule.get('Port')!r}")
            if rule.get("Action") not in ("ACCEPT", "DROP"):
                raise ApiError("InvalidParameter", f"bad Action {rule.get('Action')!r}")
        # PolicyIndex: where to insert (0: before the first rule); absent: at the end.
        index = new[0].get("PolicyIndex") if new else None
        rules = [{k: v for k, v in rule.items() if k != "PolicyIndex"} for rule in new]
        if index is None:
            ingress.extend(rules)
        else:
            ingress[index:index] = rules
        return {}


class _Handler(BaseHTTPRequestHandler):
    standin: TencentStandIn

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, response: dict[str, Any]) -> None:
        response["RequestId"] = str(uuid.uuid4())
        payload = json.dumps({"Response": response}).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")  # exactly: no charset
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        action = self.headers.get("X-TC-Action", "")
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        call = Call("?", action, params, body)
        self.standin.calls.append(call)
        try:
            call.service = self.standin.authenticate(self.headers, body)
            response = self.standin.handle(call.service, action, params)
        except ApiError as exc:
            call.error = exc.code
            self._answer({"Error": {"Code": exc.code, "Message": exc.message}})
            return
        self._answer(response)


# ---- helpers for tests that drive the cloud commands against the stand-in ------------------

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


class FakeClock:
    """A monotonic clock that only sleeping moves: polls and backoffs take no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def use_standin_credentials(monkeypatch: Any, standin: TencentStandIn, home: Any) -> None:
    """The SDK finds the stand-in's keys in the environment and talks to it directly.

    Proxies are cleared: the SDK honours HTTP_PROXY even for 127.0.0.1. HOME points at an
    empty directory so no ~/.tencentcloud/credentials of the machine is read.
    """
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", standin.secret_id)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", standin.secret_key)
    monkeypatch.delenv("TENCENTCLOUD_REGION", raising=False)
