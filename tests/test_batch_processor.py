import dataclasses
import gc
import hashlib
import itertools
import logging
import signal
import threading
import time
import types
import weakref
from concurrent.futures import Future

import pytest

from target_meta_capi.capi.batch import BatchProcessor
from target_meta_capi.capi.errors import (
    AuthError,
    BatchProcessingError,
    ConfigurationError,
    InvalidRequestError,
    NetworkError,
    ProcessorClosedError,
    TransientError,
)
from target_meta_capi.capi.request import EventRequest, EventRequestAsync, RequestObserver
from target_meta_capi.capi.retry import RetryPolicy
from tests._http_fixture import (
    HANDLER_WAIT_SECONDS,
    FakeGraphServer,
    RecordedRequest,
    RecordingHttpService,
    accept,
    closed_port,
    graph_error,
)

TOKEN = "EAAGm0PX4ZCpsBAKZBZCtestaccesstoken1234"
NO_RETRIES = RetryPolicy(max_retries=0)
FAST_RETRIES = RetryPolicy(max_retries=3, base_delay=0.001, throttle_base_delay=0.001)


def events(count: int, **marks: object) -> list[dict]:
    return [{"event_name": "Lead", "event_id": f"e{number}", **marks} for number in range(count)]


def template(server_url: str, cls=EventRequest) -> EventRequest:
    return cls("1234567890", access_token=TOKEN, graph_url=server_url, test_event_code="TEST42")


def requests_marked(server_url: str, marks: list[str]) -> list[EventRequest]:
    """One single-event request per mark; the server reads the mark to decide its answer."""
    return [
        template(server_url).copy_with([{"event_name": "Lead", "mark": mark, "request": index}])
        for index, mark in enumerate(marks)
    ]


def mark_of(request: RecordedRequest) -> str:
    return request.events[0]["mark"]


@pytest.mark.parametrize("batch_size", [0, 1001, 5000])
def test_batch_size_outside_1_to_1000_is_refused(batch_size):
    with pytest.raises(ConfigurationError, match="at most 1000 events per request"):
        BatchProcessor(batch_size=batch_size)


def test_concurrent_requests_below_1_is_refused():
    with pytest.raises(ConfigurationError, match="concurrent_requests"):
        BatchProcessor(concurrent_requests=0)


@pytest.mark.parametrize("setting", ["batch_size", "concurrent_requests"])
def test_a_true_or_false_size_is_refused_not_read_as_1_or_0(setting):
    with pytest.raises(ConfigurationError, match=f"{setting} must be a whole number"):
        BatchProcessor(**{setting: True})


def test_process_events_sends_batches_and_returns_responses_in_order():
    with FakeGraphServer() as server, BatchProcessor(batch_size=10, concurrent_requests=3) as bp:
        responses = bp.process_events(template(server.url), events(25))
    assert [response.events_received for response in responses] == [10, 10, 5]
    sent = sorted(itertools.chain.from_iterable(r.events for r in server.requests), key=str)
    assert sent == sorted(events(25), key=str)
    assert all(request.json["test_event_code"] == "TEST42" for request in server.requests)


def test_process_events_delivers_to_the_sandbox(sandbox):
    now = int(time.time())
    data = [
        {
            "event_name": "Lead",
            "event_time": now,
            "action_source": "system_generated",
            "event_id": f"e{number}",
            "user_data": {"external_id": hashlib.sha256(str(number).encode()).hexdigest()},
        }
        for number in range(2500)
    ]
    request = EventRequest(
        "1234567890", access_token="sandbox-token", graph_url=sandbox.url, partner_agent="pa"
    )
    with BatchProcessor(batch_size=1000, concurrent_requests=2) as processor:
        responses = processor.process_events(request, iter(data))
    assert [response.events_received for response in responses] == [1000, 1000, 500]
    accepted = sandbox.accepted_events()
    assert sorted(item["event"]["event_id"] for item in accepted) == sorted(
        event["event_id"] for event in data
    )
    assert {item["params"]["partner_agent"] for item in accepted} == {"pa"}


