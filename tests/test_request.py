import dataclasses
import datetime
import enum
import hashlib
import hmac
import json
import logging
import threading
import time
import traceback
import uuid
from concurrent.futures import Future
from decimal import Decimal

import msgspec
import pytest

from target_meta_capi.capi.errors import (
    AuthError,
    ConfigurationError,
    DeliveryError,
    EventsReceivedMismatch,
    InvalidRequestError,
    NetworkError,
    RequestTimeout,
    ThrottledError,
    TransientError,
)
from target_meta_capi.capi.http import HttpServiceInterface, RequestsHttpService
from target_meta_capi.capi.request import (
    DEFAULT_API_VERSION,
    EventRequest,
    EventRequestAsync,
    EventResponse,
    RequestObserver,
    encoded_event,
)
from target_meta_capi.capi.retry import RetryPolicy
from tests._http_fixture import (
    HANDLER_WAIT_SECONDS,
    FakeGraphServer,
    RecordingHttpService,
    Reply,
    accept,
    closed_port,
    graph_error,
    html_page,
    success,
)

TOKEN = "EAAGm0PX4ZCpsBAKZBZCtestaccesstoken1234"
APP_SECRET = "app-secret-0123456789"
RAW_EMAIL = "jane.doe@example.com"
FAST_RETRIES = RetryPolicy(
    max_retries=3, base_delay=0.001, max_delay=0.01, throttle_base_delay=0.002
)
NO_RETRIES = RetryPolicy(max_retries=0)
EVENTS = [
    {"event_name": "Purchase", "event_time": 1700000000, "action_source": "website"},
    {"event_name": "Lead", "event_time": 1700000001, "action_source": "website"},
]


def make_request(server: FakeGraphServer, cls=EventRequest, **overrides) -> EventRequest:
    settings = {
        "pixel_id": "1234567890",
        "events": EVENTS,
        "access_token": TOKEN,
        "graph_url": server.url,
        "retry_policy": FAST_RETRIES,
        **overrides,
    }
    return cls(**settings)


def replies(*answers: Reply):
    """A handler giving the answers in turn, then accepting everything."""
    remaining = list(answers)

    def handler(request):
        return remaining.pop(0) if remaining else accept(request)

    return handler


class RecordingObserver(RequestObserver):
    def __init__(self) -> None:
        self.attempts: list[tuple[int, int | None, str | None]] = []
        self.seconds: list[float] = []
        self.retries: list[tuple[str, int]] = []
        self.delays: list[float] = []
        self.usages: list[float] = []

    def on_attempt(self, events, status, seconds, error):
        assert seconds >= 0
        self.attempts.append((events, status, type(error).__name__ if error else None))
        self.seconds.append(seconds)

    def on_retry(self, error, attempt, delay):
        self.retries.append((type(error).__name__, attempt))
        self.delays.append(delay)

    def on_rate_limit_usage(self, percent):
        self.usages.append(percent)


def test_execute_returns_the_graph_response():
    with FakeGraphServer(lambda request: success(2, fbtrace_id="AbC")) as server:
        response = make_request(server).execute()
    assert response == EventResponse(events_received=2, messages=[], fbtrace_id="AbC")


def test_request_posts_json_to_the_pixel_events_edge():
    with FakeGraphServer() as server:
        make_request(server).execute()
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == f"/{DEFAULT_API_VERSION}/1234567890/events"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json["data"] == EVENTS


def test_configured_api_version_is_used():
    with FakeGraphServer() as server:
        make_request(server, api_version="v19.0").execute()
    assert server.requests[0].path == "/v19.0/1234567890/events"


def test_a_query_in_graph_url_follows_the_events_path():
    # an API gateway in front of Graph that wants its key in the query string
    with FakeGraphServer() as server:
        make_request(server, graph_url=f"{server.url}/meta/?key=gw1#ignored").execute()
    assert server.requests[0].path == f"/meta/{DEFAULT_API_VERSION}/1234567890/events?key=gw1"


def test_token_travels_in_the_body_and_never_in_the_url():
    with FakeGraphServer() as server:
        make_request(server).execute()
    (request,) = server.requests
    assert TOKEN not in request.path
    assert "?" not in request.path
    assert request.json["access_token"] == TOKEN


def test_appsecret_proof_is_hmac_sha256_of_the_token_keyed_by_the_app_secret():
    with FakeGraphServer() as server:
        make_request(server, app_secret=APP_SECRET).execute()
    expected = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    body = server.requests[0].json
    assert body["appsecret_proof"] == expected
    assert APP_SECRET not in server.requests[0].body.decode()


def test_optional_parameters_are_sent_when_set():
    options = {
        "test_event_code": "TEST123",
        "partner_agent": "target-meta-capi",
        "namespace_id": "ns",
        "upload_id": "up-1",
        "upload_tag": "nightly",
        "upload_source": "warehouse",
    }
    with FakeGraphServer() as server:
        make_request(server, **options).execute()
    body = server.requests[0].json
    assert {name: body[name] for name in options} == options


def test_unset_optional_parameters_are_left_out():
    with FakeGraphServer() as server:
        make_request(server).execute()
    assert set(server.requests[0].json) == {"data", "access_token"}


def test_decimal_values_are_encoded_as_json_numbers():
    event = {**EVENTS[0], "custom_data": {"value": Decimal("19.99"), "currency": "EUR"}}
    with FakeGraphServer() as server:
        make_request(server, events=[event]).execute()
    assert server.requests[0].json["data"][0]["custom_data"]["value"] == 19.99


def test_copy_with_keeps_every_setting_and_the_class():
    with FakeGraphServer() as server:
        template = make_request(
            server, cls=EventRequestAsync, partner_agent="agent", api_version="v20.0"
        )
    copy = template.copy_with([EVENTS[0]])
    assert type(copy) is EventRequestAsync
    assert copy.events == [EVENTS[0]]
    assert (copy.partner_agent, copy.api_version, copy.access_token) == ("agent", "v20.0", TOKEN)


def test_copy_with_an_empty_pixel_id_is_refused_not_sent_to_the_old_pixel():
    with FakeGraphServer() as server:
        copy = make_request(server).copy_with([EVENTS[0]], pixel_id="")
        with pytest.raises(ConfigurationError, match="needs a pixel_id"):
            copy.execute()
    assert server.requests == []


@pytest.mark.parametrize("pixel_id", ["1234567890 ", "1234567890/events?x=", "١٢٣", 12.0])
def test_a_pixel_id_of_anything_but_digits_is_refused_before_sending(pixel_id):
    # it goes into the URL's path: "1/events?x=" would send elsewhere, and succeed
    with FakeGraphServer() as server:
        request = dataclasses.replace(make_request(server), pixel_id=pixel_id)
        with pytest.raises(ConfigurationError, match=r"pixel_id must be a pixel \(dataset\) ID"):
            request.execute()
    assert server.requests == []


