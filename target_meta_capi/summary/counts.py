"""What is counted per stream: records, events, requests, match keys, dead letters and
dropped values (`StreamCounters`), and the counts a record worker keeps of the events it maps
(`MappingTally`), added to the run's in one go."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from target_meta_capi.summary.reasons import MAPPING_REASON_PREFIX, RULE_REASON_PREFIX

if TYPE_CHECKING:
    from target_meta_capi.capi.normalize import DroppedValue

# The customer-information keys Meta's Event Match Quality rewards most, in report order.
COVERAGE_KEYS = (
    "em",
    "ph",
    "fn",
    "ln",
    "external_id",
    "fbc",
    "fbp",
    "client_ip_address",
    "client_user_agent",
)
# Dead letters with these reasons never reached Meta, so they do not settle sent events.
LOCAL_REASON_PREFIXES = (RULE_REASON_PREFIX, MAPPING_REASON_PREFIX)


class StreamCounters:
    __slots__ = (
        "coverage",
        "dead_letters",
        "dropped",
        "events_acknowledged",
        "events_failed",
        "events_mapped",
        "events_sent",
        "mismatch_received",
        "mismatch_requests",
        "mismatch_sent",
        "near_cutoff",
        "records_filtered",
        "records_read",
        "requests",
        "rows_deleted",
        "skipped_reason",
    )

    def __init__(self) -> None:
        self.records_read = 0
        self.records_filtered = 0  # left out by a stream map: never reached the sink
        self.events_mapped = 0
        self.requests = 0
        self.events_sent = 0
        self.events_acknowledged = 0
        self.events_failed = 0  # in requests that failed for good: answered, not accepted
        self.near_cutoff = 0
        self.mismatch_requests = 0
        self.mismatch_sent = 0
        self.mismatch_received = 0
        self.skipped_reason: str | None = None
        self.rows_deleted = 0  # read, and not sent: the tap reports them deleted
        self.coverage = dict.fromkeys(COVERAGE_KEYS, 0)
        self.dead_letters: dict[str, int] = {}
        self.dropped: dict[tuple[str, str], int] = {}

    def counts(self) -> dict[str, Any]:
        dead_lettered = sum(self.dead_letters.values())
        settled_remotely = sum(
            count
            for reason, count in self.dead_letters.items()
            if not reason.startswith(LOCAL_REASON_PREFIXES)
        )
        # mapped events that broke a rule were never to be sent (an unmappable record never
        # became an event, so it is not among the mapped)
        broke_rules = sum(
            count
            for reason, count in self.dead_letters.items()
            if reason.startswith(RULE_REASON_PREFIX)
        )
        return {
            "records_read": self.records_read,
            "records_filtered": self.records_filtered,
            "events_mapped": self.events_mapped,
            "events_skipped": (
                self.records_read if self.skipped_reason is not None else self.rows_deleted
            ),
            "requests": self.requests,
            "events_sent": self.events_sent,
            "events_acknowledged": self.events_acknowledged,
            "events_dead_lettered": dead_lettered,
            "events_failed": self.events_failed,
            "events_in_flight": max(
                0,
                self.events_sent - self.events_acknowledged - settled_remotely - self.events_failed,
            ),
            "events_unsent": max(0, self.events_mapped - self.events_sent - broke_rules),
        }


_COUNT_KEYS = tuple(StreamCounters().counts())


def sum_counts(rows: Sequence[Mapping[str, int]]) -> dict[str, int]:
    totals = dict.fromkeys(_COUNT_KEYS, 0)
    for row in rows:
        for key in _COUNT_KEYS:
            totals[key] += row[key]
    return totals


def add_count(target: dict[Any, int], key: Any, count: int) -> None:
    target[key] = target.get(key, 0) + count


def _count_coverage(coverage: dict[str, int], user_data: Any) -> None:
    if user_data.__class__ is not dict and not isinstance(user_data, Mapping):
        return
    for key in COVERAGE_KEYS:
        if user_data.get(key):
            coverage[key] += 1


def count_mapped(
    counters: StreamCounters, event: Mapping[str, Any], dropped: Sequence[DroppedValue]
) -> None:
    counters.events_mapped += 1
    _count_coverage(counters.coverage, event.get("user_data"))
    for value in dropped:
        add_count(counters.dropped, (value.key, value.reason), 1)


class MappingTally:
    """Counts of mapped events kept apart from the run's RunStats (in a record worker process)
    and added to it in one go with `RunStats.records_converted`."""

    __slots__ = ("_coverage", "_dropped", "_user_data_shapes", "near_cutoff", "records")

    def __init__(self) -> None:
        self.records = 0
        self.near_cutoff = 0
        self._coverage = dict.fromkeys(COVERAGE_KEYS, 0)
        self._user_data_shapes: dict[tuple[str, ...], int] = {}
        self._dropped: dict[tuple[str, str], int] = {}

    def event_mapped(
        self, event: Mapping[str, Any], dropped: Sequence[DroppedValue], *, near_cutoff: bool
    ) -> None:
        self.records += 1
        if near_cutoff:
            self.near_cutoff += 1
        user_data = event.get("user_data")
        if user_data.__class__ is dict and all(user_data.values()):
            # every key is present: count the key set, and expand it once per set in add_to
            shapes = self._user_data_shapes
            shape = tuple(user_data)
            shapes[shape] = shapes.get(shape, 0) + 1
        else:
            _count_coverage(self._coverage, user_data)
        for value in dropped:
            add_count(self._dropped, (value.key, value.reason), 1)

    def add_to(self, counters: StreamCounters) -> None:
        counters.records_read += self.records
        counters.events_mapped += self.records
        counters.near_cutoff += self.near_cutoff
        coverage = counters.coverage
        for key, count in self._coverage.items():
            coverage[key] += count
        for shape, count in self._user_data_shapes.items():
            for key in shape:
                if key in coverage:
                    coverage[key] += count
        for reason, count in self._dropped.items():
            add_count(counters.dropped, reason, count)
