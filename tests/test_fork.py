"""The client in a pre-fork server: what a process created before os.fork() is used in the
child (gunicorn's preload, multiprocessing's 'fork').

Each child runs in a multiprocessing 'fork' process whose exit code says whether its send
succeeded; one that hangs is killed and fails the test.
"""

import http.cookiejar
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import replace

import pytest
import requests

from target_meta_capi.capi import (
    BatchProcessor,
    DeliveryError,
    EventRequest,
    EventRequestAsync,
    RetryPolicy,
)
from target_meta_capi.capi import http as http_module
from target_meta_capi.capi import request as request_module
from target_meta_capi.capi.http import RequestsHttpService
from tests._http_fixture import HANDLER_WAIT_SECONDS, FakeGraphServer, accept, graph_error

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)
TOKEN = "EAAGm0PX4ZCpsBAKZBZCtestaccesstoken1234"
COOKIE = {"Set-Cookie": "session=1; Path=/"}


def lead(
    server_url: str, number: int, cls: type[EventRequest] = EventRequest, **settings: object
) -> EventRequest:
    return cls(
        "1234567890",
        events=[{"event_name": "Lead", "event_id": f"e{number}"}],
        access_token=TOKEN,
        graph_url=server_url,
        timeout=HANDLER_WAIT_SECONDS,
        **settings,
    )


def run_in_forked_child(send: Callable[[], object]) -> int | None:
    """The exit code of a forked child running `send` (0: it returned); None if it hung."""

    def child() -> None:
        send()
        sys.exit(0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(HANDLER_WAIT_SECONDS)
    if process.is_alive():
        process.kill()
        process.join()
        return None
    return process.exitcode


def client_ports_of_parent_and_forked_child(service: RequestsHttpService) -> tuple[int, int]:
    """The client ports of a send from this process, which leaves a keep-alive connection in
    the service's pool, and of one through the same service from a forked child."""
    with FakeGraphServer() as server:
        lead(server.url, 1, http_service=service).execute()

        assert run_in_forked_child(lead(server.url, 2, http_service=service).execute) == 0
    parent, child = server.requests
    return parent.client_port, child.client_port


def test_a_forked_child_sends_on_a_connection_of_its_own_not_the_parents():
    parent, child = client_ports_of_parent_and_forked_child(RequestsHttpService())
    assert child != parent


def test_a_service_with_a_cookie_jar_of_its_own_kind_gives_a_forked_child_its_own_connection():
    service = RequestsHttpService()
    service.session.cookies = http.cookiejar.CookieJar()  # type: ignore[assignment]
    parent, child = client_ports_of_parent_and_forked_child(service)
    assert child != parent


def test_a_service_with_an_adapter_of_its_own_kind_gives_a_forked_child_its_own_connection():
    service = RequestsHttpService()
    # an application's adapter for another host, met before the pooled one
    service.session.mount("http://elsewhere.invalid/", requests.adapters.BaseAdapter())
    parent, child = client_ports_of_parent_and_forked_child(service)
    assert child != parent


def test_the_shared_default_service_gives_a_forked_child_connections_of_its_own():
    with FakeGraphServer() as server:
        lead(server.url, 1).execute()

        assert run_in_forked_child(lead(server.url, 2).execute) == 0
    assert server.requests[1].client_port != server.requests[0].client_port


def test_a_fork_while_another_thread_makes_the_default_service_does_not_hang_the_child():
    # the lock held as by a thread making the shared default service at the instant of the fork
    with FakeGraphServer() as server, http_module._lock:
        assert run_in_forked_child(lead(server.url, 1).execute) == 0
    assert len(server.requests) == 1


def test_async_requests_sent_in_a_forked_child_complete():
    with FakeGraphServer() as server:
        # the shared executor now has an idle thread, which the child does not inherit
        lead(server.url, 1, EventRequestAsync).execute().result(HANDLER_WAIT_SECONDS)

        def send_async() -> None:
            future = lead(server.url, 2, EventRequestAsync).execute()
            future.result(HANDLER_WAIT_SECONDS)  # type: ignore[attr-defined]

        assert run_in_forked_child(send_async) == 0
    assert [request.events[0]["event_id"] for request in server.requests] == ["e1", "e2"]


def test_a_fork_while_another_thread_makes_the_shared_executor_does_not_hang_the_child():
    with FakeGraphServer() as server:

        def send_async() -> None:
            future = lead(server.url, 1, EventRequestAsync).execute()
            future.result(HANDLER_WAIT_SECONDS)  # type: ignore[attr-defined]

        # held as by a thread making the shared executor at the instant of the fork
        with request_module._executor_lock:
            assert run_in_forked_child(send_async) == 0
    assert len(server.requests) == 1


def test_a_batch_processor_created_before_fork_sends_in_the_child():
    with FakeGraphServer() as server, BatchProcessor(concurrent_requests=2) as processor:
        processor.submit(lead(server.url, 1)).result(HANDLER_WAIT_SECONDS)

        def send_batch() -> None:
            processor.submit(lead(server.url, 2)).result(HANDLER_WAIT_SECONDS)
            processor.wait_all(HANDLER_WAIT_SECONDS)

        assert run_in_forked_child(send_batch) == 0
    assert [request.events[0]["event_id"] for request in server.requests] == ["e1", "e2"]


def test_a_batch_processor_whose_retries_were_cancelled_before_fork_does_not_retry_in_the_child():
    transient = graph_error(500, 2, is_transient=True)
    policy = RetryPolicy(max_retries=3, base_delay=0.001)
    with (
        FakeGraphServer(lambda request: transient) as server,
        BatchProcessor(retry_policy=policy) as processor,
    ):
        processor.cancel_retries()

        def send_failing() -> None:
            error = processor.submit(lead(server.url, 1)).exception(HANDLER_WAIT_SECONDS)
            sys.exit(0 if isinstance(error, DeliveryError) and error.retries_cancelled else 1)

        assert run_in_forked_child(send_failing) == 0
    assert len(server.requests) == 1


def test_a_fork_while_another_thread_holds_the_sessions_cookie_lock_does_not_hang_the_child():
    parent_pid = os.getpid()
    inside_lock, leave_lock = threading.Event(), threading.Event()

    class HoldingInTheParent(http.cookiejar.DefaultCookiePolicy):
        """Called with the session's cookie lock held, on each cookie an answer sets."""

        def set_ok(self, cookie, request):
            if os.getpid() == parent_pid:
                inside_lock.set()
                leave_lock.wait(HANDLER_WAIT_SECONDS)
            return super().set_ok(cookie, request)

    service = RequestsHttpService()
    service.session.cookies.set_policy(HoldingInTheParent())
    with FakeGraphServer(lambda request: replace(accept(request), headers=COOKIE)) as server:
        sending = threading.Thread(target=lead(server.url, 1, http_service=service).execute)
        sending.start()
        assert inside_lock.wait(HANDLER_WAIT_SECONDS)
        try:
            exit_code = run_in_forked_child(lead(server.url, 2, http_service=service).execute)
        finally:
            leave_lock.set()
            sending.join(HANDLER_WAIT_SECONDS)
    assert exit_code == 0