def test_a_pixel_id_given_as_a_number_is_sent_as_its_digits():
    with FakeGraphServer() as server:
        dataclasses.replace(make_request(server), pixel_id=1234567890).execute()
    [sent] = server.requests
    assert sent.path.endswith("/1234567890/events")


@pytest.mark.parametrize("api_version", ["24.0", "v24", "V24.0", " v24.0", None])
def test_an_api_version_graph_does_not_name_so_is_refused_before_sending(api_version):
    with FakeGraphServer() as server:
        request = dataclasses.replace(make_request(server), api_version=api_version)
        with pytest.raises(ConfigurationError) as raised:
            request.execute()
    assert server.requests == []
    assert str(raised.value) == (
        f"EventRequest's api_version must be a Graph API version like v24.0, got {api_version!r}"
    )


def test_events_received_mismatch_raises_and_is_not_retried():
    with (
        FakeGraphServer(lambda request: success(1)) as server,
        pytest.raises(EventsReceivedMismatch) as raised,
    ):
        make_request(server).execute()
    assert (raised.value.sent, raised.value.received) == (2, 1)
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else(status):
    with FakeGraphServer() as elsewhere:
        moved = Reply(status, headers={"Location": elsewhere.url + "/v24.0/1234567890/events"})
        with (
            FakeGraphServer(lambda request: moved) as server,
            pytest.raises(InvalidRequestError),
        ):
            make_request(server).execute()
    assert elsewhere.requests == []
    assert len(server.requests) == 1


def test_a_miscount_echoing_the_token_as_its_trace_id_quotes_it_nowhere():
    body = f'{{"events_received": 1, "fbtrace_id": "{TOKEN}"}}'.encode()
    with (
        FakeGraphServer(lambda request: Reply(200, body)) as server,
        pytest.raises(EventsReceivedMismatch) as raised,
    ):
        make_request(server).execute()
    assert TOKEN not in str(raised.value)
    assert TOKEN not in repr(raised.value)


def test_a_miscounts_trace_id_has_its_control_characters_escaped():
    with (
        FakeGraphServer(lambda request: success(1, fbtrace_id="A1\n| ERROR | forged")) as server,
        pytest.raises(EventsReceivedMismatch) as raised,
    ):
        make_request(server).execute()
    assert raised.value.fbtrace_id == "A1\\n| ERROR | forged"
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("count", ["1.9", "true", '"2"', "null"])
def test_a_success_without_a_whole_events_received_count_is_not_trusted(count):
    body = f'{{"events_received": {count}, "messages": [], "fbtrace_id": "T"}}'.encode()
    with (
        FakeGraphServer(lambda request: Reply(200, body)) as server,
        pytest.raises(TransientError),
    ):
        make_request(server, retry_policy=NO_RETRIES).execute()


@pytest.mark.parametrize(
    "body", [b"<html>captive portal</html>", b'{"messages": []}', b"[2]"], ids=str
)
def test_a_success_whose_body_holds_no_events_received_count_is_transient(body):
    with (
        FakeGraphServer(lambda request: Reply(200, body)) as server,
        pytest.raises(TransientError),
    ):
        make_request(server, retry_policy=NO_RETRIES).execute()


# JSON nested past Python's recursion limit
DEEP_LIST = b"[" * 100_000 + b"]" * 100_000
DEEP_ERROR = b'{"error": ' * 100_000 + b"{}" + b"}" * 100_000


def test_a_success_whose_body_is_nested_past_the_recursion_limit_is_transient():
    with (
        FakeGraphServer(lambda request: Reply(200, DEEP_LIST)) as server,
        pytest.raises(TransientError),
    ):
        make_request(server, retry_policy=NO_RETRIES).execute()


@pytest.mark.parametrize(("status", "error"), [(400, InvalidRequestError), (503, TransientError)])
def test_an_error_answer_nested_past_the_recursion_limit_is_classified_by_its_status(status, error):
    with (
        FakeGraphServer(lambda request: Reply(status, DEEP_ERROR)) as server,
        pytest.raises(error),
    ):
        make_request(server, retry_policy=NO_RETRIES).execute()


def test_a_success_with_messages_and_trace_id_of_other_types_reports_neither():
    answer = Reply(200, b'{"events_received": 2, "messages": "abc", "fbtrace_id": 5}')
    with FakeGraphServer(replies(answer)) as server:
        response = make_request(server).execute()
    assert response == EventResponse(events_received=2, messages=[], fbtrace_id=None)


@pytest.mark.parametrize("event", ["Purchase", msgspec.Raw(b"[1]")], ids=["text", "raw-list"])
def test_graphs_refusal_of_an_event_that_is_no_object_is_raised_as_graphs_error(event):
    refusal = graph_error(400, 100, message="Invalid parameter")
    with FakeGraphServer(lambda request: refusal) as server, pytest.raises(InvalidRequestError):
        make_request(server, events=[event], retry_policy=NO_RETRIES).execute()
    assert len(server.requests) == 1


def test_events_given_as_a_generator_are_a_configuration_error():
    with FakeGraphServer() as server, pytest.raises(ConfigurationError, match="must be a list"):
        make_request(server, events=(event for event in EVENTS)).execute()
    assert server.requests == []


@pytest.mark.parametrize("one_event", [EVENTS[0], encoded_event(EVENTS[0])], ids=["dict", "raw"])
def test_one_event_given_as_the_events_is_a_configuration_error_not_sent(sandbox, one_event):
    request = EventRequest(
        "1234567890", events=one_event, access_token="sandbox-token", graph_url=sandbox.url
    )
    with pytest.raises(ConfigurationError, match=r"not one event: give \[event\]"):
        request.execute()
    assert sandbox.stats()["requests"] == 0


def test_a_retry_policy_that_is_no_retry_policy_is_a_configuration_error_not_sent(sandbox):
    request = EventRequest(
        "1234567890",
        events=EVENTS,
        access_token="sandbox-token",
        graph_url=sandbox.url,
        retry_policy={"max_retries": 1},  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigurationError, match="retry_policy must be a RetryPolicy, not dict"):
        request.execute()
    assert sandbox.stats()["requests"] == 0


def test_retry_then_success_on_500_code_2():
    error = graph_error(500, 2, message="Service temporarily unavailable", is_transient=True)
    with FakeGraphServer(replies(error, error)) as server:
        response = make_request(server).execute()
    assert response.events_received == 2
    assert len(server.requests) == 3


def test_retry_then_success_on_throttling_code_17():
    with FakeGraphServer(replies(graph_error(400, 17, 2446079))) as server:
        response = make_request(server).execute()
    assert response.events_received == 2
    assert len(server.requests) == 2


