"""The ceiling of target-meta-capi's own pipeline: the target with a conversion that costs nothing.

A measuring instrument, not a target to use. It is target-meta-capi, unchanged but for its
record workers' conversion: each worker makes its stream's first event for real, then answers
every later line by decoding it and sending that first event again under the line's own
event_id (the benchmark's orders map `event_id` from `order_id`). The stream's first 200
records (`RECORDS_BEFORE_WORKERS`, 0.4% of the benchmark's) are the main process's and
converted for real, as in the target. For the workers' records, validation, dates, mapping,
hashing and Meta's rules are skipped; reading, handing lines to the workers, decoding and
encoding each line, the answers' way back, the ack ledger, batching, sending and the sandbox's
checking all stay.

Its speed is what the target could reach on this machine if its per-record conversion were free
(a compiled conversion core can come close to that, not beyond it): benchmarks/run.py prints it
as (z), and z/c as the most a/c the machine allows this design.
"""

from __future__ import annotations

from typing import Any

from target_meta_capi import record_workers
from target_meta_capi.reader import Line, input_decoder
from target_meta_capi.sink import ConvertedRecord
from target_meta_capi.target import TargetMetaCapi

#: The column the benchmark's mapping takes event_id from (benchmarks/run.py, ORDERS_MAPPING).
EVENT_ID_COLUMN = "order_id"


class FirstEventCopier(record_workers.StreamConverter):
    """Converts a stream's first clean line for real, and copies its event for every later one."""

    def __init__(self, spec: record_workers.StreamSpec) -> None:
        super().__init__(spec)
        self._first: ConvertedRecord | None = None

    def _convert(self, line: Line) -> ConvertedRecord | None:
        if self._first is None:
            converted = super()._convert(line)
            if converted is not None and not converted.violations:
                self._first = converted
            return converted
        record: dict[str, Any] = input_decoder.decode(line)["record"]
        event = dict(self._first.event)
        event["event_id"] = str(record[EVENT_ID_COLUMN])
        key = {name: record[name] for name in self._first.key}
        return ConvertedRecord(event, [], key, [])


if __name__ == "__main__":
    # the workers are forked from this process, so they find the copier under the old name
    record_workers.StreamConverter = FirstEventCopier  # type: ignore[misc]
    TargetMetaCapi.cli()
