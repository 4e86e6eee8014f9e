import email.utils
import json
import re
import time
from pathlib import Path

import pytest

from target_meta_capi.capi.errors import (
    AuthError,
    BatchProcessingError,
    BodyLimitError,
    CapiError,
    ConfigurationError,
    DeliveryError,
    EventsReceivedMismatch,
    GraphAPIError,
    InvalidRequestError,
    NetworkError,
    RequestRejectedError,
    RequestTimeout,
    ThrottledError,
    TransientError,
    classify_response,
    retry_after_seconds,
)
from target_meta_capi.capi.privacy import MASK
from target_meta_capi.capi.request import EventResponse

NOW = 1_795_773_600.0  # Fri, 27 Nov 2026 10:00:00 GMT

TOKEN = "EAAGm0PX4ZCpsBAKZBZCtokenvalue1234567890"


def error_body(code: int | None = None, subcode: int | None = None, **extra: object) -> bytes:
    error: dict[str, object] = {"message": "An error occurred", "type": "OAuthException"}
    if code is not None:
        error["code"] = code
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(extra)
    return json.dumps({"error": error}).encode()


@pytest.mark.parametrize("code", [1, 2])
def test_codes_1_and_2_are_transient(code):
    # a 4xx status: the code alone makes it transient (any 5xx would be transient anyway)
    assert type(classify_response(400, error_body(code))) is TransientError


def test_is_transient_flag_makes_an_unknown_code_transient():
    error = classify_response(400, error_body(9999, is_transient=True))
    assert type(error) is TransientError
    assert error.is_transient


def test_an_invalid_event_is_isolated_even_when_graph_calls_it_transient():
    # the reference: 100/2804xxx is never retried as is, whatever else the answer says
    error = classify_response(400, error_body(100, 2804003, is_transient=True))
    assert type(error) is InvalidRequestError
    assert error.bisectable


def test_5xx_with_an_unknown_code_is_transient():
    assert type(classify_response(503, error_body(12345))) is TransientError


def test_html_502_is_transient_and_names_the_page_title():
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    error = classify_response(502, page)
    assert type(error) is TransientError
    assert error.http_status == 502
    assert "502 Bad Gateway" in str(error)


def test_a_page_title_that_is_not_utf8_is_read_with_replacement_characters():
    page = b"<title>Bad \xff Gateway</title>"
    assert str(classify_response(502, page)) == (
        f"HTTP 502 without a Graph error object ({len(page)} bytes,"
        " page title 'Bad \ufffd Gateway') (http_status=502)"
    )


def test_a_long_page_title_cut_for_the_log_shows_no_start_of_a_secret_it_held():
    # the first 120 characters end inside the IP address
    title = "Gateway error for " + "x" * 95 + " 203.0.113.9 from the proxy"
    page = f"<title>{title}</title>".encode()
    error = str(classify_response(502, page, secrets=("203.0.113.9",)))
    assert "page title 'Gateway error for xxx" in error
    assert "203.0" not in error


def test_a_long_redirect_location_cut_for_the_log_shows_no_start_of_a_secret_it_held():
    # the first 300 characters end inside the IP address
    location = "https://proxy.example/" + "p" * 271 + "/203.0.113.9/next"
    error = str(
        classify_response(302, b"", secrets=("203.0.113.9",), headers={"Location": location})
    )
    assert "a redirect to 'https://proxy.example/ppp" in error
    assert "203.0" not in error


def test_unparseable_json_5xx_is_transient():
    assert type(classify_response(500, b'{"error": ')) is TransientError


def test_unparseable_2xx_is_transient_because_delivery_is_unknown():
    assert type(classify_response(200, b"<html>captive portal</html>")) is TransientError


def test_non_json_4xx_is_an_invalid_request():
    assert type(classify_response(400, b"Bad Request")) is InvalidRequestError


def test_an_answer_without_a_graph_error_or_a_page_title_says_only_its_status_and_size():
    assert str(classify_response(400, b"Bad Request")) == (
        "HTTP 400 without a Graph error object (11 bytes) (http_status=400)"
    )


@pytest.mark.parametrize("status", [102, 103])
def test_an_interim_answer_taken_for_the_final_one_is_transient_because_delivery_is_unknown(
    status,
):
    assert type(classify_response(status, b"")) is TransientError


def test_a_300_answer_without_a_graph_error_is_not_retried_as_an_unread_2xx():
    assert type(classify_response(300, b"Multiple Choices")) is InvalidRequestError


def test_a_proxys_408_timeout_page_is_transient():
    page = b"<html><head><title>408 Request Time-out</title></head><body>nginx</body></html>"
    error = classify_response(408, page)
    assert type(error) is TransientError
    assert "408 Request Time-out" in str(error)


