import pytest

from target_meta_capi.capi.errors import (
    AuthError,
    BodyLimitError,
    InvalidRequestError,
    RequestRejectedError,
    RequestTooLargeError,
)
from target_meta_capi.capi.isolate import DeliveryReport, deliver_isolating_invalid
from target_meta_capi.capi.request import EventRequest, encoded_event
from target_meta_capi.capi.retry import RetryPolicy
from tests._http_fixture import (
    FakeGraphServer,
    RecordedRequest,
    accept,
    graph_error,
    html_page,
    success,
)

TOKEN = "EAAGm0PX4ZCpsBAKZBZCtestaccesstoken1234"


def events(count: int, bad: set[int] = frozenset()) -> list[dict]:
    return [
        {"event_name": "Lead", "event_id": f"e{number}", "bad": number in bad}
        for number in range(count)
    ]


def reject_bad_events(request: RecordedRequest):
    """Like Graph: one invalid event rejects the whole request, without saying which."""
    if any(event["bad"] for event in request.events):
        return graph_error(
            400, 100, 2804003, message="Invalid parameter", user_title="Event Timestamp Too Old"
        )
    return accept(request)


def delivered_ids(server: FakeGraphServer) -> list[str]:
    return [
        event["event_id"]
        for request in server.requests
        if not any(event["bad"] for event in request.events)
        for event in request.events
    ]


def make_request(server: FakeGraphServer, data: list[dict]) -> EventRequest:
    return EventRequest(
        "1234567890",
        data,
        access_token=TOKEN,
        graph_url=server.url,
        retry_policy=RetryPolicy(max_retries=2, base_delay=0.001),
    )


def test_valid_request_is_delivered_in_one_request():
    with FakeGraphServer(reject_bad_events) as server:
        report = deliver_isolating_invalid(make_request(server, events(8)))
    assert report.delivered == list(range(8))
    assert report.rejected == []
    assert len(report.responses) == 1
    assert len(server.requests) == 1


def test_bad_events_are_isolated_and_all_others_delivered():
    with FakeGraphServer(reject_bad_events) as server:
        report = deliver_isolating_invalid(make_request(server, events(10, bad={3, 7})))
    assert report.delivered == [0, 1, 2, 4, 5, 6, 8, 9]
    assert [rejected.index for rejected in report.rejected] == [3, 7]
    assert sorted(delivered_ids(server)) == sorted(f"e{n}" for n in report.delivered)


def test_rejected_event_carries_metas_error():
    with FakeGraphServer(reject_bad_events) as server:
        report = deliver_isolating_invalid(make_request(server, events(4, bad={2})))
    (rejected,) = report.rejected
    assert isinstance(rejected.error, InvalidRequestError)
    assert (rejected.error.code, rejected.error.subcode) == (100, 2804003)
    assert rejected.error.user_title == "Event Timestamp Too Old"


def test_single_bad_event_request_is_rejected_without_splitting():
    with FakeGraphServer(reject_bad_events) as server:
        report = deliver_isolating_invalid(make_request(server, events(1, bad={0})))
    assert report == DeliveryReport(delivered=[], rejected=report.rejected, responses=[])
    assert [rejected.index for rejected in report.rejected] == [0]
    assert len(server.requests) == 1


def test_all_bad_events_are_all_rejected():
    with FakeGraphServer(reject_bad_events) as server:
        report = deliver_isolating_invalid(make_request(server, events(5, bad=set(range(5)))))
    assert report.delivered == []
    assert [rejected.index for rejected in report.rejected] == [0, 1, 2, 3, 4]


def test_halves_are_retried_per_policy():
    answered_transient_once = []

    def handler(request):
        if len(request.events) == 2 and not answered_transient_once:
            answered_transient_once.append(True)
            return graph_error(500, 2, is_transient=True)
        return reject_bad_events(request)

    with FakeGraphServer(handler) as server:
        report = deliver_isolating_invalid(make_request(server, events(4, bad={3})))
    assert report.delivered == [0, 1, 2]
    assert [rejected.index for rejected in report.rejected] == [3]


def test_unknown_pixel_is_not_bisected():
    with (
        FakeGraphServer(lambda request: graph_error(400, 100, 33)) as server,
        pytest.raises(AuthError),
    ):
        deliver_isolating_invalid(make_request(server, events(8)))
    assert len(server.requests) == 1


def test_invalid_request_without_code_100_is_not_bisected():
    with (
        FakeGraphServer(lambda request: graph_error(400, 803)) as server,
        pytest.raises(InvalidRequestError),
    ):
        deliver_isolating_invalid(make_request(server, events(8)))
    assert len(server.requests) == 1


UPLOAD_SOURCE_ERROR = "(#100) Param upload_source must be one of {in_store, ...}"


def test_an_error_the_first_middle_and_last_event_alone_get_too_is_the_requests_own():
    with (
        FakeGraphServer(
            lambda request: graph_error(400, 100, message=UPLOAD_SOURCE_ERROR)
        ) as server,
        pytest.raises(RequestRejectedError, match="rejected the request itself") as raised,
    ):
        deliver_isolating_invalid(make_request(server, events(1000)))
    assert raised.value.message == UPLOAD_SOURCE_ERROR
    assert not raised.value.bisectable
    assert [len(request.events) for request in server.requests] == [1000, 1, 1, 1]


def reject_without_subcode(request: RecordedRequest):
    """Like Graph for some invalid events: no subcode says what is wrong."""
    if any(event["bad"] for event in request.events):
        return graph_error(400, 100, message="(#100) Invalid parameter")
    return accept(request)