def test_process_events_refuses_one_event_given_as_the_events_before_sending(sandbox):
    request = EventRequest("1234567890", access_token="sandbox-token", graph_url=sandbox.url)
    with BatchProcessor() as processor, pytest.raises(ConfigurationError, match="not one event"):
        processor.process_events(request, events(1)[0])
    assert sandbox.stats()["requests"] == 0


def test_a_batch_error_quotes_its_first_five_failures_and_counts_the_others(sandbox):
    expired = EventRequest("1234567890", access_token="expired-token", graph_url=sandbox.url)
    with BatchProcessor(batch_size=1) as processor, pytest.raises(BatchProcessingError) as raised:
        processor.process_events(expired, events(40))
    text = str(raised.value)
    assert text.startswith("40 of 40 requests failed: request 0: AuthError: ")
    assert [f"request {index}:" in text for index in (4, 5)] == [True, False]
    assert text.endswith("; and 35 more (see failures)")
    assert len(raised.value.failures) == 40


def test_a_failed_requests_error_does_not_keep_the_request_and_its_events(sandbox_factory):
    # a BatchProcessingError keeps every failed request's error: in an outage, all the events
    # of a process_events run
    down = sandbox_factory(transient_error_rate=1.0)
    request = EventRequest(
        "1234567890",
        events=events(100),
        access_token="sandbox-token",
        graph_url=down.url,
        retry_policy=RetryPolicy(max_retries=0),
    )
    request_left = weakref.ref(request)
    with BatchProcessor() as processor:
        future = processor.submit(request)
        del request
        error = future.exception()
    gc.collect()
    assert isinstance(error, TransientError)
    assert request_left() is None


def _texts_kept_by(error: BaseException) -> list[str]:
    """Every text an error keeps: through its chain, attributes, traceback frames' locals and
    containers (not the modules and classes they name)."""
    texts: list[str] = []
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen or isinstance(current, (type, types.ModuleType)):
            continue
        seen.add(id(current))
        if isinstance(current, (str, bytes)):
            texts.append(current if isinstance(current, str) else current.decode("latin-1"))
        elif isinstance(current, BaseException):
            pending.extend((current.__cause__, current.__context__, current.__traceback__))
            pending.extend((current.args, vars(current)))
        elif isinstance(current, types.TracebackType):
            pending.extend((current.tb_frame.f_locals, current.tb_next))
        elif isinstance(current, dict):
            pending.extend((*current.keys(), *current.values()))
        elif isinstance(current, (list, tuple, set, frozenset)):
            pending.extend(current)
        elif hasattr(current, "__dict__") and not callable(current):
            pending.append(vars(current))
    return texts


def test_a_request_failed_on_the_network_keeps_neither_its_body_nor_the_token():
    # requests' exception holds the request it sent (.request.body: the token, the events)
    request = EventRequest(
        "1234567890",
        events=events(3, user_data={"client_user_agent": "Agent/7 kept-nowhere"}),
        access_token=TOKEN,
        graph_url=f"http://127.0.0.1:{closed_port()}",
        retry_policy=NO_RETRIES,
    )
    with BatchProcessor() as processor:
        error = processor.submit(request).exception()

    kept = " ".join(_texts_kept_by(error))

    assert isinstance(error, NetworkError)
    assert TOKEN not in kept
    assert "kept-nowhere" not in kept


def test_server_sees_exactly_concurrent_requests_in_flight():
    # each request waits at the server until 3 are there (fewer in flight would time out),
    # then stays a little longer so that a 4th one, if the client sent it, would be counted
    all_three_here = threading.Barrier(3)

    def handler(request):
        all_three_here.wait(HANDLER_WAIT_SECONDS)
        time.sleep(0.05)
        return accept(request)

    with (
        FakeGraphServer(handler) as server,
        BatchProcessor(concurrent_requests=3, retry_policy=NO_RETRIES) as processor,
    ):
        processor.process_event_requests(requests_marked(server.url, ["ok"] * 9))
    assert server.max_in_flight == 3
    assert len(server.requests) == 9


