"""EventRequest / EventRequestAsync: one POST of up to 1000 events to a pixel's /events edge."""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import hmac
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import msgspec

from ._answer_json import answer_json
from ._hooks import notify
from ._thread_pools import submit_or_hand_back
from .errors import (
    ConfigurationError,
    DeliveryError,
    EventsReceivedMismatch,
    NetworkError,
    answer_text,
    classify_response,
    redact,
)
from .http import (
    DEFAULT_POOL_SIZE,
    HttpResponse,
    HttpServiceInterface,
    answer_in_error,
    checked_response,
    classify_transport_error,
    load_http_service,
    mask_in_http_logs,
)
from .privacy import (
    FREE_TEXT_FIELDS,
    field_texts,
    page_url_secrets,
    shown_url,
    unhashed_user_data_values,
    url_secrets,
    urls_shown_in,
)
from .retry import RetryPolicy
from .rules import MAX_EVENTS_PER_REQUEST
from .usage import rate_limit_usage_percent

DEFAULT_API_VERSION = "v24.0"
#: Graph API versions as Meta names them: v24.0 (ASCII digits: \d takes v٢٤.0 too)
API_VERSION_PATTERN = re.compile(r"v[0-9]+\.[0-9]+")
DEFAULT_GRAPH_URL = "https://graph.facebook.com"
REQUEST_HEADERS: Mapping[str, str] = MappingProxyType(
    {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": "target-meta-capi",
    }
)
#: The request's optional parameters, sent in the body as given when set.
OPTIONAL_PARAMETERS = (
    "test_event_code",
    "partner_agent",
    "namespace_id",
    "upload_id",
    "upload_tag",
    "upload_source",
)
_encoder = msgspec.json.Encoder(decimal_format="number")
_DATA_OPENING = b'{"data":['
#: The longest `timeout`: a wait past the platform's time_t (inf, 1e12) fails deep inside the
#: HTTP library with OverflowError, and a day is past any answer worth waiting for.
MAX_TIMEOUT_SECONDS = 86_400


def is_pixel_id(text: str) -> bool:
    """Whether `text` can be a pixel (dataset) ID: ASCII digits only (isdigit() takes "²" too)."""
    return text.isascii() and text.isdigit()


class RequestObserver(Protocol):
    """Hooks for metrics. Subclass it to inherit no-op defaults and override what you need.

    Each hook returns explicitly: a type checker takes a protocol's method whose body is only
    a docstring for abstract, and would refuse a subclass overriding some hooks, not all.
    """

    def on_attempt(
        self, events: int, status: int | None, seconds: float, error: Exception | None
    ) -> None:
        """After every HTTP attempt; status is None when no HTTP answer came."""
        return None

    def on_retry(self, error: Exception, attempt: int, delay: float) -> None:
        """Before sleeping `delay` seconds to retry after attempt number `attempt` failed."""
        return None

    def on_rate_limit_usage(self, percent: float) -> None:
        """After an answer that reported Meta's rate-limit usage: the highest share (percent)
        of any app or business limit used (see capi/usage.py)."""
        return None


@dataclass(frozen=True)
class EventResponse:
    events_received: int
    messages: list[str]
    fbtrace_id: str | None


#: What an EventRequest's body is made of: setting one drops the body `with_encoded_body` made
_BODY_FIELDS = frozenset({"events", "access_token", "app_secret", *OPTIONAL_PARAMETERS})
#: An EventRequest or a subclass: its copies are of its class (an EventRequestAsync's copy
#: returns a Future from execute(), as type checkers must see)
_Request = TypeVar("_Request", bound="EventRequest")