def test_retry_then_success_on_html_502_from_a_proxy():
    with FakeGraphServer(replies(html_page(502, "502 Bad Gateway"))) as server:
        make_request(server).execute()
    assert len(server.requests) == 2


def test_a_retry_waits_at_least_what_the_answers_retry_after_asked():
    throttled = dataclasses.replace(graph_error(400, 17, 2446079), headers={"Retry-After": "1"})
    observer = RecordingObserver()
    with FakeGraphServer(replies(throttled)) as server:
        started = time.monotonic()
        response = make_request(server).execute(observer=observer)
        elapsed = time.monotonic() - started
    assert response.events_received == 2
    (delay,) = observer.delays  # FAST_RETRIES alone would wait at most 0.002 s
    assert 1.0 <= delay <= 1.002
    assert elapsed >= 1.0


def test_requests_told_the_same_retry_after_do_not_all_come_back_at_once():
    # asked to wait as the others were, each adds a random backoff wait of its own on top:
    # a throttled fleet does not return at one instant, to be throttled again
    throttled = dataclasses.replace(graph_error(400, 17, 2446079), headers={"Retry-After": "1"})
    first_tries: set[str] = set()

    def throttling_each_first_try(request):
        event_id = request.events[0]["event_id"]
        if event_id in first_tries:
            return accept(request)
        first_tries.add(event_id)
        return throttled

    observer = RecordingObserver()
    with FakeGraphServer(throttling_each_first_try) as server:
        futures = [
            make_request(server, EventRequestAsync, events=[{"event_id": f"e{n}"}]).execute(
                observer=observer
            )
            for n in range(8)
        ]
        for future in futures:
            future.result(HANDLER_WAIT_SECONDS)
    assert len(observer.delays) == 8
    assert all(1.0 < delay <= 1.002 for delay in observer.delays)
    assert len(set(observer.delays)) == 8


def test_a_retry_after_beyond_max_time_is_not_waited_for_and_raises_at_once():
    unavailable = dataclasses.replace(graph_error(503, 2), headers={"Retry-After": "3600"})
    policy = RetryPolicy(max_retries=3, max_time=0.5, base_delay=0.001, max_delay=0.01)
    with FakeGraphServer(replies(unavailable)) as server:
        started = time.monotonic()
        with pytest.raises(TransientError) as raised:
            make_request(server, retry_policy=policy).execute()
        elapsed = time.monotonic() - started
    assert raised.value.retry_after == 3600.0
    assert raised.value.wait_beyond_max_time
    assert len(server.requests) == 1
    assert elapsed < 30  # not the hour asked


def test_retries_exhausted_by_count_are_not_blamed_on_the_wait_asked():
    throttled = dataclasses.replace(graph_error(400, 17, 2446079), headers={"Retry-After": "0"})
    policy = RetryPolicy(max_retries=1, base_delay=0.001, throttle_base_delay=0.001)
    with (
        FakeGraphServer(lambda request: throttled) as server,
        pytest.raises(ThrottledError) as raised,
    ):
        make_request(server, retry_policy=policy).execute()
    assert raised.value.retry_after == 0.0
    assert not raised.value.wait_beyond_max_time
    assert len(server.requests) == 2


def test_retries_ended_by_max_retries_carry_the_attempts_made():
    policy = RetryPolicy(max_retries=2, base_delay=0.001)
    with (
        FakeGraphServer(lambda request: graph_error(500, 2)) as server,
        pytest.raises(TransientError) as raised,
    ):
        make_request(server, retry_policy=policy).execute()
    assert raised.value.attempts == len(server.requests) == 3
    assert not raised.value.retry_time_ran_out


def test_retries_ended_by_max_time_say_so():
    policy = RetryPolicy(max_retries=1000, max_time=0.05, base_delay=0.001, max_delay=0.001)
    with (
        FakeGraphServer(lambda request: graph_error(500, 2)) as server,
        pytest.raises(TransientError) as raised,
    ):
        make_request(server, retry_policy=policy).execute()
    assert raised.value.attempts == len(server.requests)
    assert raised.value.retry_time_ran_out


def test_throttling_with_metas_time_to_regain_access_beyond_max_time_raises_at_once():
    usage = (
        '{"100000000000001": [{"type": "ads_management", "call_count": 100, '
        '"estimated_time_to_regain_access": 30}]}'
    )
    throttled = dataclasses.replace(
        graph_error(400, 80004), headers={"X-Business-Use-Case-Usage": usage}
    )
    with FakeGraphServer(replies(throttled)) as server, pytest.raises(ThrottledError) as raised:
        make_request(server).execute()
    assert raised.value.retry_after == 1800.0
    assert len(server.requests) == 1


def test_the_observer_hears_the_rate_limit_usage_each_answer_reports():
    usage = '{"1": [{"type": "ads_management", "call_count": 97}]}'
    answers = [
        dataclasses.replace(graph_error(400, 80004), headers={"X-Business-Use-Case-Usage": usage}),
        dataclasses.replace(success(2), headers={"X-App-Usage": '{"call_count": 12}'}),
    ]
    observer = RecordingObserver()
    with FakeGraphServer(lambda request: answers.pop(0)) as server:
        make_request(server).execute(observer=observer)
    assert observer.usages == [97.0, 12.0]


def test_a_throttled_answer_asking_a_wait_past_any_number_is_raised_as_throttled():
    usage = '{"1": [{"estimated_time_to_regain_access": ' + "9" * 400 + "}]}"
    throttled = dataclasses.replace(
        graph_error(400, 80004), headers={"X-Business-Use-Case-Usage": usage}
    )
    with FakeGraphServer(replies(throttled)) as server, pytest.raises(ThrottledError) as raised:
        make_request(server, retry_policy=NO_RETRIES).execute()
    assert raised.value.retry_after is None


def test_a_success_reporting_a_usage_past_any_number_is_returned_reporting_no_usage():
    usage = '{"call_count": ' + "9" * 400 + "}"
    answer = dataclasses.replace(success(2), headers={"X-App-Usage": usage})
    observer = RecordingObserver()
    with FakeGraphServer(replies(answer)) as server:
        response = make_request(server).execute(observer=observer)
    assert response.events_received == 2
    assert observer.usages == []


def test_answers_without_usage_headers_report_no_usage():
    observer = RecordingObserver()
    with FakeGraphServer() as server:
        make_request(server).execute(observer=observer)
    assert observer.usages == []


def test_a_redirect_names_where_it_leads_without_the_urls_secrets_and_is_not_followed():
    moved = Reply(
        301, b"", headers={"Location": "https://user:pw@graph.example.com/v24.0/1/events?k=s"}
    )
    with (
        FakeGraphServer(lambda request: moved) as server,
        pytest.raises(InvalidRequestError) as raised,
    ):
        make_request(server).execute()
    assert len(server.requests) == 1
    shown = "'https://<redacted>@graph.example.com/v24.0/1/events?<redacted>'"
    assert f"a redirect to {shown}, not followed" in str(raised.value)