def test_wave_generator_yields_one_list_of_futures_per_wave():
    with FakeGraphServer() as server, BatchProcessor(concurrent_requests=3) as processor:
        waves = list(
            processor.process_event_requests_generator(requests_marked(server.url, ["ok"] * 7))
        )
        sizes = [len(wave) for wave in waves]
        results = [future.result(timeout=10).events_received for wave in waves for future in wave]
    assert sizes == [3, 3, 1]
    assert results == [1] * 7


def test_events_are_read_only_as_waves_are_asked_for():
    consumed = 0

    def many_events():
        nonlocal consumed
        for number in range(100_000):
            consumed += 1
            yield {"event_name": "Lead", "event_id": f"e{number}"}

    with FakeGraphServer() as server, BatchProcessor(batch_size=10, concurrent_requests=2) as bp:
        waves = bp.process_events_generator(template(server.url), many_events())
        first_wave = next(waves)
        assert [future.result(timeout=10).events_received for future in first_wave] == [10, 10]
        waves.close()
    assert consumed == 20


def test_sliding_window_starts_the_next_request_when_any_one_ends():
    # one request is held until five others have been answered: with 2 slots that only works
    # if each answered request's slot is reused at once instead of waiting for the slow one
    five_fast_answered = threading.Event()
    fast_answered = itertools.count(1)
    slow_was_overtaken = []

    def handler(request):
        if mark_of(request) == "slow":
            slow_was_overtaken.append(five_fast_answered.wait(HANDLER_WAIT_SECONDS))
        elif next(fast_answered) == 5:
            five_fast_answered.set()
        return accept(request)

    marks = ["slow", "fast", "fast", "fast", "fast", "fast"]
    with FakeGraphServer(handler) as server, BatchProcessor(concurrent_requests=2) as processor:
        futures = [processor.submit(request) for request in requests_marked(server.url, marks)]
        assert [future.result(timeout=20).events_received for future in futures] == [1] * 6
    assert slow_was_overtaken == [True]
    assert server.max_in_flight == 2


def test_submit_blocks_while_the_window_is_full():
    release = threading.Event()

    def handler(request):
        release.wait(HANDLER_WAIT_SECONDS)
        return accept(request)

    with FakeGraphServer(handler) as server, BatchProcessor(concurrent_requests=1) as processor:
        first, second = requests_marked(server.url, ["first", "second"])
        processor.submit(first)
        submitted = []
        submitter = threading.Thread(target=lambda: submitted.append(processor.submit(second)))
        submitter.start()
        submitter.join(0.3)
        assert submitter.is_alive()
        assert processor.in_flight == 1
        release.set()
        submitter.join(HANDLER_WAIT_SECONDS)
        assert submitted[0].result(timeout=10).events_received == 1
    assert [mark_of(request) for request in server.requests] == ["first", "second"]


def test_throttling_halves_the_window_and_success_grows_it_back():
    retry_arrived, release = threading.Event(), threading.Event()
    answers = itertools.count()

    def handler(request):
        if next(answers) == 0:
            return graph_error(400, 17, 2446079, message="User request limit reached")
        retry_arrived.set()
        release.wait(HANDLER_WAIT_SECONDS)
        return accept(request)

    with (
        FakeGraphServer(handler) as server,
        BatchProcessor(concurrent_requests=4, retry_policy=FAST_RETRIES) as processor,
    ):
        future = processor.submit(requests_marked(server.url, ["throttled"])[0])
        assert retry_arrived.wait(HANDLER_WAIT_SECONDS)
        window_while_throttled = processor.window_size
        release.set()
        future.result(timeout=10)
        window_after_success = processor.window_size
    assert (window_while_throttled, window_after_success) == (2, 3)


def test_window_never_shrinks_below_one():
    windows_seen_at_retry = []
    processors = []

    class WindowWatcher(RequestObserver):
        def on_retry(self, error, attempt, delay):
            windows_seen_at_retry.append(processors[0].window_size)

    with (
        FakeGraphServer(lambda request: graph_error(400, 4)) as server,
        BatchProcessor(
            concurrent_requests=2, retry_policy=FAST_RETRIES, observer=WindowWatcher()
        ) as processor,
    ):
        processors.append(processor)
        future = processor.submit(requests_marked(server.url, ["x"])[0])
        future.exception(timeout=10)
    assert windows_seen_at_retry == [1, 1, 1]