@dataclass
class EventRequest:
    """Events for one pixel; `execute()` sends them, retrying transient failures.

    An event is a mapping, or a `msgspec.Raw` holding it already encoded as a JSON object
    (the body then embeds those bytes as they are).

    The access token and appsecret_proof travel in the JSON body, never in the URL.
    A `http_service` may be an HttpServiceInterface, a class, or "package.module:ClassName".
    `private_fields`: paths of event fields outside user_data (("custom_data", "buyer")) that
    carry customer information as it is; an error message never quotes their values, as it
    never quotes user_data's unhashed ones.
    """

    pixel_id: str
    events: list[Any] = field(default_factory=list)
    access_token: str | None = field(default=None, repr=False)
    app_secret: str | None = field(default=None, repr=False)
    test_event_code: str | None = None
    partner_agent: str | None = None
    namespace_id: str | None = None
    upload_id: str | None = None
    upload_tag: str | None = None
    upload_source: str | None = None
    api_version: str = DEFAULT_API_VERSION
    graph_url: str = DEFAULT_GRAPH_URL
    timeout: float | None = 60.0
    http_service: HttpServiceInterface | str | type | None = None
    retry_policy: RetryPolicy | None = None
    private_fields: tuple[tuple[str, ...], ...] = ()
    #: the body, once encoded by `with_encoded_body` (for these very events)
    encoded_body: bytes | None = field(default=None, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # a request whose body `with_encoded_body` encoded, then given other events or a
        # test_event_code as Meta's SDK sets them, would still send the old body
        if name in _BODY_FIELDS and self.encoded_body is not None:
            object.__setattr__(self, "encoded_body", None)
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        # events hold customer data, the token is a secret: show neither
        return (
            f"{type(self).__name__}(pixel_id={self.pixel_id!r}, events={len(self.events)}, "
            f"api_version={self.api_version!r}, graph_url={shown_graph_url(self.graph_url)!r}, "
            f"test_event_code={self.test_event_code!r})"
        )

    @property
    def url(self) -> str:
        """The events edge under graph_url; a query graph_url has (a gateway's key, say) goes
        after the path, and a fragment, which no HTTP client sends, is left out."""
        parts = urlsplit(self.graph_url)
        path = f"{parts.path.rstrip('/')}/{self.api_version}/{self.pixel_id}/events"
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))

    @property
    def appsecret_proof(self) -> str | None:
        if not self.app_secret or not self.access_token:
            return None
        return hmac.new(
            self.app_secret.encode(), self.access_token.encode(), hashlib.sha256
        ).hexdigest()

    @property
    def body(self) -> bytes:
        if self.encoded_body is not None:
            return self.encoded_body
        payload: dict[str, Any] = {"data": self.events, "access_token": self.access_token}
        proof = self.appsecret_proof
        if proof:
            payload["appsecret_proof"] = proof
        for name in OPTIONAL_PARAMETERS:
            value = getattr(self, name)
            if value is not None:
                payload[name] = value
        return body_json(payload)

    def copy_with(
        self: _Request,
        events: list[Any],
        *,
        pixel_id: str | None = None,
        private_fields: tuple[tuple[str, ...], ...] | None = None,
    ) -> _Request:
        """The same request (every setting kept, same class) carrying other events, to
        another pixel when `pixel_id` is given (None keeps this one; "" is refused on
        sending, as by a request made with it), with other `private_fields` when given."""
        return dataclasses.replace(
            self,
            events=events,
            encoded_body=None,
            pixel_id=self.pixel_id if pixel_id is None else pixel_id,
            private_fields=self.private_fields if private_fields is None else private_fields,
        )

    def with_encoded_body(self: _Request) -> _Request:
        """This request with its body encoded now and its events read from that body.

        A request waiting for its answer then holds its events once, not twice (events and
        body are the same size). Each event becomes a `msgspec.Raw` view into the body.
        """
        events = [
            event if isinstance(event, msgspec.Raw) else encoded_event(event)
            for event in self.events
        ]
        body = self.copy_with(events).body
        if not body.startswith(_DATA_OPENING):  # not a layout this method knows
            return self.copy_with(events)
        whole = memoryview(body)
        views = []
        start = len(_DATA_OPENING)
        for event in events:
            end = start + len(event)
            views.append(msgspec.Raw(whole[start:end]))
            start = end + 1  # the comma
        return dataclasses.replace(self, events=views, encoded_body=body)

    def execute(
        self,
        *,
        observer: RequestObserver | None = None,
        cancel: threading.Event | None = None,
    ) -> EventResponse:
        return self.execute_blocking(observer=observer, cancel=cancel)

    def execute_blocking(
        self,
        *,
        observer: RequestObserver | None = None,
        cancel: threading.Event | None = None,
    ) -> EventResponse:
        """Send in the calling thread, retrying per `retry_policy` (async requests too).

        Once `cancel` is set (a process shutting down), a wait to retry ends at once and no
        retry starts: the error that made it wait is raised.
        """
        self._check()
        mask_in_http_logs(self.access_token, self.app_secret)
        service = load_http_service(self.http_service)
        url, body = self.url, self.body
        policy = self.retry_policy or RetryPolicy()
        # a partial, not a closure: the frames a failed request's error passed through can be
        # cleared of the request and its body (a closure's cells outlive the clearing)
        attempt = functools.partial(self._attempt, service, url, body, observer)
        return policy.call(attempt, observer=observer, cancel=cancel)

    def _check(self) -> None:
        if not self.pixel_id:
            raise ConfigurationError("EventRequest needs a pixel_id")
        # a number is read as its digits, as the URL writes it
        pixel_id = self.pixel_id if type(self.pixel_id) is not int else str(self.pixel_id)
        if not isinstance(pixel_id, str) or not is_pixel_id(pixel_id):
            # not quoted: a token pasted in its place is still the token
            raise ConfigurationError(
                "EventRequest's pixel_id must be a pixel (dataset) ID: its digits only"
            )
        # neither is quoted: they are secrets
        if not self.access_token or not isinstance(self.access_token, str):
            raise ConfigurationError("EventRequest needs an access_token, as text")
        if self.app_secret is not None and not isinstance(self.app_secret, str):
            raise ConfigurationError("EventRequest's app_secret must be text or None")
        version = self.api_version
        if not isinstance(version, str) or not API_VERSION_PATTERN.fullmatch(version):
            shown = redact(repr(version), [self.access_token, self.app_secret])
            raise ConfigurationError(
                f"EventRequest's api_version must be a Graph API version like "
                f"{DEFAULT_API_VERSION}, got {shown}"
            )
        if self.retry_policy is not None and not isinstance(self.retry_policy, RetryPolicy):
            raise ConfigurationError(
                f"retry_policy must be a RetryPolicy, not {type(self.retry_policy).__name__}"
            )
        problem = timeout_problem(self.timeout)
        if problem:
            raise ConfigurationError(f"timeout {self.timeout!r} {problem}")
        problem = graph_url_problem(self.graph_url)
        if problem:
            raise ConfigurationError(f"graph_url {shown_graph_url(self.graph_url)!r} {problem}")
        if is_one_event(self.events):
            raise ConfigurationError(ONE_EVENT_FOR_EVENTS)
        if not isinstance(self.events, Sized):
            raise ConfigurationError(
                "events must be a list (a generator can be read only once: make a list of it)"
            )
        if not 1 <= len(self.events) <= MAX_EVENTS_PER_REQUEST:
            raise ConfigurationError(
                f"an EventRequest carries 1 to {MAX_EVENTS_PER_REQUEST} events, "
                f"not {len(self.events)}"
            )

    def _attempt(
        self,
        service: HttpServiceInterface,
        url: str,
        body: bytes,
        observer: RequestObserver | None,
    ) -> EventResponse:
        started = time.monotonic()
        status: int | None = None
        try:
            translated: Exception | None = None
            try:
                answer = service.execute("POST", url, REQUEST_HEADERS, body, self.timeout)
            except Exception as error:
                answer_raised = answer_in_error(error)
                if answer_raised is not None:
                    answer = answer_raised
                else:
                    translated = self._redacted(classify_transport_error(error) or error)
                    if translated is error:
                        raise
            if translated is not None:
                # Raised out here, so that the HTTP library's exception (whose type and text it
                # quotes) is neither its cause nor its context: that exception holds the request
                # (requests': .request.body, with the token, appsecret_proof and the events),
                # its frames the body, its text maybe graph_url's query. A kept error (a
                # future's, a BatchProcessingError's) would keep them all in memory, and an
                # error reporter walking the chain would read them.
                raise translated
            answer = checked_response(answer, service)
            status = answer.status
            if observer is not None:
                usage = rate_limit_usage_percent(answer.headers)
                if usage is not None:
                    notify(observer, "on_rate_limit_usage", usage)
            response = self._parse(answer)
        except Exception as error:
            if observer is not None:
                seconds = time.monotonic() - started
                notify(observer, "on_attempt", len(self.events), status, seconds, error)
            raise
        if observer is not None:
            seconds = time.monotonic() - started
            notify(observer, "on_attempt", len(self.events), status, seconds, None)
        return response

    def _parse(self, answer: HttpResponse) -> EventResponse:
        if not 200 <= answer.status < 300:
            raise classify_response(
                answer.status, answer.body, secrets=self._secrets(), headers=answer.headers
            )
        parsed = answer_json(answer.body)
        received = parsed.get("events_received") if isinstance(parsed, dict) else None
        if received.__class__ is not int:  # not 1.9, not true: a count or nothing we trust
            raise classify_response(
                answer.status, answer.body, secrets=self._secrets(), headers=answer.headers
            )
        # as EventResponse types them: a text "messages" would become a list of its letters
        fbtrace_id = parsed.get("fbtrace_id")
        if not isinstance(fbtrace_id, str):
            fbtrace_id = None
        if received != len(self.events):
            # its text quotes the trace id, which is the answer's to say, as an error's is
            raise EventsReceivedMismatch(
                sent=len(self.events),
                received=received,
                fbtrace_id=answer_text(fbtrace_id, self._secrets()) if fbtrace_id else None,
            )
        messages = parsed.get("messages")
        if not isinstance(messages, list):
            messages = []
        # what a message may not quote, found once for the answer: it decodes every event
        secrets = self._secrets() if messages else []
        return EventResponse(
            events_received=received,
            messages=[self._message_text(message, secrets) for message in messages],
            fbtrace_id=fbtrace_id,
        )

    def _message_text(self, message: Any, secrets: list[str | None]) -> str:
        """A message of Graph's success answer (a warning: a deprecated parameter, say) as
        errors show Graph's texts, and any URL in it without its query string: a caller logs
        them. One that is not text is shown as the JSON it was."""
        text = message if isinstance(message, str) else msgspec.json.encode(message).decode()
        # the secrets first: a URL is shown masked from its "?" up to the next space, which
        # may take the start of a secret (a user agent) and leave its end for no one to find
        return answer_text(urls_shown_in(redact(text, secrets)), ()) or ""

    def _redacted(self, error: Exception) -> Exception:
        # a custom service's message may quote what it was given: one that does is shown as
        # Graph's texts are, also cut and escaped (a whole body quoted is ~400,000 characters)
        text = str(error)
        clean = redact(text, self._secrets())
        if clean == text:
            return error
        clean = answer_text(clean, ()) or ""
        if isinstance(error, NetworkError):
            # made as unpickling makes it (CapiError.__reduce__), not by calling its class: a
            # service's own subclass may take other arguments; its attributes are kept
            redacted = copy.copy(error)
            redacted.args = (clean,)
            return redacted
        # an exception of any other type may not be made again with another message
        return DeliveryError(f"{type(error).__name__} from the HTTP service: {clean}")

    def _secrets(self) -> list[str | None]:
        """What no error message may quote: the token, the app secret and its proof, and the
        customer data sent as it is (user_data's IP address, user agent..., the values at
        `private_fields` and `FREE_TEXT_FIELDS`, what `shown_event` masks of page URLs), which
        an answer may echo, and the userinfo, query and fragment of graph_url."""
        secrets: list[str | None] = [self.access_token, self.app_secret, self.appsecret_proof]
        # an HTTP library's message quotes the URL, and a token may be in graph_url's query
        secrets.extend(url_secrets(self.graph_url))
        for event in self.events:
            try:
                decoded = msgspec.json.decode(event) if isinstance(event, msgspec.Raw) else event
            except msgspec.DecodeError:
                # Graph refuses a body it cannot parse, and quotes nothing of it; this error
                # would replace Graph's
                continue
            if isinstance(decoded, Mapping):
                secrets.extend(unhashed_user_data_values(decoded))
                secrets.extend(field_texts(decoded, (*self.private_fields, *FREE_TEXT_FIELDS)))
                secrets.extend(page_url_secrets(decoded))
        return secrets