def test_no_retry_on_expired_token_190():
    with (
        FakeGraphServer(lambda request: graph_error(400, 190, 463)) as server,
        pytest.raises(AuthError),
    ):
        make_request(server).execute()
    assert len(server.requests) == 1


def test_no_retry_on_invalid_event_100_2804003():
    with (
        FakeGraphServer(lambda request: graph_error(400, 100, 2804003)) as server,
        pytest.raises(InvalidRequestError) as raised,
    ):
        make_request(server).execute()
    assert raised.value.subcode == 2804003
    assert len(server.requests) == 1


def test_retries_stop_after_max_retries_with_the_last_error():
    policy = RetryPolicy(max_retries=2, base_delay=0.001)
    with (
        FakeGraphServer(lambda request: graph_error(500, 1, is_transient=True)) as server,
        pytest.raises(TransientError),
    ):
        make_request(server, retry_policy=policy).execute()
    assert len(server.requests) == 3


def test_retries_past_a_thousand_go_on_without_overflowing_the_backoff():
    # the 1024th doubling of the base delay is past a float: OverflowError, in mid-run
    failures = iter([NetworkError("connection refused")] * 1100)

    def attempt() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "sent"

    policy = RetryPolicy(max_retries=2000, max_time=3600, base_delay=0.5, max_delay=0.0)
    assert policy.call(attempt) == "sent"


def test_give_up_vetoes_retrying_an_error_it_names():
    policy = RetryPolicy(
        max_retries=5, base_delay=0.001, give_up=lambda error: isinstance(error, TransientError)
    )
    with (
        FakeGraphServer(lambda request: graph_error(500, 2)) as server,
        pytest.raises(TransientError),
    ):
        make_request(server, retry_policy=policy).execute()
    assert len(server.requests) == 1


def test_give_up_leaves_other_retryable_errors_retried():
    policy = RetryPolicy(
        max_retries=5, base_delay=0.001, give_up=lambda error: isinstance(error, NetworkError)
    )
    with FakeGraphServer(replies(graph_error(500, 2))) as server:
        make_request(server, retry_policy=policy).execute()
    assert len(server.requests) == 2


def test_retries_stop_when_max_time_is_spent():
    policy = RetryPolicy(max_retries=100, max_time=0.0, base_delay=0.001)
    with (
        FakeGraphServer(lambda request: graph_error(500, 2)) as server,
        pytest.raises(TransientError),
    ):
        make_request(server, retry_policy=policy).execute()
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"max_retries": 1.5}, "max_retries must be a whole number"),
        ({"max_retries": float("nan")}, "max_retries must be a whole number"),
        ({"max_retries": -1}, "max_retries must not be negative"),
        ({"max_time": float("nan")}, "max_time must not be negative or infinite"),
        ({"base_delay": float("inf")}, "base_delay must not be negative or infinite"),
        ({"max_delay": "30"}, "max_delay must be a number of seconds"),
    ],
)
def test_an_unusable_retry_policy_is_a_configuration_error(settings, complaint):
    with pytest.raises(ConfigurationError, match=complaint):
        RetryPolicy(**settings)


def test_a_retry_policy_cannot_be_changed_past_its_checks():
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_retries = 1.5  # type: ignore[misc]


def test_throttling_waits_use_the_throttle_base_delay():
    waits = []
    policy = RetryPolicy(base_delay=0.0, max_delay=10.0, throttle_base_delay=0.01)

    class Waits(RequestObserver):
        def on_retry(self, error, attempt, delay):
            waits.append((type(error), delay))

    throttled, transient = graph_error(400, 4), graph_error(500, 2)
    with FakeGraphServer(replies(throttled, transient)) as server:
        make_request(server, retry_policy=policy).execute(observer=Waits())
    assert waits[0][0] is ThrottledError
    # above 0: the base delay (0 here) would give exactly 0 (jitter draws 0 with odds of 2**-53)
    assert 0 < waits[0][1] <= 0.01
    assert waits[1] == (TransientError, 0.0)


def test_backoff_waits_are_drawn_at_random_below_a_doubling_cap():
    policy = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=10.0)
    observer = RecordingObserver()
    transient = graph_error(500, 2)
    with FakeGraphServer(replies(transient, transient, transient)) as server:
        make_request(server, retry_policy=policy).execute(observer=observer)
    caps = [0.001, 0.002, 0.004]
    assert all(0 <= delay <= cap for delay, cap in zip(observer.delays, caps, strict=True))
    # full jitter: clients failing together do not come back together (a draw equal to
    # its cap has odds of about 2**-53)
    assert all(delay != cap for delay, cap in zip(observer.delays, caps, strict=True))


def test_backoff_caps_double_with_each_retry():
    policy = RetryPolicy(max_retries=8, base_delay=0.0001, max_delay=10.0)
    observer = RecordingObserver()
    with FakeGraphServer(replies(*[graph_error(500, 2)] * 8)) as server:
        make_request(server, retry_policy=policy).execute(observer=observer)
    # the 5th to 8th caps are 16 to 128 times the base: all four draws below the base
    # have odds of 2**-22
    assert max(observer.delays[4:]) > 0.0001


def test_a_backoff_wait_never_goes_past_max_time():
    policy = RetryPolicy(max_retries=1, max_time=2.0, base_delay=60.0, max_delay=60.0)
    observer = RecordingObserver()
    answers = replies(graph_error(500, 2))

    def slow(request):
        time.sleep(1.0)  # the first answer leaves at most 1 s of max_time
        return answers(request)

    with FakeGraphServer(slow) as server:
        make_request(server, retry_policy=policy).execute(observer=observer)
    assert len(observer.delays) == 1
    assert 0 <= observer.delays[0] <= 1.0


def test_a_backoff_wait_is_never_longer_than_max_delay():
    # a base delay of 1000 s uncapped would wait up to 1000 s (max_time cuts that to 2 s)
    policy = RetryPolicy(max_retries=1, max_time=2.0, base_delay=1000.0, max_delay=0.01)
    observer = RecordingObserver()
    with FakeGraphServer(replies(graph_error(500, 2))) as server:
        make_request(server, retry_policy=policy).execute(observer=observer)
    assert len(observer.delays) == 1
    assert 0 <= observer.delays[0] <= 0.01


def test_observer_sees_every_attempt_and_every_retry():
    observer = RecordingObserver()
    with FakeGraphServer(replies(graph_error(500, 2))) as server:
        make_request(server).execute(observer=observer)
    assert observer.attempts == [(2, 500, "TransientError"), (2, 200, None)]
    assert observer.retries == [("TransientError", 1)]