def test_failed_requests_are_listed_after_all_others_completed():
    def handler(request):
        return {
            "auth": graph_error(400, 190),
            "invalid": graph_error(400, 100, 2804003),
        }.get(mark_of(request)) or accept(request)

    marks = ["ok", "auth", "ok", "invalid", "ok"]
    with (
        FakeGraphServer(handler) as server,
        BatchProcessor(concurrent_requests=2, retry_policy=NO_RETRIES) as processor,
        pytest.raises(BatchProcessingError) as raised,
    ):
        processor.process_event_requests(requests_marked(server.url, marks))
    failures = raised.value.failures
    assert [index for index, _ in failures] == [1, 3]
    assert [type(error) for _, error in failures] == [AuthError, InvalidRequestError]
    assert [response is not None for response in raised.value.responses] == [
        True, False, True, False, True,
    ]  # fmt: skip
    assert len(server.requests) == 5


@pytest.mark.parametrize(
    "service", [RecordingHttpService, "tests._http_fixture:RecordingHttpService"]
)
def test_custom_http_service_is_used_by_batch_sends(service):
    RecordingHttpService.sent_urls.clear()
    with (
        FakeGraphServer() as server,
        BatchProcessor(batch_size=10, concurrent_requests=2, http_service=service) as processor,
    ):
        processor.process_events(template(server.url), events(25))
    assert len(RecordingHttpService.sent_urls) == 3
    assert set(RecordingHttpService.sent_urls) == {server.url + "/v24.0/1234567890/events"}


def test_events_of_an_async_template_are_sent_in_requests_of_the_batch_size():
    with FakeGraphServer() as server, BatchProcessor(batch_size=5) as processor:
        responses = processor.process_events(template(server.url, EventRequestAsync), events(8))
    assert [response.events_received for response in responses] == [5, 3]


def test_processor_retry_policy_applies_to_its_requests():
    answers = itertools.count()

    def handler(request):
        return graph_error(500, 2) if next(answers) == 0 else accept(request)

    with (
        FakeGraphServer(handler) as server,
        BatchProcessor(retry_policy=FAST_RETRIES) as processor,
    ):
        processor.process_event_requests(requests_marked(server.url, ["x"]))
    assert len(server.requests) == 2


def test_submit_isolating_delivers_around_an_invalid_event():
    def handler(request):
        if any(event.get("bad") for event in request.events):
            return graph_error(400, 100, 2804003)
        return accept(request)

    data = [{"event_name": "Lead", "bad": number == 2} for number in range(6)]
    with FakeGraphServer(handler) as server, BatchProcessor() as processor:
        report = processor.submit_isolating(template(server.url).copy_with(data)).result(10)
    assert report.delivered == [0, 1, 3, 4, 5]
    assert [rejected.index for rejected in report.rejected] == [2]


def test_wait_all_returns_once_nothing_is_in_flight():
    with FakeGraphServer() as server, BatchProcessor(concurrent_requests=2) as processor:
        futures = [processor.submit(r) for r in requests_marked(server.url, ["a", "b", "c"])]
        processor.wait_all(timeout=10)
        assert processor.in_flight == 0
        assert all(future.done() for future in futures)


def test_wait_all_returns_once_the_callbacks_given_to_the_futures_have_run():
    acknowledged = []

    def on_done(future):
        time.sleep(0.2)  # a slow callback: bookkeeping, a database write
        acknowledged.append(future.result().events_received)

    with FakeGraphServer() as server, BatchProcessor(concurrent_requests=2) as processor:
        for request in requests_marked(server.url, ["a", "b"]):
            processor.submit(request).add_done_callback(on_done)
        processor.wait_all(timeout=10)
        assert acknowledged == [1, 1]


def test_a_callback_resending_its_request_is_let_into_a_full_window():
    resent = []

    def resend_once(future):
        if not resent:
            resent.append(processor.submit(request))

    with FakeGraphServer() as server, BatchProcessor(concurrent_requests=1) as processor:
        request = requests_marked(server.url, ["first"])[0]
        processor.submit(request).add_done_callback(resend_once)
        processor.wait_all(timeout=5)
        assert resent[0].result(timeout=5).events_received == 1
        assert [mark_of(request) for request in server.requests] == ["first", "first"]


