"""The client's errors cross process boundaries whole: a worker of a process pool (or anything
else that pickles them) hands its caller the error it raised, with every attribute."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from target_meta_capi.capi import (
    AuthError,
    BatchProcessingError,
    BodyLimitError,
    DeliveryError,
    EventRequest,
    EventResponse,
    EventsReceivedMismatch,
    RequestRejectedError,
    ThrottledError,
)
from target_meta_capi.sandbox import SandboxServer

EVENT = {
    "event_name": "Lead",
    "event_time": 1_795_773_600,
    "event_id": "lead-1",
    "action_source": "system_generated",
    "user_data": {"em": ["a" * 64]},
}


def send_one_event(graph_url: str, access_token: str) -> EventResponse:
    request = EventRequest(
        pixel_id="1234567890", events=[EVENT], access_token=access_token, graph_url=graph_url
    )
    return request.execute()


def test_a_graph_error_raised_in_a_process_pool_worker_reaches_its_caller(
    sandbox: SandboxServer,
) -> None:
    # spawn, as on macOS and Windows: the worker imports the package afresh
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(send_one_event, sandbox.url, "not-the-sandbox-token")
        with pytest.raises(AuthError) as raised:
            future.result()
    assert (raised.value.http_status, raised.value.code) == (400, 190)


@pytest.mark.parametrize(
    "error",
    [
        ThrottledError(
            "(#17) User request limit reached",
            http_status=400,
            code=17,
            subcode=2446079,
            fbtrace_id="A1",
            retry_after=30.0,
        ),
        RequestRejectedError.from_error(AuthError("Invalid parameter", http_status=400, code=100)),
        EventsReceivedMismatch(sent=3, received=2, fbtrace_id="A2"),
        BodyLimitError("HTTP 413 without a Graph error object", event_bytes=387, http_status=413),
    ],
    ids=type,
)
def test_an_error_pickles_with_its_text_and_attributes(error: DeliveryError) -> None:
    error.retries_cancelled = True
    copied = pickle.loads(pickle.dumps(error))
    assert type(copied) is type(error)
    assert (str(copied), repr(copied)) == (str(error), repr(error))
    assert vars(copied) == vars(error)


def test_a_batch_processing_error_pickles_with_its_failures_and_responses() -> None:
    failure = AuthError("Invalid OAuth access token", http_status=400, code=190)
    responses = [EventResponse(10, [], "A1"), None]
    copied = pickle.loads(pickle.dumps(BatchProcessingError([(1, failure)], responses)))
    assert copied.responses == responses
    [(index, error)] = copied.failures
    assert (index, type(error), str(error)) == (1, AuthError, str(failure))