#: Said when one event is given where events are: sent so, Graph refuses it ("param data
#: must be an array"), and events read from a dict would be its keys.
ONE_EVENT_FOR_EVENTS = "events must be a list of events, not one event: give [event]"


def is_one_event(events: object) -> bool:
    """Whether `events`, meant to hold events, is one event itself (a mapping, or encoded)."""
    return isinstance(events, (Mapping, msgspec.Raw))


def encoded_event(event: Mapping[str, Any], *, check_types: bool = True) -> msgspec.Raw:
    """The event as a request's body embeds it (an EventRequest takes it so). An event
    waiting to be sent is held in a fraction of the memory its dict takes. `check_types`:
    see body_json."""
    return msgspec.Raw(body_json(event, check_types=check_types))


def body_json(value: Any, *, check_types: bool = True) -> bytes:
    """JSON as a request's body holds it: the whole payload, or one event embedded in it (a
    process handing events on to another encodes them with this too).

    ConfigurationError for a value JSON cannot hold, naming where it is (the event's index in
    a payload, and its field), never what it is. Values of a type JSON has none for, which
    msgspec would write in a form of its own (bytes as base64, a datetime or a UUID as text, a
    set as a list), are refused too, unless `check_types` is False: for events made of JSON's
    types only (the target's mapping makes them so), which spares a walk through each event
    as long as its encoding."""
    try:
        encoded = _encoder.encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError) as error:
        raise ConfigurationError(
            f"the events cannot be encoded as JSON ({_unencodable_problem(value, error)})"
        ) from None
    if check_types and not _holds_json_types_only(value):
        found = _first_item(value, _has_no_json_type)
        if found is not None:
            place, item = found
            raise ConfigurationError(
                f"the events cannot be encoded as JSON ({_place_text(place)} is of type "
                f"{type(item).__name__}, which JSON has none for: give text, a number, a "
                "list or an object)"
            )
    # msgspec writes a float NaN or infinity as null (an amount would reach Meta as none,
    # unsaid), and 0.18, the oldest allowed, a Decimal one as NaN or Infinity, no JSON
    if b"null" in encoded or b"NaN" in encoded or b"Infinity" in encoded:
        found = _first_item(value, _is_non_finite_number)
        if found is not None:
            raise ConfigurationError(
                f"the events cannot be encoded as JSON ({_place_text(found[0])} {_NO_JSON_NUMBER})"
            )
    return encoded