def test_wait_all_from_a_callback_raises_instead_of_waiting_for_itself():
    raised = []

    def wait_for_everything(future):
        try:
            processor.wait_all(timeout=5)
        except RuntimeError as error:
            raised.append(error)

    with FakeGraphServer() as server, BatchProcessor() as processor:
        processor.submit(requests_marked(server.url, ["a"])[0]).add_done_callback(
            wait_for_everything
        )
        processor.wait_all(timeout=10)
    assert "would wait for itself" in str(raised[0])


@pytest.mark.parametrize("concurrent_requests", [1, 4])
def test_process_events_from_a_callback_raises_instead_of_waiting_for_its_own_thread(
    concurrent_requests,
):
    raised = []

    def send_more(future):
        try:
            processor.process_event_requests(requests_marked(server.url, ["b"]))
        except RuntimeError as error:
            raised.append(error)

    with (
        FakeGraphServer() as server,
        BatchProcessor(concurrent_requests=concurrent_requests) as processor,
    ):
        processor.submit(requests_marked(server.url, ["a"])[0]).add_done_callback(send_more)
        processor.wait_all(timeout=10)
        assert [mark_of(request) for request in server.requests] == ["a"]
    assert "may need the thread the callback holds" in str(raised[0])


def test_close_from_a_callback_closes_without_waiting_for_its_own_thread():
    outcomes = []

    def close_on_done(future):
        try:
            processor.close()
            outcomes.append("closed")
        except RuntimeError as error:
            outcomes.append(error)

    with FakeGraphServer() as server, BatchProcessor() as processor:
        processor.submit(requests_marked(server.url, ["a"])[0]).add_done_callback(close_on_done)
        processor.wait_all(timeout=10)
        assert outcomes == ["closed"]
        with pytest.raises(ProcessorClosedError):
            processor.submit(requests_marked(server.url, ["b"])[0])


def test_observer_is_told_about_every_attempt():
    attempts = []

    class Counting(RequestObserver):
        def on_attempt(self, events, status, seconds, error):
            attempts.append((events, status))

    with (
        FakeGraphServer() as server,
        BatchProcessor(batch_size=4, observer=Counting()) as processor,
    ):
        processor.process_events(template(server.url), events(10))
    assert sorted(attempts) == [(2, 200), (4, 200), (4, 200)]


def usage_reported(request: RecordedRequest):
    return dataclasses.replace(accept(request), headers={"X-App-Usage": '{"call_count": 12}'})


def test_observer_hears_the_rate_limit_usage_each_answer_reports():
    usages = []

    class Usage(RequestObserver):
        def on_rate_limit_usage(self, percent):
            usages.append(percent)

    with (
        FakeGraphServer(usage_reported) as server,
        BatchProcessor(batch_size=4, observer=Usage()) as processor,
    ):
        processor.process_events(template(server.url), events(10))
    assert usages == [12.0, 12.0, 12.0]


def test_a_processor_without_an_observer_logs_no_warning_on_retries_and_usage(caplog):
    answers = iter([graph_error(500, 2, is_transient=True)])

    def failing_once(request: RecordedRequest):
        return next(answers, None) or usage_reported(request)

    with (
        FakeGraphServer(failing_once) as server,
        BatchProcessor(retry_policy=FAST_RETRIES) as processor,
    ):
        processor.process_events(template(server.url), events(3))
    assert [
        record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING
    ] == []


def test_closed_processor_refuses_new_requests():
    processor = BatchProcessor()
    processor.close()
    with pytest.raises(
        ProcessorClosedError, match=r"takes no new requests: close\(\) or refuse_new\(\)"
    ):
        processor.submit(template("http://127.0.0.1:1").copy_with(events(1)))


