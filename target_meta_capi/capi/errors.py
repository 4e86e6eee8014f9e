"""Errors raised by the CAPI client, and classification of Graph API error responses.

Every message and repr is safe to log: it never contains an access token (Graph echoes
malformed tokens back in its messages, so those are redacted) and never contains event data.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._answer_json import answer_json
from ._words import counted
from .privacy import MASK, shown_url
from .usage import regain_access_seconds

if TYPE_CHECKING:
    from .request import EventResponse

THROTTLE_CODES = frozenset({4, 17, 32, 341, 613, *range(80000, 80015)})
AUTH_CODES = frozenset({10, 102, 104, 190, *range(200, 300)})
TRANSIENT_CODES = frozenset({1, 2})
INVALID_PARAMETER_CODE = 100
UNKNOWN_PIXEL_SUBCODE = 33
# Graph answers a missing or wrong appsecret_proof with code 100 of this type: an auth problem,
# which splitting the request would only multiply.
APP_SECRET_PROOF_ERROR_TYPE = "GraphMethodException"

# Graph access tokens start with "EAA"; catches tokens echoed back even when we do not know them.
_ACCESS_TOKEN_PATTERN = re.compile(r"EAA[A-Za-z0-9]{16,}")
_HTML_TITLE_PATTERN = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
# a secret this long is cut out wherever it is; seven characters still take in every IPv4
# address (1.2.3.4)
_MIN_SECRET_LENGTH = 7
# a shorter one (a short id, "::1", "Bot/1") only where it stands alone, not inside a word or
# number; one or two characters, as "1" or "US", would cut ordinary words and numbers
_MIN_ALONE_SECRET_LENGTH = 3
# what makes a secret's quoted forms differ from it: JSON's escapes, and Python's in a repr
_ESCAPED_CHARACTERS = re.compile(r"""[^\x20-\x7e]|["'\\/]""")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove the given secrets and anything that looks like an access token from text.

    A secret is cut out as written and as a text quoting it may have escaped it: in a JSON
    string (non-ASCII as \\uXXXX or not, "/" as "\\/" as PHP writes it) or in a Python repr."""
    anywhere: set[str] = set()
    alone: set[str] = set()
    for secret in filter(None, set(secrets)):
        if len(secret) >= _MIN_SECRET_LENGTH:
            anywhere.update(_quoted_forms(secret))
        elif len(secret) >= _MIN_ALONE_SECRET_LENGTH:
            alone.update(_quoted_forms(secret))
    # the longest first: one secret may hold another (a user agent and its prefix)
    for form in sorted(anywhere, key=len, reverse=True):
        text = text.replace(form, MASK)
    if alone:
        forms = "|".join(map(re.escape, sorted(alone, key=len, reverse=True)))
        text = re.sub(rf"(?<!\w)(?:{forms})(?!\w)", MASK, text)
    return _ACCESS_TOKEN_PATTERN.sub(MASK, text)


def _quoted_forms(secret: str) -> set[str]:
    if not _ESCAPED_CHARACTERS.search(secret):
        return {secret}  # as nearly always: no text quotes it otherwise
    forms = {
        secret,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
    }
    return forms | {form.replace("/", "\\/") for form in forms}


class CapiError(Exception):
    """Base class of every error raised by the CAPI client."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling an exception makes it again from its args, which are its message alone:
        # the errors taking keyword-only or other arguments (GraphAPIError's http_status,
        # BatchProcessingError's responses) could not be made so, and a process pool's worker
        # raising one broke the pool instead of handing it to the caller. Made without
        # __init__, from the args and attributes it has.
        return (_remade, (type(self), self.args), self.__dict__)


def _remade(error_class: type[CapiError], args: tuple[Any, ...]) -> CapiError:
    """An error of `error_class` with these args, its attributes to be restored by unpickling."""
    return error_class.__new__(error_class, *args)


class ConfigurationError(CapiError):
    """A setting is unusable: bad batch_size, http service path, graph_url, missing token...,
    or events that cannot be encoded as JSON, or an extinfo version Meta does not take."""


class ProcessorClosedError(CapiError, RuntimeError):
    """The BatchProcessor was closed, or told to refuse new requests: nothing more is sent."""


class DeliveryError(CapiError):
    """Sending a request failed. `retryable` says whether sending it again may succeed."""

    retryable: bool = False
    #: seconds the answer asked to wait before sending again (Retry-After, or Meta's
    #: estimated time to regain access when throttled)
    retry_after: float | None = None
    #: set by RetryPolicy when that wait would have passed its max_time: not retried at all
    wait_beyond_max_time: bool = False
    #: set by RetryPolicy when its wait to retry was cancelled (a process shutting down):
    #: sending it again may well succeed
    retries_cancelled: bool = False
    #: set by RetryPolicy when a retryable error ended its retries: the attempts made, and
    #: whether its max_time (not its max_retries) ran out first, the limit to raise
    attempts: int | None = None
    retry_time_ran_out: bool = False
    #: set by deliver_isolating_invalid: indices of the request's events that Meta accepted
    #: in parts of it sent before this error ended the isolation of its invalid events
    delivered_before: tuple[int, ...] = ()