_Place = tuple[str | int, ...]
_NO_JSON_NUMBER = "is NaN or infinite, which JSON has no number for"


def _unencodable_problem(value: Any, error: Exception) -> str:
    """Where the item is that msgspec cannot encode, and why; msgspec names the type or the
    character it cannot encode, never the event's data."""
    found = _first_item(value, _is_unencodable)
    if found is None:
        return f"{type(error).__name__}: {error}"
    place, item = found
    if _is_non_finite_number(item):
        return f"{_place_text(place)} {_NO_JSON_NUMBER}"
    try:
        _encoder.encode(item)
    except (TypeError, ValueError, OverflowError) as item_error:
        error = item_error
    return f"{_place_text(place)}: {type(error).__name__}: {error}"


def _first_item(value: Any, is_wrong: Callable[[Any], bool]) -> tuple[_Place, Any] | None:
    """The first item in `value`, not a mapping or list itself, that `is_wrong`, and where it
    is (keys and indexes); None when there is none, or it lies deeper than Python recurses."""
    try:
        return _first_item_below(value, is_wrong, ())
    except RecursionError:
        return None


def _first_item_below(
    value: Any, is_wrong: Callable[[Any], bool], place: _Place
) -> tuple[_Place, Any] | None:
    if isinstance(value, Mapping):
        steps: Iterable[tuple[str | int, Any]] = ((str(key), item) for key, item in value.items())
    elif isinstance(value, (list, tuple)):
        steps = enumerate(value)
    else:
        return (place, value) if is_wrong(value) else None
    for step, item in steps:
        found = _first_item_below(item, is_wrong, (*place, step))
        if found is not None:
            return found
    return None


