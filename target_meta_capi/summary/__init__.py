"""What a run did, for operators: progress lines, Singer METRIC lines and the run summary.

Only counts, key names and reasons are kept here — never a user_data value (hashed or not),
an error message or a token — so nothing this package logs or writes can leak them.

The modules, each holding one concern:

- :mod:`~target_meta_capi.summary.reasons`: the labels saying why an event was dead-lettered
  (``rule:``, ``mapping:``, :func:`graph_error_reason`) or an attempt failed (:func:`error_reason`);
- :mod:`~target_meta_capi.summary.near_cutoff`: events within a day of Meta's event_time
  cutoff (:func:`is_near_cutoff`);
- :mod:`~target_meta_capi.summary.latency`: the request latencies kept for the percentiles
  (:class:`LatencyHistogram`);
- :mod:`~target_meta_capi.summary.counts`: what is counted per stream, the match keys
  (:data:`COVERAGE_KEYS`), and a record worker's counts (:class:`MappingTally`);
- :mod:`~target_meta_capi.summary.run_warnings`: the warnings a run ends with, each logged
  once and listed in the summary;
- :mod:`~target_meta_capi.summary.stats`: the run's thread-safe statistics (:class:`RunStats`,
  also the RequestObserver of the sending window) and the METRIC lines it logs;
- :mod:`~target_meta_capi.summary.report`: the run summary as a person reads it
  (:func:`format_summary`, pace lines), :func:`write_run_summary` and
  :func:`write_refused_config_summary`;
- :mod:`~target_meta_capi.summary.summary_file`: the summary_path file written safely
  (:func:`write_summary_file`, :func:`summary_file_target`);
- :mod:`~target_meta_capi.summary.progress`: the progress lines on a timer
  (:class:`ProgressReporter`).
"""

from __future__ import annotations

from target_meta_capi.summary.counts import MappingTally
from target_meta_capi.summary.near_cutoff import is_near_cutoff
from target_meta_capi.summary.progress import DEFAULT_PROGRESS_INTERVAL, ProgressReporter
from target_meta_capi.summary.reasons import (
    MAPPING_REASON_PREFIX,
    RULE_REASON_PREFIX,
    graph_error_reason,
)
from target_meta_capi.summary.report import (
    TEST_EVENTS_NOTE,
    write_refused_config_summary,
    write_run_summary,
    write_summary_file_at_once,
)
from target_meta_capi.summary.stats import RunStats
from target_meta_capi.summary.summary_file import standard_outputs_to, summary_file_target

__all__ = [
    "DEFAULT_PROGRESS_INTERVAL",
    "MAPPING_REASON_PREFIX",
    "RULE_REASON_PREFIX",
    "TEST_EVENTS_NOTE",
    "MappingTally",
    "ProgressReporter",
    "RunStats",
    "graph_error_reason",
    "is_near_cutoff",
    "standard_outputs_to",
    "summary_file_target",
    "write_refused_config_summary",
    "write_run_summary",
    "write_summary_file_at_once",
]