def test_refuse_new_wakes_a_submit_waiting_for_room_and_lets_the_request_in_flight_finish():
    release = threading.Event()

    def handler(request):
        release.wait(HANDLER_WAIT_SECONDS)
        return accept(request)

    with FakeGraphServer(handler) as server, BatchProcessor(concurrent_requests=1) as processor:
        first, second = requests_marked(server.url, ["first", "second"])
        started = processor.submit(first)
        refused = []

        def submit_second():
            try:
                processor.submit(second)
            except ProcessorClosedError as error:
                refused.append(error)

        submitter = threading.Thread(target=submit_second)
        submitter.start()
        submitter.join(0.3)
        assert submitter.is_alive()  # waiting for room in the window
        processor.refuse_new()
        submitter.join(HANDLER_WAIT_SECONDS)
        assert not submitter.is_alive()
        assert len(refused) == 1
        assert not started.done()  # the request in flight goes on
        release.set()
        assert started.result(timeout=10).events_received == 1
    assert [mark_of(request) for request in server.requests] == ["first"]


class _WindowOfOneCheckedAsASignalLands:
    """Stands in for a window of one: the first time submit() checks for room, a signal lands
    right after it read that the processor was open, before it waits."""

    def __init__(self) -> None:
        self.signal_landed = False

    def __gt__(self, in_flight: int) -> bool:  # `in_flight < window`
        if not self.signal_landed:
            self.signal_landed = True
            signal.raise_signal(signal.SIGUSR1)
        return in_flight < 1

    def __lt__(self, concurrent_requests: int) -> bool:  # the window does not grow
        return False


def test_refuse_new_from_a_signal_handler_landing_before_the_wait_still_stops_submit():
    # The handler runs on the thread about to wait, which holds the lock: its notify reaches
    # no one, and the wait then lasted until a request in flight ended (minutes of retries
    # in an outage, beyond any shutdown grace).
    release = threading.Event()

    def handler(request):
        release.wait(HANDLER_WAIT_SECONDS)
        return accept(request)

    with FakeGraphServer(handler) as server, BatchProcessor(concurrent_requests=1) as processor:
        first, second = requests_marked(server.url, ["first", "second"])
        started = processor.submit(first)
        window = _WindowOfOneCheckedAsASignalLands()
        processor._window_size = window  # type: ignore[assignment]
        previous = signal.signal(signal.SIGUSR1, lambda signum, frame: processor.refuse_new())
        timer = threading.Timer(3, release.set)  # ends the request in flight, later
        timer.start()
        try:
            with pytest.raises(ProcessorClosedError):
                processor.submit(second)
            assert window.signal_landed
            assert not release.is_set()  # refused while the request in flight went on
        finally:
            signal.signal(signal.SIGUSR1, previous)
            release.set()
            timer.cancel()
        assert started.result(timeout=10).events_received == 1
    assert [mark_of(request) for request in server.requests] == ["first"]


def test_an_observer_that_raises_does_not_fail_the_batch_processors_requests(caplog):
    class Broken(RequestObserver):
        def on_attempt(self, events, status, seconds, error):
            raise ZeroDivisionError("metrics bug")

    with FakeGraphServer() as server, BatchProcessor(observer=Broken()) as processor:
        responses = processor.process_events(template(server.url), events(3))
    assert [response.events_received for response in responses] == [3]
    assert any("Broken.on_attempt raised" in record.getMessage() for record in caplog.records)


# retries waiting far past HANDLER_WAIT_SECONDS: a close that waits for them fails the test
LONG_RETRY_WAITS = RetryPolicy(max_retries=5, max_time=300, base_delay=60, max_delay=60)


def always_transient(request: RecordedRequest):
    return graph_error(500, 2, is_transient=True)


def test_close_cancelling_retries_returns_while_a_request_waits_to_retry():
    retrying = threading.Event()

    class Retrying(RequestObserver):
        def on_retry(self, error, attempt, delay):
            retrying.set()

    with FakeGraphServer(always_transient) as server:
        processor = BatchProcessor(retry_policy=LONG_RETRY_WAITS, observer=Retrying())
        future = processor.submit(template(server.url).copy_with(events(1)))
        assert retrying.wait(HANDLER_WAIT_SECONDS)
        closing = threading.Thread(target=processor.close, kwargs={"cancel_retries": True})
        closing.start()
        closing.join(HANDLER_WAIT_SECONDS)
        assert not closing.is_alive()
        error = future.exception(timeout=0)
        assert isinstance(error, TransientError) and error.retries_cancelled
    assert len(server.requests) == 1