def _place_text(place: _Place) -> str:
    """`event 3's custom_data.contents[0].item_price` in a payload, `custom_data.value` in one
    event."""
    if len(place) >= 2 and place[0] == "data" and isinstance(place[1], int):
        return f"event {place[1]}'s {_place_text(place[2:])}" if place[2:] else f"event {place[1]}"
    text = ""
    for step in place:
        text += f"[{step}]" if isinstance(step, int) else f".{step}" if text else step
    return text or "the value"


#: The types of JSON's values, as msgspec writes them (Raw: JSON already), checked by class
#: first: isinstance is for their subclasses (bool, an IntEnum)
_JSON_SCALARS = (str, int, float, Decimal, type(None), msgspec.Raw)
_JSON_SCALAR_CLASSES = frozenset({*_JSON_SCALARS, bool})


def _holds_json_types_only(value: Any) -> bool:
    """Whether `value` holds nothing but objects, arrays and JSON's scalars; True also when
    it nests deeper than Python recurses (msgspec encoded it, its own limit being higher)."""
    try:
        return _is_json_value(value)
    except RecursionError:
        return True


def _is_json_value(value: Any) -> bool:
    cls = value.__class__
    if cls in _JSON_SCALAR_CLASSES:
        return True
    if cls is dict:
        items: Iterable[Any] = value.values()
    elif cls is list or cls is tuple:
        items = value
    elif isinstance(value, Mapping):
        items = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return isinstance(value, _JSON_SCALARS)
    for item in items:
        if item.__class__ not in _JSON_SCALAR_CLASSES and not _is_json_value(item):
            return False
    return True


