"""Deliver a request whose invalid events make Graph reject it whole, by bisection.

Graph rejects a request when any of its events is invalid and does not say which one, so the
request is split in halves and each half is sent again (with the same retry policy) until every
event is either delivered or alone in a rejected request.

An error without a subcode may be the request's own (a parameter every part carries), which
bisection would only repeat once per event. So its first and last events are sent alone
first; when both get the very same error, it is raised as RequestRejectedError.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import GraphAPIError, InvalidRequestError, RequestRejectedError
from .request import EventRequest, EventResponse, RequestObserver


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
    request: EventRequest, *, observer: RequestObserver | None = None
) -> DeliveryReport:
    """Send `request`; if Graph rejects it as invalid (code 100), isolate the bad events.

    Indices in the report refer to `request.events`, in ascending order. Errors other than a
    bisectable InvalidRequestError (auth, exhausted retries, a RequestRejectedError...)
    propagate.
    """
    report = DeliveryReport()
    count = len(request.events)
    error = _send(request, 0, count, report, observer)
    if error is not None and count > 1:
        if error.subcode is None:
            _probe_both_ends(request, error, report, observer)
            _deliver_splitting(request, 1, count - 1, report, observer)
        else:
            _split(request, 0, count, report, observer)
    report.delivered.sort()
    report.rejected.sort(key=lambda rejected: rejected.index)
    return report


def _probe_both_ends(
    request: EventRequest,
    error: InvalidRequestError,
    report: DeliveryReport,
    observer: RequestObserver | None,
) -> None:
    last = len(request.events) - 1
    first_error = _send(request, 0, 1, report, observer)
    last_error = _send(request, last, last + 1, report, observer)
    if _same(first_error, error) and _same(last_error, error):
        raise RequestRejectedError.from_error(error)


def _same(error: GraphAPIError | None, other: GraphAPIError) -> bool:
    return error is not None and (error.code, error.subcode, error.message) == (
        other.code,
        other.subcode,
        other.message,
    )


def _send(
    request: EventRequest,
    start: int,
    stop: int,
    report: DeliveryReport,
    observer: RequestObserver | None,
) -> InvalidRequestError | None:
    """Send events[start:stop] once; returns the bisectable error that rejected them."""
    whole = (start, stop) == (0, len(request.events))
    part = request if whole else request.copy_with(request.events[start:stop])
    try:
        response = part.execute_blocking(observer=observer)
    except InvalidRequestError as error:
        if not error.bisectable:
            raise
        if stop - start == 1:
            report.rejected.append(RejectedEvent(index=start, error=error))
        return error
    report.delivered.extend(range(start, stop))
    report.responses.append(response)
    return None


def _deliver_splitting(
    request: EventRequest,
    start: int,
    stop: int,
    report: DeliveryReport,
    observer: RequestObserver | None,
) -> None:
    """Deliver events[start:stop], in halves if Graph rejects them together."""
    if stop > start and _send(request, start, stop, report, observer) is not None:
        _split(request, start, stop, report, observer)


def _split(
    request: EventRequest,
    start: int,
    stop: int,
    report: DeliveryReport,
    observer: RequestObserver | None,
) -> None:
    if stop - start > 1:
        middle = (start + stop) // 2
        _deliver_splitting(request, start, middle, report, observer)
        _deliver_splitting(request, middle, stop, report, observer)