def test_429_without_error_object_is_throttled():
    assert type(classify_response(429, b"")) is ThrottledError


@pytest.mark.parametrize("status", [401, 403])
def test_401_or_403_without_error_object_is_an_auth_error(status):
    page = b"<html><head><title>Forbidden</title></head><body>proxy</body></html>"
    assert type(classify_response(status, page)) is AuthError


@pytest.mark.parametrize("code", [4, 17, 32, 341, 613, 80000, 80004, 80014])
def test_rate_limit_codes_are_throttled(code):
    assert type(classify_response(400, error_body(code))) is ThrottledError


def test_code_300_is_not_an_auth_error():
    assert type(classify_response(400, error_body(300))) is InvalidRequestError


def test_code_80015_is_not_throttled():
    assert type(classify_response(400, error_body(80015))) is InvalidRequestError


@pytest.mark.parametrize("code", [190, 102, 104, 10, 200, 250, 299])
def test_token_and_permission_codes_are_auth_errors(code):
    assert type(classify_response(400, error_body(code))) is AuthError


def test_code_100_subcode_33_unknown_pixel_is_an_auth_error():
    assert type(classify_response(400, error_body(100, 33))) is AuthError


def test_wrong_appsecret_proof_is_an_auth_error_not_a_bisectable_request():
    body = error_body(
        100, type="GraphMethodException", message="Invalid appsecret_proof provided in the API"
    )
    assert type(classify_response(400, body)) is AuthError


def test_code_100_with_an_event_subcode_is_a_bisectable_invalid_request():
    error = classify_response(400, error_body(100, 2804003))
    assert type(error) is InvalidRequestError
    assert error.bisectable


def test_code_100_without_subcode_is_bisectable():
    error = classify_response(400, error_body(100))
    assert isinstance(error, InvalidRequestError)
    assert error.bisectable


def test_code_100_with_a_5xx_status_is_an_invalid_request_not_retried():
    error = classify_response(500, error_body(100))
    assert type(error) is InvalidRequestError
    assert not error.retryable


def test_other_4xx_code_is_an_invalid_request_but_not_bisectable():
    error = classify_response(400, error_body(803))
    assert type(error) is InvalidRequestError
    assert not error.bisectable


def test_graph_error_fields_are_parsed():
    body = error_body(
        100,
        2804003,
        error_user_title="Event Timestamp Too Old",
        error_user_msg="The timestamp for this event is too far in the past.",
        fbtrace_id="AbCdEf",
        is_transient=False,
    )
    error = classify_response(400, body)
    assert (error.http_status, error.code, error.subcode) == (400, 100, 2804003)
    assert error.error_type == "OAuthException"
    assert error.message == "An error occurred"
    assert error.user_title == "Event Timestamp Too Old"
    assert error.user_message == "The timestamp for this event is too far in the past."
    assert error.fbtrace_id == "AbCdEf"
    assert error.is_transient is False


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_an_infinite_code_counts_as_absent(number):
    body = f'{{"error": {{"message": "m", "code": {number}, "error_subcode": {number}}}}}'
    error = classify_response(400, body.encode())
    assert type(error) is InvalidRequestError
    assert (error.code, error.subcode) == (None, None)


def test_str_of_graph_error_names_code_subcode_and_user_title():
    body = error_body(100, 2804003, error_user_title="Event Timestamp Too Old")
    text = str(classify_response(400, body))
    assert "code=100" in text
    assert "subcode=2804003" in text
    assert "Event Timestamp Too Old" in text


def test_str_of_graph_error_gives_every_detail_and_metas_words_for_the_user():
    body = error_body(
        100,
        2804003,
        error_user_title="Event Timestamp Too Old",
        error_user_msg="Send it sooner.",
        fbtrace_id="AbCdEf",
    )
    assert str(classify_response(400, body)) == (
        "An error occurred (http_status=400, code=100, subcode=2804003, type=OAuthException,"
        " fbtrace_id=AbCdEf) — Event Timestamp Too Old: Send it sooner."
    )


def test_str_of_graph_error_without_details_or_words_for_the_user_is_its_message_and_status():
    body = json.dumps({"error": {}}).encode()
    assert str(classify_response(400, body)) == "Graph API error (http_status=400)"


def test_a_request_rejected_whole_tells_which_settings_of_the_request_to_check():
    error = RequestRejectedError.from_error(classify_response(400, error_body(100, 1234)))
    assert str(error).endswith(
        ". Check the request's settings (upload_source, upload_tag, upload_id, namespace_id,"
        " partner_agent, test_event_code, api_version)."
    )