def _has_no_json_type(value: Any) -> bool:
    return not isinstance(value, _JSON_SCALARS)


def _is_unencodable(value: Any) -> bool:
    try:
        _encoder.encode(value)
    except (TypeError, ValueError, OverflowError):
        return True
    return False


def _is_non_finite_number(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, Decimal) and not value.is_finite()


def graph_url_problem(graph_url: Any) -> str | None:
    """Why `graph_url` cannot lead to Graph (said at once, not after retrying as a network
    failure); None when it can."""
    # schemes are case-insensitive (RFC 3986): HTTPS:// is https://
    if not isinstance(graph_url, str) or not graph_url.lower().startswith(("https://", "http://")):
        return "must start with https:// or http://"
    try:
        parts = urlsplit(graph_url)
        usable = bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number, or out of range
        usable = False
    if not usable or any(character.isspace() for character in graph_url):
        return "is not a valid URL (a host name, and a port from 1 to 65535 if any)"
    return None


def timeout_problem(timeout: Any) -> str | None:
    """Why `timeout` cannot be given to the HTTP service (said before sending, not as an
    HTTP library's error from deep inside); None when it can. None means no timeout."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        return "must be a number of seconds or None"
    if not 0 < timeout <= MAX_TIMEOUT_SECONDS:  # nan fails this too
        return f"must be more than 0 and at most {MAX_TIMEOUT_SECONDS} seconds"
    return None


def shown_graph_url(graph_url: Any) -> Any:
    """graph_url as a message or repr may quote it: a URL with its userinfo, query and
    fragment masked (`privacy.shown_url`), anything else (a wrong type) as it is."""
    return shown_url(graph_url) if isinstance(graph_url, str) else graph_url


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def shared_executor() -> ThreadPoolExecutor:
    """The one executor every EventRequestAsync runs on (sized like the default HTTP pool)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=DEFAULT_POOL_SIZE, thread_name_prefix="capi-async"
            )
        return _executor


def _forget_executor_in_child() -> None:
    # the parent's executor has no threads in a forked child: work given it would never run
    global _executor, _executor_lock
    _executor = None
    _executor_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_forget_executor_in_child)


class EventRequestAsync(EventRequest):
    """Like EventRequest, but `execute()` returns a Future at once.

    The future resolves to an EventResponse or raises the classified error. All async requests
    share one executor and, unless told otherwise, one pooled HTTP session.
    """

    def execute(  # type: ignore[override]
        self,
        *,
        observer: RequestObserver | None = None,
        cancel: threading.Event | None = None,
    ) -> Future[EventResponse]:
        future: Future[EventResponse] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():  # cancelled while waiting
                return
            try:
                future.set_result(self.execute_blocking(observer=observer, cancel=cancel))
            except BaseException as error:
                future.set_exception(error)

        refused = submit_or_hand_back(shared_executor(), run)
        if refused is not None:
            # The interpreter is exiting (an application flushing the events it holds from
            # an atexit handler would lose them) or no thread could be started: sent in this
            # thread instead, unless a thread the pool has took it first.
            refused()
        return future