def test_observer_hears_how_long_each_attempt_took():
    observer = RecordingObserver()

    def slow(request):
        time.sleep(0.05)
        return graph_error(500, 2) if len(observer.seconds) == 0 else accept(request)

    with FakeGraphServer(slow) as server:
        make_request(server).execute(observer=observer)
    assert len(observer.seconds) == 2
    assert all(0.05 <= seconds < 60 for seconds in observer.seconds)  # not a time since boot


def test_observer_sees_attempts_without_http_status_on_network_errors():
    observer = RecordingObserver()
    request = EventRequest(
        "1234567890",
        EVENTS,
        access_token=TOKEN,
        graph_url=f"http://127.0.0.1:{closed_port()}",
        retry_policy=NO_RETRIES,
    )
    with pytest.raises(NetworkError):
        request.execute(observer=observer)
    assert observer.attempts == [(2, None, "NetworkError")]


def test_async_execute_returns_a_future_of_the_response():
    with FakeGraphServer() as server:
        future = make_request(server, cls=EventRequestAsync).execute()
        assert isinstance(future, Future)
        assert future.result(timeout=10).events_received == 2


def test_async_execute_returns_before_the_answer_comes():
    answer_now = threading.Event()

    def held(request):
        answer_now.wait(HANDLER_WAIT_SECONDS)
        return accept(request)

    with FakeGraphServer(held) as server:
        future = make_request(server, cls=EventRequestAsync).execute()
        assert not future.done()
        answer_now.set()
        assert future.result(timeout=10).events_received == 2
    assert len(server.requests) == 1


def test_async_future_raises_the_classified_error():
    with FakeGraphServer(lambda request: graph_error(400, 190)) as server:
        future = make_request(server, cls=EventRequestAsync).execute()
        with pytest.raises(AuthError):
            future.result(timeout=10)


def test_async_requests_share_one_pooled_connection():
    with FakeGraphServer() as server:
        for _ in range(3):
            make_request(server, cls=EventRequestAsync).execute().result(timeout=10)
    assert len({request.client_port for request in server.requests}) == 1


@pytest.mark.parametrize("cls", [EventRequest, EventRequestAsync])
@pytest.mark.parametrize(
    "service",
    [RecordingHttpService, "tests._http_fixture:RecordingHttpService", RecordingHttpService()],
    ids=["class", "path", "object"],
)
def test_custom_http_service_is_used(cls, service):
    RecordingHttpService.sent_urls.clear()
    with FakeGraphServer() as server:
        result = make_request(server, cls=cls, http_service=service).execute()
        response = result.result(timeout=10) if isinstance(result, Future) else result
    assert response.events_received == 2
    assert RecordingHttpService.sent_urls == [server.url + server.requests[0].path]


class FlakyService(HttpServiceInterface):
    """Fails the first call the way a custom service might, then delegates."""

    def __init__(self, first_failure: Exception) -> None:
        self.first_failure: Exception | None = first_failure
        self.calls = 0

    def execute(self, method, url, headers, body, timeout):
        self.calls += 1
        if self.first_failure is not None:
            failure, self.first_failure = self.first_failure, None
            raise failure
        return RequestsHttpService().execute(method, url, headers, body, timeout)


@pytest.mark.parametrize(
    "failure",
    [NetworkError("proxy refused", maybe_delivered=False), ConnectionResetError("reset")],
    ids=["network-error", "os-error"],
)
def test_network_failures_of_a_custom_service_are_retried(failure):
    service = FlakyService(failure)
    with FakeGraphServer() as server:
        response = make_request(server, http_service=service).execute()
    assert response.events_received == 2
    assert service.calls == 2


def test_custom_service_may_answer_with_a_plain_tuple():
    class TupleService(HttpServiceInterface):
        def execute(self, method, url, headers, body, timeout):
            return 200, {}, b'{"events_received": 2, "messages": ["ok"], "fbtrace_id": "T"}'

    with FakeGraphServer() as server:
        response = make_request(server, http_service=TupleService()).execute()
    assert response == EventResponse(2, ["ok"], "T")


def test_messages_of_a_success_answer_are_shown_as_graphs_texts_without_urls_query_strings():
    messages = [
        f"Parameter x is deprecated, see https://developers.facebook.com/docs/x?access_token={TOKEN}",
        "line one\nline two",
        {"code": 1},
    ]
    answer = {"events_received": 2, "messages": messages, "fbtrace_id": "T"}
    with FakeGraphServer(lambda request: Reply(200, json.dumps(answer).encode())) as server:
        response = make_request(server).execute()
    assert response.messages == [
        "Parameter x is deprecated, see https://developers.facebook.com/docs/x?<redacted>",
        "line one\\nline two",
        '{"code":1}',
    ]


@pytest.mark.parametrize("encode", [False, True], ids=["dict", "raw"])
def test_a_message_of_a_success_answer_echoing_the_request_quotes_none_of_its_customer_data(
    encode: bool,
) -> None:
    hashed_email = hashlib.sha256(RAW_EMAIL.encode()).hexdigest()
    buyer = "Buyer.Leak@Example.com"
    # the URL last: shown, it is masked from its "?" to the next space, here the end
    event = {
        **EVENTS[0],
        "user_data": {
            "em": [hashed_email],
            "client_ip_address": "203.0.113.9",
            "client_user_agent": "Mozilla/5.0 LeakAgent/9.9",
        },
        "custom_data": {"buyer": buyer, "currency": "EUR"},
        "event_source_url": "https://shop.example.com/thanks?order=77&email=jane",
    }

    def echo(request):
        sent = request.body.decode()
        answer = {"events_received": 1, "messages": [f"Unusual value in {sent}"], "fbtrace_id": "T"}
        return Reply(200, json.dumps(answer).encode())

    with FakeGraphServer(echo) as server:
        template = make_request(server, events=[event])
        sent_event = encoded_event(event) if encode else event
        request = template.copy_with([sent_event], private_fields=(("custom_data", "buyer"),))
        [message] = request.execute().messages
    assert hashed_email in message  # the message is kept, less what it must not quote
    assert "EUR" in message
    for value in ("203.0.113.9", "LeakAgent", buyer, "order=77", TOKEN):
        assert value not in message