def test_retryable_flags_follow_the_error_kind():
    retryable = {
        TransientError: True,
        ThrottledError: True,
        AuthError: False,
        InvalidRequestError: False,
    }
    for error_class, expected in retryable.items():
        assert error_class("x", http_status=400).retryable is expected
    assert NetworkError("reset").retryable
    assert RequestTimeout("slow").retryable
    assert not EventsReceivedMismatch(sent=3, received=2).retryable


def test_request_timeout_may_have_been_delivered():
    assert RequestTimeout("slow").maybe_delivered
    assert isinstance(RequestTimeout("slow"), NetworkError)


def test_delivery_failures_are_delivery_errors_and_setup_or_batch_failures_only_capi_errors():
    assert issubclass(ConfigurationError, CapiError)
    assert not issubclass(ConfigurationError, DeliveryError)
    assert issubclass(DeliveryError, CapiError)
    assert issubclass(NetworkError, DeliveryError)
    assert issubclass(GraphAPIError, DeliveryError)
    assert issubclass(EventsReceivedMismatch, DeliveryError)
    assert not issubclass(EventsReceivedMismatch, GraphAPIError)
    assert issubclass(BatchProcessingError, CapiError)
    assert not issubclass(BatchProcessingError, DeliveryError)


def test_echoed_token_is_redacted_when_passed_as_secret():
    # not shaped like a Graph token (EAA…), which is redacted even unannounced
    token = "sandbox-token-0123456789"
    body = error_body(190, message=f"Invalid OAuth access token {token}.")
    error = classify_response(400, body, secrets=[token])
    assert token not in str(error)
    assert token not in repr(error)
    assert token not in error.message


def test_token_looking_text_is_redacted_without_being_told_the_token():
    body = error_body(190, message=f"Malformed access token {TOKEN}", error_user_msg=TOKEN)
    error = classify_response(400, body)
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)


def test_a_secret_of_seven_characters_such_as_an_ipv4_address_is_redacted():
    body = error_body(100, message="Bad client_ip_address 1.2.3.4")
    error = classify_response(400, body, secrets=["1.2.3.4"])
    assert error.message == f"Bad client_ip_address {MASK}"


def test_a_secret_holding_another_is_redacted_whole_not_just_the_one_it_holds():
    agent = "Mozilla/5.0 (X11; Linux x86_64)"
    body = error_body(100, message=f"Bad client_user_agent {agent}")
    error = classify_response(400, body, secrets=["Mozilla/5.0", agent])
    assert error.message == f"Bad client_user_agent {MASK}"


@pytest.mark.parametrize("secret", ["::1", "Bot/1", "123456"])
def test_a_short_secret_is_redacted_where_it_stands_alone(secret):
    body = error_body(100, message=f'Invalid parameter: {{"value":"{secret}"}} ({secret})')
    error = classify_response(400, body, secrets=[secret])
    assert error.message == f'Invalid parameter: {{"value":"{MASK}"}} ({MASK})'


def test_a_short_secret_inside_a_word_or_number_is_left_as_it_is():
    body = error_body(100, message="Param 1234567 of Bot/12 is invalid")
    error = classify_response(400, body, secrets=["123", "Bot/1"])
    assert error.message == "Param 1234567 of Bot/12 is invalid"


def test_a_secret_of_one_or_two_characters_is_not_redacted():
    body = error_body(100, message="(#1) Invalid parameter in US")
    error = classify_response(400, body, secrets=["1", "US"])
    assert error.message == "(#1) Invalid parameter in US"


@pytest.mark.parametrize(
    "quoted",
    [
        'LeakAgent\\/9.9 (Zo\\u00eb\'s \\"OS\\")',  # PHP's json_encode: "/" escaped, ASCII
        'LeakAgent/9.9 (Zoë\'s \\"OS\\")',  # JSON, not ASCII
        'LeakAgent/9.9 (Zoë\\\'s "OS")',  # a Python repr, as str() of a dict shows it
    ],
)
def test_a_secret_is_redacted_as_a_quoting_text_escaped_it(quoted):
    agent = 'LeakAgent/9.9 (Zoë\'s "OS")'
    body = error_body(100, message=f"Invalid client_user_agent: {quoted}.")
    error = classify_response(400, body, secrets=[agent])
    assert error.message == f"Invalid client_user_agent: {MASK}."


def test_events_received_mismatch_reports_counts():
    error = EventsReceivedMismatch(sent=5, received=3, fbtrace_id="T1")
    assert "3 of 5" in str(error)
    assert (error.sent, error.received) == (5, 3)


def test_events_received_mismatch_of_one_event_says_event():
    assert str(EventsReceivedMismatch(sent=1, received=0)) == (
        "Graph received 0 of 1 event (fbtrace_id=None)"
    )