def test_bad_events_rejected_without_a_subcode_are_still_isolated():
    with FakeGraphServer(reject_without_subcode) as server:
        report = deliver_isolating_invalid(make_request(server, events(10, bad={3, 7})))
    assert report.delivered == [0, 1, 2, 4, 5, 6, 8, 9]
    assert [rejected.index for rejected in report.rejected] == [3, 7]
    assert sorted(delivered_ids(server)) == sorted(f"e{n}" for n in report.delivered)


def test_bad_first_and_last_events_alone_do_not_make_the_error_the_requests():
    with FakeGraphServer(reject_without_subcode) as server:
        report = deliver_isolating_invalid(make_request(server, events(10, bad={0, 9})))
    assert report.delivered == list(range(1, 9))
    assert [rejected.index for rejected in report.rejected] == [0, 9]


def test_events_alone_rejected_with_other_messages_than_the_request_are_isolated():
    def reject_naming_the_first_bad_event(request: RecordedRequest):
        bad = [event["event_id"] for event in request.events if event["bad"]]
        if bad:
            return graph_error(400, 100, message=f"(#100) Invalid parameter in {bad[0]}")
        return accept(request)

    # the first, middle and last event are bad: the same code as the request's error, but
    # not the same error, so the request itself is not to blame
    with FakeGraphServer(reject_naming_the_first_bad_event) as server:
        report = deliver_isolating_invalid(make_request(server, events(10, bad={0, 5, 9})))
    assert report.delivered == [1, 2, 3, 4, 6, 7, 8]
    assert [rejected.index for rejected in report.rejected] == [0, 5, 9]


PROXY_BODY_LIMIT = 25_000


def refuse_large_bodies(request: RecordedRequest):
    """A proxy in front of Graph that refuses large bodies with its own HTML page."""
    if len(request.body) > PROXY_BODY_LIMIT:
        return html_page(413, "413 Request Entity Too Large")
    return accept(request)


def refuse_every_body(request: RecordedRequest):
    """A proxy whose body-size limit is below any event."""
    return html_page(413, "413 Request Entity Too Large")


def test_a_body_too_large_for_a_proxy_is_split_until_it_passes():
    data = [{**event, "padding": "x" * 1000} for event in events(40)]
    with FakeGraphServer(refuse_large_bodies) as server:
        report = deliver_isolating_invalid(make_request(server, data))
    assert report.delivered == list(range(40))
    assert report.rejected == []
    passed = [r for r in server.requests if len(r.body) <= PROXY_BODY_LIMIT]
    assert sorted(event["event_id"] for r in passed for event in r.events) == sorted(
        f"e{n}" for n in range(40)
    )


def test_an_event_too_large_alone_is_rejected_and_the_others_delivered():
    data = events(8)
    data[5] = {**data[5], "padding": "x" * 50_000}
    with FakeGraphServer(refuse_large_bodies) as server:
        report = deliver_isolating_invalid(make_request(server, data))
    assert report.delivered == [0, 1, 2, 3, 4, 6, 7]
    [rejected] = report.rejected
    assert rejected.index == 5
    assert isinstance(rejected.error, RequestTooLargeError)
    assert rejected.error.http_status == 413


def test_events_each_too_large_alone_are_rejected_not_taken_for_a_request_error():
    # the first, middle and last: alone, each gets the very answer the request got
    data = [
        {**event, "padding": "x" * 50_000} if event["event_id"] in ("e0", "e3", "e5") else event
        for event in events(6)
    ]
    with FakeGraphServer(refuse_large_bodies) as server:
        report = deliver_isolating_invalid(make_request(server, data))
    assert report.delivered == [1, 2, 4]
    assert [rejected.index for rejected in report.rejected] == [0, 3, 5]


def test_the_smallest_event_is_sent_alone_first_when_a_body_is_too_large_for_a_proxy():
    data = [
        {**event, "padding": "x" * (1000 + 10 * number)} for number, event in enumerate(events(40))
    ]
    data[7] = {**data[7], "padding": ""}
    with FakeGraphServer(refuse_large_bodies) as server:
        report = deliver_isolating_invalid(make_request(server, data))
    assert [event["event_id"] for event in server.requests[1].events] == ["e7"]
    assert report.delivered == list(range(40))


def test_a_proxy_refusing_even_the_smallest_event_alone_raises_body_limit_error():
    data = [{**event, "event_id": f"event-{number:04}"} for number, event in enumerate(events(30))]
    data[12] = {**data[12], "event_id": "short"}
    with FakeGraphServer(refuse_every_body) as server, pytest.raises(BodyLimitError) as raised:
        deliver_isolating_invalid(make_request(server, data))
    assert [len(request.events) for request in server.requests] == [30, 1]
    assert server.requests[1].events == [data[12]]
    assert raised.value.event_bytes == len(encoded_event(data[12]))
    assert raised.value.http_status == 413
    assert not raised.value.bisectable
    assert "raise the proxy's body-size limit" in str(raised.value)


def test_responses_come_in_the_order_of_the_events_they_acknowledged():
    def accept_naming_the_first_event(request: RecordedRequest):
        if any(event["bad"] for event in request.events):
            return reject_without_subcode(request)
        return success(len(request.events), fbtrace_id=request.events[0]["event_id"])

    with FakeGraphServer(accept_naming_the_first_event) as server:
        report = deliver_isolating_invalid(make_request(server, events(10, bad={4})))
    firsts = [int(response.fbtrace_id.removeprefix("e")) for response in report.responses]
    assert firsts == sorted(firsts)
    assert sum(response.events_received for response in report.responses) == 9
