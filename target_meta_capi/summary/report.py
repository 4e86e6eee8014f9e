"""The run summary as a person reads it: its log lines (totals, one per stream, requests,
pace) and `write_run_summary`, which logs them with the warnings and writes the JSON file."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from target_meta_capi.capi._words import counted
from target_meta_capi.pace import PACE_VERDICTS
from target_meta_capi.summary.run_warnings import listing
from target_meta_capi.summary.stats import RunStats
from target_meta_capi.summary.summary_file import (
    NoReaderError,
    SummaryWriteError,
    write_summary_file,
)

#: What a test_event_code does, said at the start and in the summary of such a run: a code
#: left in a live config makes every conversion a test event, and exit code 0 does not say so.
TEST_EVENTS_NOTE = (
    "test_event_code is set, so Meta shows the events in Events Manager's Test Events tool "
    "and counts none as a conversion (remove it to go live)"
)


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def _filtered(counts: Mapping[str, Any]) -> str:
    # only when a stream map left records out: the usual line stays as it was
    filtered = counts["records_filtered"]
    return f"{filtered} more filtered out by stream_maps, " if filtered else ""


def format_summary(summary: Mapping[str, Any]) -> list[str]:
    """The run summary as log lines: one for the totals, one per stream, one for requests."""
    totals = summary["totals"]
    dry_run = (
        " of a DRY RUN: nothing was sent to Meta; 'sent' and 'acknowledged' count events "
        "written out as requests"
        if summary.get("dry_run")
        else ""
    )
    test_events = (
        f" TEST EVENTS: {TEST_EVENTS_NOTE}."
        if summary.get("test_events") and not summary.get("dry_run")
        else ""
    )
    lines = [
        f"Run summary{dry_run} ({summary['duration_seconds']:.1f} s): "
        f"{counted(totals['records_read'], 'record')} read, {_filtered(totals)}"
        f"{counted(totals['events_mapped'], 'event')} mapped, "
        f"{totals['events_sent']} sent, {totals['events_acknowledged']} acknowledged, "
        f"{totals['events_dead_lettered']} dead-lettered, {totals['events_skipped']} skipped, "
        f"{totals['events_in_flight']} unsettled.{test_events}"
    ]
    for name, stream in summary["streams"].items():
        coverage = ", ".join(
            f"{key} {pct:.1f}%" for key, pct in stream["match_key_coverage"].items()
        )
        dropped = ", ".join(
            f"{field}/{reason}={count}"
            for field, reasons in stream["dropped_values"].items()
            for reason, count in reasons.items()
        )
        lines.append(
            f"Stream {name!r}: {stream['records_read']} read, {_filtered(stream)}"
            f"{stream['events_mapped']} mapped, "
            f"{stream['events_sent']} sent in {counted(stream['requests'], 'request')}, "
            f"{stream['events_acknowledged']} acknowledged, "
            f"{stream['events_dead_lettered']} dead-lettered, {stream['events_skipped']} skipped; "
            f"match-key coverage: {coverage or 'n/a'}; "
            f"dead letters: {listing(stream['dead_letters_by_reason'])}; "
            f"dropped values: {dropped or 'none'}."
        )
    requests = summary["requests"]
    latency = requests["latency_seconds"]
    lines.append(
        f"Requests: {requests['submitted']} submitted, {counted(requests['attempts'], 'attempt')} "
        f"(by status: {listing(requests['attempts_by_status'])}; "
        f"failures: {listing(requests['failures_by_reason'])}), "
        f"{counted(requests['retries'], 'retry', 'retries')} "
        f"({listing(requests['retries_by_reason'])}); "
        f"latency p50 {_seconds(latency['p50'])}, p95 {_seconds(latency['p95'])}, "
        f"max {_seconds(latency['max'])}"
        + (
            f"; Meta rate-limit usage peaked at {usage:g}%."
            if (usage := requests["peak_rate_limit_usage_percent"]) is not None
            else "."
        )
    )
    lines.append(_pace_line(summary["pace"], summary["duration_seconds"]))
    mismatches = summary["events_received_mismatches"]
    if mismatches["requests"]:
        lines.append(
            f"events_received mismatches: {counted(mismatches['requests'], 'request')}, "
            f"{counted(mismatches['events_sent'], 'event')} sent, "
            f"{mismatches['events_received']} counted by Meta."
        )
    return lines


def _pace_seconds(run_pace: Mapping[str, Any]) -> tuple[float, float, float]:
    """Waiting for input, waiting for Meta's answers, working."""
    return (
        run_pace["waiting_for_input_seconds"],
        run_pace["waiting_for_meta_seconds"],
        run_pace["working_seconds"],
    )