def test_a_request_failing_after_retries_were_cancelled_is_not_retried():
    arrived, answer = threading.Event(), threading.Event()

    def failing_when_told(request: RecordedRequest):
        arrived.set()
        answer.wait(HANDLER_WAIT_SECONDS)
        return always_transient(request)

    with (
        FakeGraphServer(failing_when_told) as server,
        BatchProcessor(retry_policy=FAST_RETRIES) as processor,
    ):
        future = processor.submit(template(server.url).copy_with(events(1)))
        assert arrived.wait(HANDLER_WAIT_SECONDS)
        processor.cancel_retries()
        answer.set()
        error = future.exception(HANDLER_WAIT_SECONDS)
        assert isinstance(error, TransientError) and error.retries_cancelled
    assert len(server.requests) == 1


def test_a_request_in_flight_at_close_is_still_retried():
    arrived, answer = threading.Event(), threading.Event()
    answers = iter([graph_error(500, 2, is_transient=True)])

    def failing_once_when_told(request: RecordedRequest):
        arrived.set()
        answer.wait(HANDLER_WAIT_SECONDS)
        return next(answers, None) or accept(request)

    with FakeGraphServer(failing_once_when_told) as server:
        processor = BatchProcessor(retry_policy=FAST_RETRIES)
        future = processor.submit(template(server.url).copy_with(events(1)))
        assert arrived.wait(HANDLER_WAIT_SECONDS)
        processor.close(wait=False)  # without cancel_retries
        answer.set()
        assert future.result(HANDLER_WAIT_SECONDS).events_received == 1
    assert len(server.requests) == 2


def test_submit_racing_close_either_starts_the_request_or_raises_processor_closed():
    # The race is between two threads, so it is run many times: before the fix, a submit
    # that had found the window open could reach the thread pool after close() shut it
    # down, and raised the pool's RuntimeError (in every run of this test, 50 rounds).
    unexpected: list[BaseException] = []
    started: list[Future] = []
    with FakeGraphServer() as server:
        request = template(server.url).copy_with(events(1))
        for _ in range(50):
            processor = BatchProcessor(concurrent_requests=64, retry_policy=NO_RETRIES)

            def submit_until_closed(processor: BatchProcessor = processor) -> None:
                while True:
                    try:
                        started.append(processor.submit(request))
                    except ProcessorClosedError:
                        return
                    except BaseException as error:
                        unexpected.append(error)
                        return

            submitters = [threading.Thread(target=submit_until_closed) for _ in range(8)]
            for submitter in submitters:
                submitter.start()
            while not started:
                time.sleep(0)  # let the submitters in before closing
            processor.close()
            for submitter in submitters:
                submitter.join(HANDLER_WAIT_SECONDS)
            started.clear()
    assert unexpected == []


def test_wait_all_raises_timeout_error_naming_the_requests_still_in_flight():
    answered = threading.Event()

    def held(request):
        answered.wait(HANDLER_WAIT_SECONDS)
        return accept(request)

    with FakeGraphServer(held) as server, BatchProcessor() as processor:
        future = processor.submit(requests_marked(server.url, ["a"])[0])
        with pytest.raises(TimeoutError, match=r"^1 request still in flight$"):
            processor.wait_all(timeout=0.05)
        answered.set()
        assert future.result(timeout=10).events_received == 1


def test_a_request_cancelled_while_waiting_for_the_busy_worker_is_never_sent():
    resent: list[Future] = []

    def resend_then_cancel(future):
        # the one worker runs this callback: the resent request waits for it, cancellable
        resent.append(processor.submit(request))
        resent[0].cancel()

    with FakeGraphServer() as server, BatchProcessor(concurrent_requests=1) as processor:
        request = requests_marked(server.url, ["first"])[0]
        processor.submit(request).add_done_callback(resend_then_cancel)
        processor.wait_all(timeout=5)
        assert resent[0].cancelled()
        assert processor.in_flight == 0
        assert [mark_of(request) for request in server.requests] == ["first"]
