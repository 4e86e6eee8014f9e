"""Deliver a request whose invalid events make Graph reject it whole, by bisection.

Graph rejects a request when any of its events is invalid and does not say which one, so the
request is split in halves and each half is sent again (with the same retry policy) until every
event is either delivered or alone in a rejected request.

An error without a subcode may be the request's own (a parameter every part carries), which
bisection would only repeat once per event. So its first, middle and last events are sent
alone first; when all three get the very same error, it is raised as RequestRejectedError.

A body too large for a proxy (HTTP 413) is split too, as halves are smaller; but first its
smallest event is sent alone. When even that is too large, the proxy's limit is below every
event, and it is raised as BodyLimitError instead of finding each event too large alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import msgspec

from .errors import (
    BodyLimitError,
    DeliveryError,
    GraphAPIError,
    InvalidRequestError,
    RequestRejectedError,
    RequestTooLargeError,
)
from .request import EventRequest, EventResponse, RequestObserver, encoded_event


@dataclass
class RejectedEvent:
    index: int  # position in the original request's events
    error: GraphAPIError


@dataclass
class DeliveryReport:
    delivered: list[int] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)
    responses: list[EventResponse] = field(default_factory=list)


def deliver_isolating_invalid(
    request: EventRequest,
    *,
    observer: RequestObserver | None = None,
    cancel: threading.Event | None = None,
) -> DeliveryReport:
    """Send `request`; if Graph rejects it as invalid (code 100) or too large (HTTP 413),
    isolate the events it refuses.

    Indices in the report refer to `request.events`, in ascending order, and its responses
    come in the order of the events they acknowledged. Errors other than a bisectable
    InvalidRequestError (auth, exhausted retries, a RequestRejectedError...) propagate, with
    `delivered_before` naming the events Meta accepted in parts sent before them.
    Once `cancel` is set, no part waits to be retried (see `EventRequest.execute_blocking`).
    """
    progress = _Progress(request, observer, cancel)
    count = len(request.events)
    try:
        error = progress.send(0, count)
        if error is not None and count > 1:
            if isinstance(error, RequestTooLargeError):
                sizes = [_encoded_size(event) for event in request.events]
                smallest = sizes.index(min(sizes))
                refusal = progress.send(smallest, smallest + 1)
                if isinstance(refusal, RequestTooLargeError):
                    raise BodyLimitError.from_error(refusal, event_bytes=sizes[smallest])
                progress.deliver_splitting(0, smallest)
                progress.deliver_splitting(smallest + 1, count)
            elif error.subcode is None:
                probed = sorted({0, count // 2, count - 1})
                answers = [progress.send(index, index + 1) for index in probed]
                if all(_same(answer, error) for answer in answers):
                    raise RequestRejectedError.from_error(error)
                for start, stop in pairwise(probed):
                    progress.deliver_splitting(start + 1, stop)
            else:
                progress.split(0, count)
    except DeliveryError as failure:
        # the parts Meta accepted before it are delivered all the same
        failure.delivered_before = tuple(progress.report().delivered)
        raise
    return progress.report()


def _encoded_size(event: Any) -> int:
    return len(event if isinstance(event, msgspec.Raw) else encoded_event(event))


def _same(error: GraphAPIError | None, other: GraphAPIError) -> bool:
    return error is not None and (error.code, error.subcode, error.message) == (
        other.code,
        other.subcode,
        other.message,
    )


class _Progress:
    """What has been delivered and rejected of one request so far."""

    def __init__(
        self,
        request: EventRequest,
        observer: RequestObserver | None,
        cancel: threading.Event | None,
    ) -> None:
        self._request = request
        self._observer = observer
        self._cancel = cancel
        self._delivered: list[int] = []
        self._rejected: list[RejectedEvent] = []
        self._responses: list[tuple[int, EventResponse]] = []  # by the first event's index

    def report(self) -> DeliveryReport:
        return DeliveryReport(
            delivered=sorted(self._delivered),
            rejected=sorted(self._rejected, key=lambda rejected: rejected.index),
            responses=[response for _, response in sorted(self._responses, key=_first)],
        )

    def send(self, start: int, stop: int) -> InvalidRequestError | None:
        """Send events[start:stop] once; returns the bisectable error that rejected them."""
        request = self._request
        whole = (start, stop) == (0, len(request.events))
        part = request if whole else request.copy_with(request.events[start:stop])
        try:
            response = part.execute_blocking(observer=self._observer, cancel=self._cancel)
        except InvalidRequestError as error:
            if not error.bisectable:
                raise
            if stop - start == 1:
                self._rejected.append(RejectedEvent(index=start, error=error))
            return error
        self._delivered.extend(range(start, stop))
        self._responses.append((start, response))
        return None

    def deliver_splitting(self, start: int, stop: int) -> None:
        """Deliver events[start:stop], in halves if Graph rejects them together."""
        if stop > start and self.send(start, stop) is not None:
            self.split(start, stop)

    def split(self, start: int, stop: int) -> None:
        if stop - start > 1:
            middle = (start + stop) // 2
            self.deliver_splitting(start, middle)
            self.deliver_splitting(middle, stop)


def _first(sent: tuple[int, EventResponse]) -> int:
    return sent[0]