class NetworkError(DeliveryError):
    """No HTTP answer: connection refused, reset or cut, DNS failure...

    `maybe_delivered` is true when the request may have reached Graph before the failure,
    so a retry can duplicate events (Graph deduplicates them by event_id and event_name).
    """

    def __init__(
        self, message: str, *, maybe_delivered: bool = False, retryable: bool = True
    ) -> None:
        super().__init__(message)
        self.maybe_delivered = maybe_delivered
        self.retryable = retryable

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self)!r}, maybe_delivered={self.maybe_delivered}, "
            f"retryable={self.retryable})"
        )


class LocalResourceError(NetworkError):
    """This machine refused what the request needs (a descriptor beyond the limit on open
    files, for its socket or a file read on the way; buffer space or memory while connecting):
    nothing was sent. Retryable, as NetworkError: they come back as other requests end."""


class RequestTimeout(NetworkError):
    """No answer within the timeout; Graph may have stored the events anyway."""

    def __init__(
        self, message: str, *, maybe_delivered: bool = True, retryable: bool = True
    ) -> None:
        super().__init__(message, maybe_delivered=maybe_delivered, retryable=retryable)


class GraphAPIError(DeliveryError):
    """Graph answered with an error (or with a non-2xx status and a body that is not JSON)."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        code: int | None = None,
        subcode: int | None = None,
        error_type: str | None = None,
        user_title: str | None = None,
        user_message: str | None = None,
        fbtrace_id: str | None = None,
        is_transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code
        self.subcode = subcode
        self.error_type = error_type
        self.user_title = user_title
        self.user_message = user_message
        self.fbtrace_id = fbtrace_id
        self.is_transient = is_transient
        self.retry_after = retry_after

    def __str__(self) -> str:
        details = [f"http_status={self.http_status}"]
        if self.code is not None:
            details.append(f"code={self.code}")
        if self.subcode is not None:
            details.append(f"subcode={self.subcode}")
        if self.error_type:
            details.append(f"type={self.error_type}")
        if self.fbtrace_id:
            details.append(f"fbtrace_id={self.fbtrace_id}")
        text = f"{self.message} ({', '.join(details)})"
        user_text = ": ".join(part for part in (self.user_title, self.user_message) if part)
        return f"{text} — {user_text}" if user_text else text

    def _fields(self) -> dict[str, Any]:
        """What Graph said, as keywords making an error of another class (its kind once known)."""
        return {
            "http_status": self.http_status,
            "code": self.code,
            "subcode": self.subcode,
            "error_type": self.error_type,
            "user_title": self.user_title,
            "user_message": self.user_message,
            "fbtrace_id": self.fbtrace_id,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, http_status={self.http_status}, "
            f"code={self.code}, subcode={self.subcode}, fbtrace_id={self.fbtrace_id!r})"
        )


class TransientError(GraphAPIError):
    """Codes 1 and 2, `is_transient: true`, a 5xx status, a 2xx without an events_received
    count (a proxy's answer, perhaps), or an interim 1xx answer where the final one was due:
    sending again may succeed."""

    retryable = True


class ThrottledError(GraphAPIError):
    """Rate limited (THROTTLE_CODES, or HTTP 429 without one): back off longer, send less."""

    retryable = True


class AuthError(GraphAPIError):
    """Token, permission, app secret proof or pixel problem (AUTH_CODES, 100/33,
    100 GraphMethodException, or HTTP 401/403 without a code): stop."""


class InvalidRequestError(GraphAPIError):
    """Graph refused the request's content. Never retried as is.

    With code 100 one or more events are invalid and the whole request was rejected; splitting
    the request finds them (see capi/isolate.py).
    """

    @property
    def bisectable(self) -> bool:
        return self.code == INVALID_PARAMETER_CODE and self.subcode != UNKNOWN_PIXEL_SUBCODE


class RequestTooLargeError(InvalidRequestError):
    """HTTP 413 without a Graph error: a proxy in front of Graph (nginx allows 1 MB by
    default) refused the body's size. Halves are smaller, so it is split like invalid events;
    an event too large alone is rejected."""

    @property
    def bisectable(self) -> bool:
        return True


class BodyLimitError(RequestTooLargeError):
    """HTTP 413 without a Graph error for the request's smallest event sent alone: the limit
    of a proxy in front of Graph is below any of its events, so splitting on would only find
    every event too large."""

    def __init__(self, message: str, *, event_bytes: int, **details: Any) -> None:
        super().__init__(message, **details)
        self.event_bytes = event_bytes

    @classmethod
    def from_error(cls, error: GraphAPIError, *, event_bytes: int) -> BodyLimitError:
        return cls(error.message, event_bytes=event_bytes, **error._fields())

    @property
    def bisectable(self) -> bool:
        return False

    def __str__(self) -> str:
        return (
            "a proxy in front of Graph refused even the request's smallest event, sent alone "
            f"({self.event_bytes} bytes of JSON), as too large: {super().__str__()}. Splitting "
            "cannot help; raise the proxy's body-size limit (nginx: client_max_body_size, 1 MB "
            "by default)"
        )


class RequestRejectedError(InvalidRequestError):
    """Graph refused something the whole request carries (a parameter such as upload_source),
    not one of its events: its first, middle and last event, each sent alone, got the very error
    the request got. Splitting on would send every event alone to the same end."""

    @classmethod
    def from_error(cls, error: GraphAPIError) -> RequestRejectedError:
        return cls(error.message, **error._fields())

    @property
    def bisectable(self) -> bool:
        return False

    def __str__(self) -> str:
        return (
            "Meta rejected the request itself, not its events (its first, middle and last event "
            f"alone got the same error): {super().__str__()}. Check the request's settings "
            "(upload_source, upload_tag, upload_id, namespace_id, partner_agent, "
            "test_event_code, api_version)."
        )


class EventsReceivedMismatch(DeliveryError):
    """Graph answered 200 but counted a different number of events than were sent.

    Not retried: some events may have been stored.
    """

    def __init__(self, *, sent: int, received: int, fbtrace_id: str | None = None) -> None:
        self.sent = sent
        self.received = received
        self.fbtrace_id = fbtrace_id
        super().__init__(
            f"Graph received {received} of {counted(sent, 'event')} (fbtrace_id={fbtrace_id})"
        )

    def __repr__(self) -> str:
        return (
            f"EventsReceivedMismatch(sent={self.sent}, received={self.received}, "
            f"fbtrace_id={self.fbtrace_id!r})"
        )


#: How many of its failures a BatchProcessingError's text quotes; `failures` holds them all.
_FAILURES_LISTED = 5


class BatchProcessingError(CapiError):
    """Some requests of a BatchProcessor run failed; all the others completed.

    `failures` lists (request_index, error) in request order; `responses` holds one entry per
    request, None where it failed.
    """

    def __init__(
        self,
        failures: Sequence[tuple[int, BaseException]],
        responses: Sequence[EventResponse | None],
    ) -> None:
        self.failures = list(failures)
        self.responses = list(responses)
        listed = "; ".join(
            f"request {index}: {type(error).__name__}: {error}"
            for index, error in self.failures[:_FAILURES_LISTED]
        )
        # an expired token fails every request alike: a text quoting a thousand failures
        # would be a log line of hundreds of kilobytes saying one thing
        if len(self.failures) > _FAILURES_LISTED:
            listed += f"; and {len(self.failures) - _FAILURES_LISTED} more (see failures)"
        super().__init__(
            f"{len(self.failures)} of {counted(len(self.responses), 'request')} failed: {listed}"
        )

    def __repr__(self) -> str:
        indices = [index for index, _ in self.failures]
        return f"BatchProcessingError(failed_requests={indices}, requests={len(self.responses)})"


def classify_response(
    status: int,
    body: bytes,
    *,
    secrets: Iterable[str | None] = (),
    headers: Mapping[str, str] | None = None,
) -> GraphAPIError:
    """Turn a Graph error answer (any status, usually non-2xx) into the matching error class.

    `secrets` (the access token, app secret...) are removed from every text taken from the body.
    The longest wait `headers` ask for (Retry-After, or Meta's estimated time to regain
    access in X-Business-Use-Case-Usage) becomes the error's `retry_after`.
    """
    error = _classify(status, body, tuple(secrets), headers or {})
    asked = [
        seconds
        for seconds in (retry_after_seconds(headers or {}), regain_access_seconds(headers or {}))
        if seconds is not None
    ]
    error.retry_after = max(asked, default=None)
    return error


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a Retry-After header asks for (delay-seconds or an HTTP date), or None."""
    value = next((value for name, value in headers.items() if name.lower() == "retry-after"), None)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # "²" is a digit too, which float() refuses
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None  # neither form: as if absent
    if when.tzinfo is None:  # an HTTP date is GMT; a date without a zone is not one
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _classify(
    status: int, body: bytes, secrets: tuple[str | None, ...], headers: Mapping[str, str]
) -> GraphAPIError:
    error = _error_object(body)
    if error is None:
        return _classify_without_error_object(status, body, secrets, headers)

    code = _as_int(error.get("code"))
    subcode = _as_int(error.get("error_subcode"))
    is_transient = error.get("is_transient") is True
    fields: dict[str, Any] = {
        "http_status": status,
        "code": code,
        "subcode": subcode,
        "error_type": answer_text(error.get("type"), secrets),
        "user_title": answer_text(error.get("error_user_title"), secrets),
        "user_message": answer_text(error.get("error_user_msg"), secrets),
        "fbtrace_id": answer_text(error.get("fbtrace_id"), secrets),
        "is_transient": is_transient,
    }
    message = answer_text(error.get("message"), secrets) or "Graph API error"
    error_class = _error_class(status, code, subcode, is_transient, fields["error_type"])
    return error_class(message, **fields)


def _error_class(
    status: int, code: int | None, subcode: int | None, is_transient: bool, error_type: str | None
) -> type[GraphAPIError]:
    if code in THROTTLE_CODES:
        return ThrottledError
    if code in AUTH_CODES or (code == INVALID_PARAMETER_CODE and subcode == UNKNOWN_PIXEL_SUBCODE):
        return AuthError
    if code == INVALID_PARAMETER_CODE and error_type == APP_SECRET_PROOF_ERROR_TYPE:
        return AuthError
    if code == INVALID_PARAMETER_CODE and subcode is not None and subcode // 1000 == 2804:
        # an invalid event (2804xxx): retrying it as is cannot help, whatever is_transient says
        return InvalidRequestError
    if code in TRANSIENT_CODES or is_transient:
        return TransientError
    if code == INVALID_PARAMETER_CODE:
        return InvalidRequestError
    return _class_for_status(status)


def _class_for_status(status: int) -> type[GraphAPIError]:
    if status >= 500 or status < 300 or status == 408:
        # a 2xx we could not read may come from a proxy, and a 1xx is an interim answer
        # (102 Processing, 103 Early Hints), not the final one: whether Graph got it is unknown;
        # a 408 is a proxy or load balancer timing out, which the client may repeat (RFC 9110)
        return TransientError
    if status == 429:
        return ThrottledError
    if status == 413:
        return RequestTooLargeError
    if status in (401, 403):
        return AuthError
    return InvalidRequestError


#: A 3xx without a Location header: a redirect that leads nowhere, so nowhere to point graph_url to
REDIRECT_WITHOUT_LOCATION = "a redirect without a Location header (no URL it leads to)"


def _classify_without_error_object(
    status: int, body: bytes, secrets: tuple[str | None, ...], headers: Mapping[str, str]
) -> GraphAPIError:
    # Secrets are cut out before a text is shortened or a URL in it masked: either could cut
    # one in two and leave its start, which a search for the whole secret no longer finds.
    title_match = _HTML_TITLE_PATTERN.search(body[:4096])
    title = title_match.group(1).decode("utf-8", "replace").strip() if title_match else ""
    description = f"HTTP {status} without a Graph error object ({len(body)} bytes"
    description += f", page title {redact(title, secrets)[:120]!r})" if title else ")"
    location = next((value for name, value in headers.items() if name.lower() == "location"), "")
    if 300 <= status < 400 and location:
        # not followed: the request, which carries the token, would go where the answer says
        shown = shown_url(redact(location, secrets))[:300]
        description += f": a redirect to {shown!r}, not followed"
    elif 300 <= status < 400:
        description += f": {REDIRECT_WITHOUT_LOCATION}"
    return _class_for_status(status)(description, http_status=status)


def _error_object(body: bytes) -> dict[str, Any] | None:
    parsed = answer_json(body)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else None


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e400 reads as inf
        return None


#: Graph's texts end up in log lines, the summary and dead letters: a line break or a terminal
#: escape in one (a proxy's answer, say) would forge or garble the log lines after it
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: Graph's longest messages are a few hundred characters; what is longer is not its
_TEXT_LIMIT = 2000


def answer_text(value: Any, secrets: Iterable[str | None]) -> str | None:
    """A text of Graph's answer as errors show it: secrets masked, cut to a log line's length,
    control characters escaped."""
    if value is None:
        return None
    text = redact(str(value), secrets)
    if len(text) > _TEXT_LIMIT:
        text = f"{text[:_TEXT_LIMIT]}… ({len(text)} characters)"
    return _CONTROL_CHARACTERS.sub(_escaped, text)


def _escaped(character: re.Match[str]) -> str:
    return character.group().encode("unicode_escape").decode("ascii")