def test_a_user_agent_after_a_url_in_a_success_answers_message_is_masked_whole() -> None:
    # a shown URL is masked from its "?" to the next space: the user agent's first word
    user_agent = "Mozilla/5.0 LeakAgent/9.9"
    url = "https://shop.example.com/thanks?order=77"
    event = {**EVENTS[0], "user_data": {"client_user_agent": user_agent}}
    note = f"Unusual values: {url},{user_agent}"
    answer = {"events_received": 1, "messages": [note], "fbtrace_id": "T"}
    with FakeGraphServer(lambda request: Reply(200, json.dumps(answer).encode())) as server:
        [message] = make_request(server, events=[event]).execute().messages
    assert message.startswith("Unusual values: https://shop.example.com/thanks?")
    assert "LeakAgent" not in message


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"access_token": None}, "access_token"),
        ({"access_token": 12345678}, "access_token, as text"),
        ({"app_secret": 12345678}, "app_secret must be text"),
        ({"graph_url": "graph.facebook.com"}, "graph_url"),
        ({"graph_url": "http://"}, "graph_url 'http://' is not a valid URL"),
        ({"graph_url": "http://exa mple.com"}, "is not a valid URL"),
        ({"graph_url": "http://127.0.0.1:99999"}, "is not a valid URL"),
        ({"events": []}, "1 to 1000 events"),
        ({"events": [{"event_name": "x"}] * 1001}, "1 to 1000 events"),
    ],
)
def test_unusable_request_is_a_configuration_error(overrides, complaint):
    with FakeGraphServer() as server, pytest.raises(ConfigurationError, match=complaint):
        make_request(server, **overrides).execute()
    assert server.requests == []


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), 1e12, "5", True])
def test_an_unusable_timeout_is_a_configuration_error_before_sending(timeout):
    with FakeGraphServer() as server, pytest.raises(ConfigurationError, match="timeout"):
        make_request(server, timeout=timeout).execute()
    assert server.requests == []


def test_a_request_without_timeout_is_sent():
    with FakeGraphServer() as server:
        assert make_request(server, timeout=None).execute().events_received == 2
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "event",
    [{"event_name": object()}, {"event_name": "Zo\ud800"}],
    ids=["object", "lone-surrogate"],
)
def test_an_event_json_cannot_hold_is_a_configuration_error_before_sending(event):
    with FakeGraphServer() as server, pytest.raises(ConfigurationError, match="encoded as JSON"):
        make_request(server, events=[event]).execute()
    assert server.requests == []


def test_errors_and_reprs_never_show_the_token_or_event_data(caplog):
    caplog.set_level(logging.DEBUG)
    event = {**EVENTS[0], "user_data": {"em": RAW_EMAIL, "client_ip_address": "203.0.113.9"}}
    echoing = graph_error(400, 190, message=f"Malformed access token {TOKEN}", user_message=TOKEN)
    answers = [echoing, graph_error(400, 100, 2804003), success(0)]
    texts = []
    with FakeGraphServer(lambda request: answers.pop(0)) as server:
        request = make_request(server, events=[event], app_secret=APP_SECRET)
        texts += [repr(request), str(request)]
        for _ in range(3):
            with pytest.raises(DeliveryError) as raised:
                request.execute()
            texts += [str(raised.value), repr(raised.value)]
    unreachable = make_request(server, events=[event], retry_policy=NO_RETRIES)
    with pytest.raises(NetworkError) as raised:
        unreachable.execute()
    texts += [str(raised.value), repr(raised.value), caplog.text]
    for text in texts:
        for secret in (TOKEN, APP_SECRET, RAW_EMAIL, "203.0.113.9"):
            assert secret not in text


def test_an_error_answer_echoing_the_request_quotes_none_of_its_unhashed_customer_data():
    hashed_email = hashlib.sha256(RAW_EMAIL.encode()).hexdigest()
    # one user agent begins like the other; the shortest IPv4 address has seven characters
    sent_as_is = ["1.2.3.4", "Mozilla/5.0", "Mozilla/5.0 LeakAgent/9.9", "fb.1.1700000000.AbCdEf"]
    events = [
        {**EVENTS[0], "user_data": {"em": [hashed_email], "client_ip_address": "1.2.3.4",
                                    "client_user_agent": "Mozilla/5.0"}},
        {**EVENTS[1], "user_data": {"client_user_agent": "Mozilla/5.0 LeakAgent/9.9",
                                    "fbc": "fb.1.1700000000.AbCdEf"}},
    ]  # fmt: skip

    def echo(request):
        sent = request.body.decode()
        return graph_error(400, 100, message=f"Invalid parameter in {sent}", user_message=sent)

    with FakeGraphServer(echo) as server, pytest.raises(InvalidRequestError) as raised:
        make_request(server, events=events, retry_policy=NO_RETRIES).execute()
    for text in (str(raised.value), repr(raised.value)):
        assert hashed_email in text  # the answer is kept, less what it must not quote
        for value in sent_as_is:
            assert value not in text
        assert "LeakAgent" not in text


def test_an_error_answer_echoing_the_request_quotes_none_of_its_private_fields():
    buyer = "Buyer.Leak@Example.com"
    event = {**EVENTS[0], "custom_data": {"buyer": buyer, "currency": "EUR"}}

    def echo(request):
        sent = request.body.decode()
        return graph_error(400, 100, message=f"Invalid parameter in {sent}", user_message=sent)

    with FakeGraphServer(echo) as server:
        template = make_request(server, events=[event], retry_policy=NO_RETRIES)
        private = template.copy_with([event], private_fields=(("custom_data", "buyer"),))
        for request, quotes_buyer in ((template, True), (private, False)):
            with pytest.raises(InvalidRequestError) as raised:
                request.execute()
            assert (buyer in str(raised.value)) is quotes_buyer
            assert "EUR" in str(raised.value)  # the rest of the answer is kept


def test_copy_with_keeps_the_private_fields_unless_given_others():
    with FakeGraphServer() as server:
        template = make_request(server, private_fields=(("custom_data", "buyer"),))
    assert template.copy_with([EVENTS[0]]).private_fields == (("custom_data", "buyer"),)
    assert template.copy_with([EVENTS[0]], private_fields=()).private_fields == ()


def test_graphs_error_for_an_encoded_event_that_is_not_json_is_raised_as_it_is():
    import msgspec

    refuse = replies(graph_error(400, 100, message="(#100) The parameter data is malformed"))
    event = msgspec.Raw(b"{not json")
    with FakeGraphServer(refuse) as server, pytest.raises(InvalidRequestError, match="malformed"):
        make_request(server, events=[event], retry_policy=NO_RETRIES).execute()


def test_network_error_quoting_the_token_is_redacted_with_its_cause():
    class LeakyService(HttpServiceInterface):
        def execute(self, method, url, headers, body, timeout):
            raise OSError(f"proxy refused body {body.decode()}")

    with FakeGraphServer() as server, pytest.raises(NetworkError) as raised:
        make_request(server, http_service=LeakyService(), retry_policy=NO_RETRIES).execute()
    rendered = "".join(traceback.format_exception(raised.value))
    assert "proxy refused body" in rendered
    assert TOKEN not in rendered


