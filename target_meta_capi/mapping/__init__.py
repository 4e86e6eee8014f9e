"""Record → Conversions API event, driven by configuration only.

The modules, each holding one concern:

- :mod:`~target_meta_capi.mapping.parameters`: the event parameters a record can fill, and the
  dotted paths naming them;
- :mod:`~target_meta_capi.mapping.aliases`: the column names that map to a field by themselves
  (:data:`ALIASES`);
- :mod:`~target_meta_capi.mapping.streams_setting`: the ``streams`` setting (and the other
  mapping settings) read and checked, and matched to the streams of a run;
- :mod:`~target_meta_capi.mapping.values`: converting a value to what its parameter takes
  (:func:`parse_event_time` …);
- :mod:`~target_meta_capi.mapping.event_id`: the event_id derived from a row;
- :mod:`~target_meta_capi.mapping.result`: what mapping a record gives (:class:`MappedEvent`)
  or the error it raises (:class:`MappingError`);
- :mod:`~target_meta_capi.mapping.compiled`: the sources a field reads, and the straight-line
  code generated once per plan to fill an event from them;
- :mod:`~target_meta_capi.mapping.mapper`: the mapper of a stream (:class:`EventMapper`,
  :func:`build_event_mapper`): where each field takes its value from, the plan made for each
  set of columns, and the memo of customers' hashed user_data.
"""

from __future__ import annotations

from target_meta_capi.mapping.aliases import ALIASES
from target_meta_capi.mapping.event_id import EVENT_ID_HEX_DIGITS, deterministic_event_id
from target_meta_capi.mapping.mapper import (
    EventMapper,
    build_event_mapper,
    record_key_text,
    reports_deleted,
)
from target_meta_capi.mapping.result import MappedEvent, MappingError
from target_meta_capi.mapping.streams_setting import (
    MappingConfigError,
    StreamMapping,
    closest_stream_entry,
    event_name_warnings,
    mapping_config_errors,
    overlapping_patterns_warning,
    time_zone_setting,
    unmatched_stream_entries,
)
from target_meta_capi.mapping.values import parse_event_time

__all__ = [
    "ALIASES",
    "EVENT_ID_HEX_DIGITS",
    "EventMapper",
    "MappedEvent",
    "MappingConfigError",
    "MappingError",
    "StreamMapping",
    "build_event_mapper",
    "closest_stream_entry",
    "deterministic_event_id",
    "event_name_warnings",
    "mapping_config_errors",
    "overlapping_patterns_warning",
    "parse_event_time",
    "record_key_text",
    "reports_deleted",
    "time_zone_setting",
    "unmatched_stream_entries",
]
