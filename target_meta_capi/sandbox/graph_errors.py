"""Graph's error answers as the sandbox gives them: ``{"error": {...}}`` (GraphError), its
generic error, the subcodes of the sandbox's own refusals, the X-Business-Use-Case-Usage
header and the fbtrace_id every answer carries."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

#: the sandbox's own subcode for an event on its reject list (see SandboxConfig)
REJECTED_EVENT_SUBCODE = 2804099
THROTTLE_SUBCODE = 2446079
#: Graph's subcode for a pixel id that does not exist or that the token may not use
UNKNOWN_OBJECT_SUBCODE = 33
SANDBOX_BUSINESS_ID = "100000000000001"  # names the business in usage headers


class GraphError(Exception):
    """An error answer, shaped like Graph's ``{"error": {...}}``."""

    def __init__(
        self,
        http_status: int,
        code: int,
        message: str,
        *,
        error_type: str = "OAuthException",
        subcode: int | None = None,
        is_transient: bool = False,
        user_title: str | None = None,
        user_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.error_type = error_type
        self.subcode = subcode
        self.is_transient = is_transient
        self.user_title = user_title
        self.user_message = user_message

    def body(self, fbtrace_id: str) -> dict[str, Any]:
        # Graph leaves out error_subcode and the user_* fields when it has none
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "code": self.code,
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["is_transient"] = self.is_transient
        if self.user_title is not None:
            error["error_user_title"] = self.user_title
        if self.user_message is not None:
            error["error_user_msg"] = self.user_message
        error["fbtrace_id"] = fbtrace_id
        return {"error": error}


#: Graph's generic error, the answer to an exception the sandbox did not expect
UNKNOWN_ERROR = GraphError(500, 1, "An unknown error occurred", is_transient=True)


def invalid_parameter(message: str) -> GraphError:
    return GraphError(400, 100, message)


def usage_headers(call_count: int, regain_access_minutes: int) -> tuple[tuple[str, str], ...]:
    """X-Business-Use-Case-Usage of the sandbox's business, shaped as Graph sends it."""
    entry = {
        "type": "ads_management",
        "call_count": call_count,
        "total_cputime": min(call_count, 25),
        "total_time": min(call_count, 25),
        "estimated_time_to_regain_access": regain_access_minutes,
    }
    usage = msgspec.json.encode({SANDBOX_BUSINESS_ID: [entry]}).decode()
    return (("X-Business-Use-Case-Usage", usage),)


def new_fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)
