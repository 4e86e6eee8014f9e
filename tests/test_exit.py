"""The client at the interpreter's exit: an application flushing the events it still holds
from an atexit handler, where Python's thread pools take no new work."""

import subprocess
import sys

from tests._http_fixture import HANDLER_WAIT_SECONDS, FakeGraphServer, graph_error

TOKEN = "EAAGm0PX4ZCpsBAKZBZCtestaccesstoken1234"


def run_until_exit(server_url: str, setup: str, flush: str) -> subprocess.CompletedProcess[str]:
    """A Python process that runs `setup`, then `flush` from an atexit handler."""
    script = f"""
import atexit
from target_meta_capi.capi import BatchProcessor, EventRequest, EventRequestAsync

def lead(number, cls=EventRequest):
    return cls("1234567890", events=[{{"event_name": "Lead", "event_id": f"e{{number}}"}}],
               access_token={TOKEN!r}, graph_url={server_url!r})

{setup}

@atexit.register
def flush():
    print({flush})
"""
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=HANDLER_WAIT_SECONDS,
    )


def test_a_request_submitted_to_a_batch_processor_in_an_atexit_handler_is_sent():
    with FakeGraphServer() as server:
        result = run_until_exit(
            server.url,
            setup="processor = BatchProcessor()",
            flush="processor.submit(lead(1)).result().events_received",
        )
    assert (result.stdout, result.stderr) == ("1\n", "")
    assert [request.events[0]["event_id"] for request in server.requests] == ["e1"]


def test_an_async_request_executed_in_an_atexit_handler_is_sent():
    with FakeGraphServer() as server:
        result = run_until_exit(
            server.url,
            setup="lead(1, EventRequestAsync).execute().result()",
            flush="lead(2, EventRequestAsync).execute().result().events_received",
        )
    assert (result.stdout, result.stderr) == ("1\n", "")
    assert [request.events[0]["event_id"] for request in server.requests] == ["e1", "e2"]


def test_an_async_request_failing_in_an_atexit_handler_gives_its_error_through_its_future():
    with FakeGraphServer(lambda request: graph_error(400, 100)) as server:
        result = run_until_exit(
            server.url,
            setup="",
            flush="type(lead(1, EventRequestAsync).execute().exception()).__name__",
        )
    assert (result.stdout, result.stderr) == ("InvalidRequestError\n", "")
    assert len(server.requests) == 1
