"""BatchProcessor: many requests, `concurrent_requests` of them in flight at once.

Two ways to use it:
- Meta's wave API (`process_events`, `process_event_requests` and their `_generator` forms).
- A sliding window (`submit`, `submit_isolating`): a request starts the moment another ends,
  and submitting blocks while the window is full. Throttling halves the window; each successful
  answer widens it again by one, up to `concurrent_requests`.

Every request goes through the window, so the wave API gets the same limits.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any, TypeVar

import msgspec

from ._hooks import notify
from ._thread_pools import submit_or_hand_back
from ._words import counted
from .errors import (
    BatchProcessingError,
    ConfigurationError,
    ProcessorClosedError,
    ThrottledError,
)
from .http import HttpServiceInterface, load_http_service
from .isolate import DeliveryReport, deliver_isolating_invalid
from .request import (
    ONE_EVENT_FOR_EVENTS,
    EventRequest,
    EventResponse,
    RequestObserver,
    is_one_event,
)
from .retry import RetryPolicy
from .rules import MAX_EVENTS_PER_REQUEST

T = TypeVar("T")
#: A BatchProcessor or a subclass: `with` hands back the processor itself, of its own class
_Processor = TypeVar("_Processor", bound="BatchProcessor")
#: How often a submit() waiting for room in the window checks whether it was refused anyway.
_RECHECK_SECONDS = 0.1


class BatchProcessor:
    """Splits events into requests of `batch_size` and sends them concurrently.

    `http_service`, `retry_policy` and `observer`, when given, apply to every request sent
    through this processor (overriding the requests' own service and policy).
    """

    def __init__(
        self,
        batch_size: int = MAX_EVENTS_PER_REQUEST,
        concurrent_requests: int = 4,
        http_service: HttpServiceInterface | str | type | None = None,
        retry_policy: RetryPolicy | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        # bool is an int: True would pass as 1
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not 1 <= batch_size <= MAX_EVENTS_PER_REQUEST
        ):
            raise ConfigurationError(
                f"batch_size must be a whole number from 1 to {MAX_EVENTS_PER_REQUEST} "
                f"(Graph accepts at most {MAX_EVENTS_PER_REQUEST} events per request), "
                f"got {batch_size!r}"
            )
        if (
            isinstance(concurrent_requests, bool)
            or not isinstance(concurrent_requests, int)
            or concurrent_requests < 1
        ):
            raise ConfigurationError(
                f"concurrent_requests must be a whole number of at least 1, "
                f"got {concurrent_requests!r}"
            )
        self.batch_size = batch_size
        self.concurrent_requests = concurrent_requests
        self._overrides: dict[str, Any] = {}
        if http_service is not None:
            self._overrides["http_service"] = load_http_service(http_service)
        if retry_policy is not None:
            self._overrides["retry_policy"] = retry_policy
        self._observer = _WindowObserver(self, observer)
        self._closed = False
        self._retries_cancelled = threading.Event()
        self._start_afresh()
        _live_processors.add(self)

    def _start_afresh(self) -> None:
        """Threads, window and lock of a processor with nothing in flight.

        Also in a forked child: the parent's threads do not exist there, so work given to
        the inherited executor would never run, and the requests counted in flight (the
        parent's) would never end."""
        self._executor = ThreadPoolExecutor(
            max_workers=self.concurrent_requests, thread_name_prefix="capi-batch"
        )
        self._condition = threading.Condition()
        # marks this processor's worker threads, where the callbacks given to its futures run
        self._worker = threading.local()
        self._in_flight = 0
        self._window_size = self.concurrent_requests
        # a parent's thread may have held its lock at the fork
        cancelled = self._retries_cancelled.is_set()
        self._retries_cancelled = threading.Event()
        if cancelled:
            self._retries_cancelled.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def window_size(self) -> int:
        return self._window_size

    # Meta's wave API

    def process_events(
        self, template_request: EventRequest, events: Iterable[Mapping[str, Any] | msgspec.Raw]
    ) -> list[EventResponse]:
        """Send all events in requests like `template_request`; responses in request order.

        Raises BatchProcessingError naming the failed requests once all the others completed.
        """
        return self.process_event_requests(self._requests_for(template_request, events))

    def process_events_generator(
        self, template_request: EventRequest, events: Iterable[Mapping[str, Any] | msgspec.Raw]
    ) -> Iterator[list[Future[EventResponse]]]:
        """Yield one list of futures per wave of `concurrent_requests` requests.

        Events are read only as the waves are asked for.
        """
        return self.process_event_requests_generator(self._requests_for(template_request, events))

    def process_event_requests(self, requests: Iterable[EventRequest]) -> list[EventResponse]:
        """Send the requests; responses in request order.

        Raises BatchProcessingError naming the failed requests once all the others completed.
        Not from a callback given to one of this processor's futures (RuntimeError): the
        requests it waits for may be queued for the very thread the callback holds.
        """
        if self._in_worker():
            raise RuntimeError(
                "process_events() and process_event_requests() were called from a callback "
                "of this BatchProcessor's futures: the requests they wait for may need the "
                "thread the callback holds; submit() them and give their futures callbacks"
            )
        futures = [self.submit(request) for request in requests]
        responses: list[EventResponse | None] = []
        failures: list[tuple[int, BaseException]] = []
        for index, future in enumerate(futures):
            error = future.exception()
            if error is None:
                responses.append(future.result())
            else:
                responses.append(None)
                failures.append((index, error))
        if failures:
            raise BatchProcessingError(failures, responses)
        return responses  # type: ignore[return-value]  # no None left without failures

    def process_event_requests_generator(
        self, requests: Iterable[EventRequest]
    ) -> Iterator[list[Future[EventResponse]]]:
        """Yield one list of futures per wave of `concurrent_requests` requests."""
        remaining = iter(requests)
        while wave := list(islice(remaining, self.concurrent_requests)):
            yield [self.submit(request) for request in wave]

    # sliding window

    def submit(self, request: EventRequest) -> Future[EventResponse]:
        """Start sending `request` as soon as the window has room (blocks until then)."""
        return self._start(self._send, self._with_overrides(request))

    def submit_isolating(self, request: EventRequest) -> Future[DeliveryReport]:
        """Like submit, but invalid events are isolated by bisection (see capi/isolate.py)."""
        return self._start(self._isolate, self._with_overrides(request))

    def wait_all(self, timeout: float | None = None) -> None:
        """Block until nothing is in flight; TimeoutError if that takes longer than `timeout`.

        Not from a callback given to one of this processor's futures: its request counts as in
        flight until the callback returns, so it would wait for itself (RuntimeError).
        """
        if self._in_worker():
            raise RuntimeError(
                "wait_all() was called from a callback of this BatchProcessor's futures, "
                "whose request is in flight until the callback returns: it would wait for itself"
            )
        with self._condition:
            if not self._condition.wait_for(lambda: self._in_flight == 0, timeout):
                raise TimeoutError(f"{counted(self._in_flight, 'request')} still in flight")

    def refuse_new(self) -> None:
        """From now on submit() raises ProcessorClosedError, one already waiting for room in
        the window too; requests already started go on.

        Safe in a signal handler: the condition's lock is reentrant, so the handler may run
        on the very thread that waits in submit(), which it then wakes, or which sees it at
        its next check if the handler ran just before its wait.
        """
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def cancel_retries(self) -> None:
        """Requests waiting to be retried stop waiting: each fails with the error that made it
        wait. From now on no request sent through this processor is retried. An HTTP attempt
        under way is not cut short: it ends with its answer or its timeout."""
        self._retries_cancelled.set()

    def close(self, wait: bool = True, *, cancel_retries: bool = False) -> None:
        """Refuse new requests; with `wait`, let the ones in flight finish first.

        With `cancel_retries`, those do not wait to be retried (see cancel_retries()): the
        wait is then for HTTP attempts under way only, at most the requests' timeout, not
        the retry policy's max_time. From a callback given to one of this processor's
        futures it does not wait: the callback's own thread would be among those waited for.
        """
        self.refuse_new()
        if cancel_retries:
            self.cancel_retries()
        self._executor.shutdown(wait=wait and not self._in_worker())

    def __enter__(self: _Processor) -> _Processor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # internals

    def _requests_for(
        self, template_request: EventRequest, events: Iterable[Mapping[str, Any] | msgspec.Raw]
    ) -> Iterator[EventRequest]:
        if is_one_event(events):
            raise ConfigurationError(ONE_EVENT_FOR_EVENTS)
        remaining = iter(events)
        while chunk := list(islice(remaining, self.batch_size)):
            yield template_request.copy_with(chunk)

    def _with_overrides(self, request: EventRequest) -> EventRequest:
        return dataclasses.replace(request, **self._overrides) if self._overrides else request

    def _send(self, request: EventRequest) -> EventResponse:
        return request.execute_blocking(observer=self._observer, cancel=self._retries_cancelled)

    def _isolate(self, request: EventRequest) -> DeliveryReport:
        return deliver_isolating_invalid(
            request, observer=self._observer, cancel=self._retries_cancelled
        )

    def _in_worker(self) -> bool:
        return getattr(self._worker, "active", False)

    def _start(self, work: Callable[[EventRequest], T], request: EventRequest) -> Future[T]:
        # A callback (resending a failed request, say) is let in without waiting for room:
        # its own request holds a place in the window until it returns, and the request it
        # submits can only run on a worker thread, which it may be holding too (with one).
        must_wait = not self._in_worker()
        future: Future[T] = Future()
        # taken out by run(), whose frame a failed request's error keeps (see _without_locals)
        pending = [request]

        def run() -> None:
            # maybe run by this thread when the pool refuses it (see _thread_pools), maybe
            # by a callback on a worker thread
            was_worker = self._in_worker()
            self._worker.active = True
            try:
                if not future.set_running_or_notify_cancel():  # cancelled while waiting
                    return
                try:
                    result = work(pending.pop())
                except BaseException as error:
                    future.set_exception(_without_locals(error))
                else:
                    future.set_result(result)
            finally:
                self._worker.active = was_worker
                # after the future is resolved and the callbacks given to it have run (they
                # run inside set_result), so that wait_all() returning means both
                self._release()

        with self._condition:
            # In short waits: refuse_new() from a signal handler landing on this thread after
            # the check and before the wait notifies no one, and the wait would go on until a
            # request in flight ends (minutes of retries, in an outage).
            while must_wait and not self._condition.wait_for(
                lambda: self._closed or self._in_flight < self._window_size,
                _RECHECK_SECONDS,
            ):
                pass
            if self._closed:
                raise ProcessorClosedError(
                    "BatchProcessor takes no new requests: close() or refuse_new() was called"
                )
            # under the lock, which close() takes before shutting the pool down: let go
            # first, this could reach a pool already shut down (its RuntimeError)
            refused = submit_or_hand_back(self._executor, run)
            # run() gives its place back under this lock, so only once it is counted
            self._in_flight += 1
        if refused is not None:
            refused()
        return future

    def _release(self) -> None:
        with self._condition:
            self._in_flight -= 1
            self._condition.notify_all()

    def _on_throttled(self) -> None:
        with self._condition:
            self._window_size = max(1, self._window_size // 2)

    def _on_success(self) -> None:
        with self._condition:
            if self._window_size < self.concurrent_requests:
                self._window_size += 1
                self._condition.notify_all()


def _without_locals(error: BaseException) -> BaseException:
    """`error`, the frames it passed through cleared of their locals (its traceback's lines
    stay).

    Those locals are the request, its events and its body: a future keeps its error, and a
    BatchProcessingError every failed request's, so in an outage a process_events run over
    a day's events would keep them all in memory. (The frame of the run() that caught it,
    still running, is left as it is: it no longer holds the request.)
    """
    traceback.clear_frames(error.__traceback__)
    return error


_live_processors: weakref.WeakSet[BatchProcessor] = weakref.WeakSet()


def _start_afresh_in_child() -> None:
    for processor in list(_live_processors):
        processor._start_afresh()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_start_afresh_in_child)


class _WindowObserver(RequestObserver):
    """Adjusts the processor's window from each attempt, then tells the user's observer."""

    def __init__(self, processor: BatchProcessor, user_observer: RequestObserver | None) -> None:
        self._processor = processor
        self._user_observer = user_observer

    def on_attempt(
        self, events: int, status: int | None, seconds: float, error: Exception | None
    ) -> None:
        if isinstance(error, ThrottledError):
            self._processor._on_throttled()
        elif error is None:
            self._processor._on_success()
        if self._user_observer is not None:
            notify(self._user_observer, "on_attempt", events, status, seconds, error)

    def on_retry(self, error: Exception, attempt: int, delay: float) -> None:
        if self._user_observer is not None:
            notify(self._user_observer, "on_retry", error, attempt, delay)

    def on_rate_limit_usage(self, percent: float) -> None:
        if self._user_observer is not None:
            notify(self._user_observer, "on_rate_limit_usage", percent)