def test_batch_processing_error_names_the_failed_requests():
    failures = [(1, AuthError("bad token", http_status=400, code=190))]
    responses = [EventResponse(10, [], "a"), None, EventResponse(10, [], "c")]
    error = BatchProcessingError(failures, responses)
    assert "1 of 3 requests failed" in str(error)
    assert "request 1: AuthError" in str(error)
    assert repr(error) == "BatchProcessingError(failed_requests=[1], requests=3)"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 5 ", 5.0),
        ("Fri, 27 Nov 2026 10:00:30 GMT", 30.0),
        ("Fri, 27 Nov 2026 09:00:00 GMT", 0.0),  # already past: retry at once
    ],
)
def test_retry_after_is_read_as_seconds_or_as_an_http_date(value, seconds):
    assert retry_after_seconds({"Retry-After": value}, now=NOW) == seconds


@pytest.mark.parametrize("value", ["", "soon", "-5", "1.5", "27 Nov 2026 10:00:30", "²"])
def test_an_unreadable_retry_after_counts_as_absent(value):
    assert retry_after_seconds({"Retry-After": value}, now=NOW) is None


def test_retry_after_header_name_is_case_insensitive():
    assert retry_after_seconds({"retry-after": "3"}) == 3.0


def test_a_graph_error_carries_the_retry_after_of_its_answer():
    body = error_body(17, subcode=2446079)
    assert classify_response(400, body, headers={"Retry-After": "9"}).retry_after == 9.0
    assert classify_response(400, body).retry_after is None


def test_a_graph_error_waits_until_the_http_date_of_its_answers_retry_after():
    body = error_body(17, subcode=2446079)
    in_two_minutes = email.utils.formatdate(time.time() + 120, usegmt=True)
    error = classify_response(400, body, headers={"Retry-After": in_two_minutes})
    assert error.retry_after is not None
    assert 100 < error.retry_after <= 120


def usage(*entries: dict, business: str = "100000000000001") -> dict[str, str]:
    return {"X-Business-Use-Case-Usage": json.dumps({business: list(entries)})}


def test_a_graph_error_waits_for_the_longer_of_retry_after_and_the_time_to_regain_access():
    body = error_body(80004)
    headers = {**usage({"estimated_time_to_regain_access": 1}), "Retry-After": "9"}
    assert classify_response(400, body, headers=headers).retry_after == 60.0
    headers = {**usage({"estimated_time_to_regain_access": 1}), "Retry-After": "600"}
    assert classify_response(400, body, headers=headers).retry_after == 600.0


def test_control_characters_in_graphs_texts_are_escaped_so_no_log_line_is_forged():
    forged = "Invalid\n2026-11-30 03:00:00 | INFO | all events delivered \x1b[2K\u202e"
    error = classify_response(
        400, error_body(100, message=forged, error_user_msg="one\rtwo", fbtrace_id="A\x00B")
    )
    assert error.message == (
        "Invalid\\n2026-11-30 03:00:00 | INFO | all events delivered \\x1b[2K\\u202e"
    )
    assert (error.user_message, error.fbtrace_id) == ("one\\rtwo", "A\\x00B")
    assert str(error).isprintable()


def test_a_text_of_graphs_longer_than_a_log_line_should_be_is_cut_saying_its_length():
    error = classify_response(400, error_body(100, message="x" * 50_000))
    assert error.message == "x" * 2000 + "… (50000 characters)"


CLIENT_GUIDE = Path(__file__).resolve().parent.parent / "docs" / "client.md"


def test_every_attribute_an_error_carries_is_named_in_the_client_guide():
    # what an application's `except` may read; an error's attributes are those its __init__
    # sets (vars) and those every DeliveryError has, which retries and isolation set
    graph_error = classify_response(
        400,
        json.dumps({"error": {"message": "m", "type": "OAuthException", "code": 100,
                              "error_subcode": 2804003, "is_transient": False,
                              "error_user_title": "t", "error_user_msg": "u",
                              "fbtrace_id": "f"}}).encode(),
        headers={"Retry-After": "5"},
    )  # fmt: skip
    errors: list[CapiError] = [
        graph_error,
        BodyLimitError.from_error(graph_error, event_bytes=2_000_000),
        NetworkError("refused", maybe_delivered=False),
        EventsReceivedMismatch(sent=2, received=1, fbtrace_id="f"),
        BatchProcessingError([(0, graph_error)], [None]),
    ]
    carried = set(DeliveryError.__annotations__)
    for error in errors:
        carried.update(vars(error))
    named = set(re.findall(r"`(\w+)`", CLIENT_GUIDE.read_text(encoding="utf-8")))
    assert sorted(carried - named) == []