def shares_percent(run_pace: Mapping[str, Any]) -> tuple[int, int, int]:
    """Whole percentages of the waits for input and for Meta and of the work, adding up to 100.

    Each rounded on its own, three shares may add up to 99 or 101; the largest remainders get
    the points rounding down lost, as in a seat count.
    """
    parts = _pace_seconds(run_pace)
    whole = sum(parts)
    if whole <= 0:
        return 0, 0, 100
    exact = [100 * part / whole for part in parts]
    shares = [int(share) for share in exact]
    by_remainder = sorted(range(3), key=lambda index: exact[index] - shares[index], reverse=True)
    for index in by_remainder[: 100 - sum(shares)]:
        shares[index] += 1
    return shares[0], shares[1], shares[2]


def _pace_line(run_pace: Mapping[str, Any], duration: float) -> str:
    # a short run's parts would all read "0.0 s"
    decimals = 1 if duration >= 10 else 2
    input_part, meta_part, working_part = (
        f"{part:.{decimals}f} s ({share}%)"
        for part, share in zip(_pace_seconds(run_pace), shares_percent(run_pace), strict=True)
    )
    return (
        f"Pace: {input_part} waiting for input, {meta_part} waiting for Meta's answers, "
        f"{working_part} working: {PACE_VERDICTS[run_pace['set_by']]}."
    )


def write_run_summary(
    stats: RunStats, logger: logging.Logger, summary_path: str | os.PathLike[str] | None
) -> dict[str, Any]:
    """Flush METRIC counters, log the summary and its warnings, write it as JSON if asked."""
    stats.emit_metric_counters()
    summary = stats.snapshot()
    for line in format_summary(summary):
        logger.info(line)
    for warning in summary["warnings"]:
        stats.warn_once(warning, logger)
    if summary_path:
        _write_summary_json(summary, logger, summary_path)
    return summary


def write_summary_file_at_once(
    stats: RunStats, logger: logging.Logger, summary_path: str | os.PathLike[str]
) -> None:
    """The summary's file alone, nothing logged on the way: for a run a second signal ends at
    once, whose interrupted main thread may hold the log's lock (it was writing a line)."""
    _write_summary_json(stats.snapshot(), logger, summary_path)


def write_refused_config_summary(
    failure: str,
    logger: logging.Logger,
    summary_path: str | os.PathLike[str],
    *,
    dry_run: bool,
    test_events: bool,
) -> None:
    """The summary of a run whose settings were refused before it read anything: nothing
    done, and `failure` saying why. Written as every failed run's is, so that a scheduler
    reading the file does not take the previous run's (maybe a success) for this one's.
    `dry_run` and `test_events`: what the refused settings asked for, as far as they say."""
    stats = RunStats(logger=logger, dry_run=dry_run, test_events=test_events)
    stats.run_failed(failure)
    try:
        _write_summary_json(stats.snapshot(), logger, summary_path)
    except SummaryWriteError as error:  # the refused setting is the failure to report
        logger.warning("%s", error)


def _write_summary_json(
    summary: Mapping[str, Any], logger: logging.Logger, summary_path: str | os.PathLike[str]
) -> None:
    try:
        write_summary_file(Path(summary_path), json.dumps(summary, indent=2) + "\n")
    except NoReaderError:
        logger.warning(
            "summary_path %s is a FIFO nobody reads: the run summary is not written to it",
            summary_path,
        )
    except OSError as error:  # a disk full, a directory gone since the start-up check
        raise SummaryWriteError(
            f"Cannot write the run summary file {summary_path}: {error.strerror or error}"
        ) from None
