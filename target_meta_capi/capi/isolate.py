"""Deliver a request whose invalid events make Graph reject it whole, by bisection.

Graph rejects a request when any of its events is invalid and does not say which one, so the
request is split in halves and each half is sent again (with the same retry policy) until every
event is either delivered or alone in a rejected request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import GraphAPIError, InvalidRequestError
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
    bisectable InvalidRequestError (auth, exhausted retries...) propagate.
    """
    report = DeliveryReport()
    _deliver_range(request, 0, len(request.events), report, observer)
    return report


def _deliver_range(
    request: EventRequest,
    start: int,
    stop: int,
    report: DeliveryReport,
    observer: RequestObserver | None,
) -> None:
    whole = (start, stop) == (0, len(request.events))
    part = request if whole else request.copy_with(request.events[start:stop])
    try:
        response = part.execute_blocking(observer=observer)
    except InvalidRequestError as error:
        if not error.bisectable:
            raise
        if stop - start == 1:
            report.rejected.append(RejectedEvent(index=start, error=error))
            return
        middle = (start + stop) // 2
        _deliver_range(request, start, middle, report, observer)
        _deliver_range(request, middle, stop, report, observer)
        return
    report.delivered.extend(range(start, stop))
    report.responses.append(response)