def test_an_error_of_a_custom_service_quoting_the_body_is_cut_and_escaped_as_graphs_texts():
    class QuotingService(HttpServiceInterface):
        def execute(self, method, url, headers, body, timeout):
            raise ValueError("service failed\nbody=" + body.decode())

    events = [EVENTS[0]] * 100
    with FakeGraphServer() as server, pytest.raises(DeliveryError) as raised:
        make_request(
            server, events=events, http_service=QuotingService(), retry_policy=NO_RETRIES
        ).execute()
    message = str(raised.value)
    assert message.startswith("ValueError from the HTTP service: service failed\\nbody={")
    assert "\n" not in message
    assert message.endswith(" characters)")
    assert len(message) < 2100


def test_a_custom_services_own_network_error_quoting_the_token_is_redacted_keeping_its_class():
    class GatewayTimeout(RequestTimeout):
        def __init__(self, url: str) -> None:  # not the base class's signature
            super().__init__(f"gateway timed out calling {url}")
            self.gateway = "edge-1"

    class GatewayService(HttpServiceInterface):
        def execute(self, method, url, headers, body, timeout):
            raise GatewayTimeout(f"{url}?access_token={TOKEN}")

    with FakeGraphServer() as server, pytest.raises(GatewayTimeout) as raised:
        make_request(server, http_service=GatewayService(), retry_policy=NO_RETRIES).execute()
    rendered = "".join(traceback.format_exception(raised.value))
    assert "gateway timed out calling" in rendered
    assert TOKEN not in rendered
    assert (raised.value.retryable, raised.value.maybe_delivered) == (True, True)
    assert raised.value.gateway == "edge-1"


def test_any_error_of_a_custom_service_quoting_the_token_is_redacted():
    class LeakyService(HttpServiceInterface):
        def execute(self, method, url, headers, body, timeout):
            raise RuntimeError(f"proxy refused body {body.decode()}")

    with FakeGraphServer() as server, pytest.raises(DeliveryError) as raised:
        make_request(server, http_service=LeakyService(), retry_policy=NO_RETRIES).execute()
    rendered = "".join(traceback.format_exception(raised.value))
    assert "RuntimeError from the HTTP service: proxy refused body" in rendered
    assert TOKEN not in rendered


def test_events_encoded_beforehand_are_sent_as_their_dicts_would_be():
    events = [{**EVENTS[0], "custom_data": {"value": Decimal("19.99"), "currency": "EUR"}}]
    with FakeGraphServer() as server:
        make_request(server, events=events).execute()
        make_request(server, events=[encoded_event(event) for event in events]).execute()
    as_dicts, encoded = (request.body for request in server.requests)
    assert encoded == as_dicts


def test_an_event_json_cannot_hold_is_refused_when_encoded_beforehand():
    with pytest.raises(ConfigurationError, match="cannot be encoded as JSON"):
        encoded_event({**EVENTS[0], "custom_data": {"when": object()}})


@pytest.mark.parametrize("amount", [float("nan"), float("inf"), Decimal("NaN")])
def test_an_amount_json_has_no_number_for_is_refused_naming_its_event_and_field(amount):
    # msgspec would write a float NaN as null: the amount would reach Meta as none, unsaid
    events = [EVENTS[0], {**EVENTS[0], "custom_data": {"contents": [{"item_price": amount}]}}]
    with pytest.raises(ConfigurationError) as raised:
        _ = EventRequest(pixel_id="1", access_token="t", events=events).body
    assert str(raised.value) == (
        "the events cannot be encoded as JSON (event 1's custom_data.contents[0].item_price "
        "is NaN or infinite, which JSON has no number for)"
    )


def test_a_value_of_a_type_json_cannot_hold_is_refused_naming_its_event_and_field():
    events = [EVENTS[0], EVENTS[0], {**EVENTS[0], "custom_data": {"when": object()}}]
    with pytest.raises(ConfigurationError) as raised:
        EventRequest(pixel_id="1", access_token="t", events=events).with_encoded_body()
    assert str(raised.value).startswith(
        "the events cannot be encoded as JSON (custom_data.when: TypeError:"
    )


@pytest.mark.parametrize(
    "value",
    [
        b"ORD-1",
        datetime.datetime(2026, 12, 2, 10, 0, tzinfo=datetime.timezone.utc),
        datetime.date(2026, 12, 2),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        {"SKU-1"},
    ],
    ids=["bytes", "datetime", "date", "uuid", "set"],
)
def test_a_value_the_encoder_would_write_in_a_form_of_its_own_is_refused(value):
    # msgspec writes bytes as base64, a datetime as text, a set as a list: not what was meant
    events = [EVENTS[0], {**EVENTS[0], "custom_data": {"order": [{"id": value}]}}]
    with pytest.raises(ConfigurationError) as raised:
        _ = EventRequest(pixel_id="1", access_token="t", events=events).body
    assert str(raised.value) == (
        "the events cannot be encoded as JSON (event 1's custom_data.order[0].id is of type "
        f"{type(value).__name__}, which JSON has none for: give text, a number, a list or an "
        "object)"
    )


def test_subclasses_of_json_types_and_tuples_are_sent_as_their_values():
    class Status(enum.IntEnum):
        PAID = 2

    event = {**EVENTS[0], "custom_data": {"status": Status.PAID, "ids": ("a", True, None)}}
    body = EventRequest(pixel_id="1", access_token="t", events=[event]).body
    assert json.loads(body)["data"][0]["custom_data"] == {"status": 2, "ids": ["a", True, None]}


def test_a_value_json_cannot_hold_is_refused_naming_its_event_index_in_the_payload():
    events = [EVENTS[0], EVENTS[0], {**EVENTS[0], "custom_data": {"when": object()}}]
    with pytest.raises(ConfigurationError, match=r"\(event 2's custom_data\.when: TypeError:"):
        _ = EventRequest(pixel_id="1", access_token="t", events=events).body


def test_an_event_nested_deeper_than_the_encoder_goes_is_refused_as_a_setting_error():
    # a list holding itself: endless to the encoder on every Python (how deep a finite nesting
    # may go depends on the thread's stack from 3.14 on)
    endless: list = []
    endless.append(endless)
    with pytest.raises(ConfigurationError, match="RecursionError"):
        encoded_event({**EVENTS[0], "custom_data": {"tree": endless}})


def test_a_none_in_an_event_is_sent_as_null():
    event = {**EVENTS[0], "custom_data": {"value": None}}
    body = EventRequest(pixel_id="1", access_token="t", events=[event]).body
    assert json.loads(body)["data"][0]["custom_data"] == {"value": None}


def test_a_request_with_its_body_encoded_reads_its_events_from_that_body():
    import msgspec

    events = [
        {"event_name": "Purchase", "custom_data": {"value": Decimal("12.50")}},
        msgspec.Raw(b'{"event_name":"Lead"}'),
        {"event_name": "Zoë"},
    ]
    request = EventRequest(pixel_id="1", access_token="t", events=events, test_event_code="T1")
    encoded = request.with_encoded_body()
    assert encoded.body == request.body
    assert [msgspec.json.decode(event) for event in encoded.events] == [
        {"event_name": "Purchase", "custom_data": {"value": 12.5}},
        {"event_name": "Lead"},
        {"event_name": "Zoë"},
    ]


def test_an_error_quoting_what_a_visitor_typed_does_not_carry_it():
    event = {**EVENTS[0], "custom_data": {"search_string": "gift for jane doe"}}
    refusal = graph_error(400, 100, message="Invalid search_string: gift for jane doe")
    with (
        FakeGraphServer(lambda request: refusal) as server,
        pytest.raises(InvalidRequestError) as raised,
    ):
        make_request(server, events=[event], retry_policy=NO_RETRIES).execute()
    assert "jane" not in str(raised.value)
    assert "Invalid search_string: <redacted>" in str(raised.value)


def test_a_request_with_an_encoded_body_given_other_events_and_a_test_code_sends_them():
    # as Meta's SDK sets them: request.events = [...], then the test code
    request = EventRequest(pixel_id="1", access_token="t", events=[{"n": 1}]).with_encoded_body()
    request.events = [{"n": 1}, {"n": 2}]
    request.test_event_code = "TEST123"
    assert json.loads(request.body) == {
        "data": [{"n": 1}, {"n": 2}],
        "access_token": "t",
        "test_event_code": "TEST123",
    }


def test_a_request_with_an_encoded_body_keeps_it_when_no_part_of_the_body_changes():
    request = EventRequest(pixel_id="1", access_token="t", events=[{"n": 1}]).with_encoded_body()
    request.timeout = 5
    assert request.encoded_body is not None
    assert request.body == request.encoded_body


def test_a_part_of_a_request_with_an_encoded_body_gets_a_body_of_its_own():
    request = EventRequest(pixel_id="1", access_token="t", events=[{"n": 1}, {"n": 2}, {"n": 3}])
    part = request.with_encoded_body().copy_with(request.with_encoded_body().events[1:])
    assert part.body == request.copy_with([{"n": 2}, {"n": 3}]).body


class TokenFirstRequest(EventRequest):
    """A subclass laying its body out another way: the token before the events."""

    @property
    def body(self) -> bytes:
        return msgspec.json.encode({"access_token": self.access_token, "data": self.events})


def test_with_encoded_body_of_a_request_laying_out_its_body_another_way_keeps_its_events():
    events = [{"event_name": "Purchase"}, {"event_name": "Lead"}]
    request = TokenFirstRequest(pixel_id="1", access_token="t", events=events)
    encoded = request.with_encoded_body()
    assert [msgspec.json.decode(event) for event in encoded.events] == events
    assert msgspec.json.decode(encoded.body)["data"] == events


class BrokenObserver(RequestObserver):
    """Metrics code with a bug: every hook raises."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_attempt(self, events, status, seconds, error):
        self.calls.append("on_attempt")
        raise ZeroDivisionError("metrics bug")

    def on_retry(self, error, attempt, delay):
        self.calls.append("on_retry")
        raise ZeroDivisionError("metrics bug")

    def on_rate_limit_usage(self, percent):
        self.calls.append("on_rate_limit_usage")
        raise ZeroDivisionError("metrics bug")


def test_an_observer_that_raises_does_not_turn_a_delivered_request_into_a_failure():
    answer = dataclasses.replace(success(2), headers={"X-App-Usage": '{"call_count": 12}'})
    observer = BrokenObserver()
    with FakeGraphServer(lambda request: answer) as server:
        response = make_request(server).execute(observer=observer)
    assert response.events_received == 2
    assert observer.calls == ["on_rate_limit_usage", "on_attempt"]
    assert len(server.requests) == 1


def test_an_observer_that_raises_does_not_stop_retries():
    observer = BrokenObserver()
    with FakeGraphServer(replies(graph_error(500, 2, is_transient=True))) as server:
        response = make_request(server).execute(observer=observer)
    assert response.events_received == 2
    assert observer.calls == ["on_attempt", "on_retry", "on_attempt"]


def test_a_request_retried_and_told_its_usage_without_an_observer_logs_no_warning(caplog):
    answer = dataclasses.replace(success(2), headers={"X-App-Usage": '{"call_count": 12}'})
    with FakeGraphServer(replies(graph_error(500, 2, is_transient=True), answer)) as server:
        make_request(server).execute()
    assert [
        record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING
    ] == []


def test_an_observer_that_raises_is_logged_without_the_token_or_event_data(caplog):
    with FakeGraphServer() as server:
        make_request(server).execute(observer=BrokenObserver())
    (record,) = [record for record in caplog.records if "BrokenObserver" in record.getMessage()]
    assert record.levelno == logging.WARNING
    assert "on_attempt" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert TOKEN not in caplog.text and "Purchase" not in caplog.text


def test_a_set_cancel_event_ends_the_wait_to_retry_with_the_error_that_caused_it():
    cancel = threading.Event()

    class CancelOnRetry(RequestObserver):
        def on_retry(self, error, attempt, delay):
            cancel.set()  # as a process shutting down would, while the request waits

    # waits past the test's bound: a wait the event does not end fails on the count
    policy = RetryPolicy(max_retries=3, max_time=HANDLER_WAIT_SECONDS, base_delay=60)
    with (
        FakeGraphServer(lambda request: graph_error(500, 2, is_transient=True)) as server,
        pytest.raises(TransientError) as raised,
    ):
        make_request(server, retry_policy=policy).execute(observer=CancelOnRetry(), cancel=cancel)
    assert raised.value.retries_cancelled
    assert len(server.requests) == 1


def test_a_request_failing_after_its_cancel_is_set_is_neither_retried_nor_reported_retrying():
    observer = RecordingObserver()
    cancel = threading.Event()
    cancel.set()
    with (
        FakeGraphServer(lambda request: graph_error(500, 2, is_transient=True)) as server,
        pytest.raises(TransientError) as raised,
    ):
        make_request(server, retry_policy=FAST_RETRIES).execute(observer=observer, cancel=cancel)
    assert raised.value.retries_cancelled
    assert (len(server.requests), observer.retries) == (1, [])


def test_an_error_not_retried_for_other_reasons_is_not_marked_as_cancelled():
    with (
        FakeGraphServer(lambda request: graph_error(500, 2, is_transient=True)) as server,
        pytest.raises(TransientError) as raised,
    ):
        make_request(server, retry_policy=NO_RETRIES).execute(cancel=threading.Event())
    assert not raised.value.retries_cancelled
