"""The warnings a run ends with: what its counts mean for the operator (a stream skipped,
events dead-lettered, in flight or unsent, near the age cutoff, without a match key, a rate
limit nearly reached). Each is logged once, and listed in the summary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from target_meta_capi.capi._words import counted
from target_meta_capi.capi.normalize import REASON_NO_COUNTRY_CODE
from target_meta_capi.capi.rules import MAX_AGE_SECONDS, PHYSICAL_STORE_MAX_AGE_SECONDS, RULES
from target_meta_capi.summary.counts import COVERAGE_KEYS
from target_meta_capi.summary.near_cutoff import NEAR_CUTOFF_WINDOW_SECONDS
from target_meta_capi.summary.reasons import RULE_REASON_PREFIX, graph_error_reason

_MAX_AGE_DAYS = MAX_AGE_SECONDS // 86400
_PHYSICAL_STORE_MAX_AGE_DAYS = PHYSICAL_STORE_MAX_AGE_SECONDS // 86400
#: Meta throttles at 100% of a rate limit; a run that gets this close is warned once
RATE_LIMIT_WARNING_PERCENT = 90


RATE_LIMIT_WARNING = (
    f"Meta reported {RATE_LIMIT_WARNING_PERCENT}% or more of a rate limit of this app or "
    "business used (X-Business-Use-Case-Usage / X-App-Usage; the run summary has the peak); at "
    "100% it throttles every call. Lower concurrent_requests, or spread the runs out."
)


def skipped_warning(stream: str, reason: str) -> str:
    return (
        f"Stream {stream!r} is skipped ({reason}): its records are not sent to Meta, and the "
        "state written moves past them: an entry added to `streams` later sends only the rows "
        "the tap reads after that, unless this stream's bookmark is reset first."
    )


def stream_warnings(streams: Mapping[str, Mapping[str, Any]]) -> list[str]:
    warnings = []
    for name, stream in streams.items():
        if stream["skipped_reason"] is not None:
            warnings.append(skipped_warning(name, stream["skipped_reason"]))
        elif stream["rows_deleted"]:
            warnings.append(
                f"Stream {name!r}: "
                f"{counted(stream['rows_deleted'], 'row', 'rows')} the tap reports deleted "
                "(_sdc_deleted_at) were not sent: a deletion is no conversion, and Meta keeps an "
                "event already sent for the row."
            )
        if stream["events_near_cutoff"]:
            warnings.append(
                f"Stream {name!r}: "
                f"{counted(stream['events_near_cutoff'], 'event was', 'events were')} within "
                f"{NEAR_CUTOFF_WINDOW_SECONDS // 3600} h of Meta's event_time cutoff "
                f"({_MAX_AGE_DAYS} days, {_PHYSICAL_STORE_MAX_AGE_DAYS} for physical_store) "
                f"when read; a day's delay would get {_them(stream['events_near_cutoff'])} "
                "rejected. "
                "Run the sync more often."
            )
        if stream["events_dead_lettered"]:
            warnings.append(_dead_letter_warning(name, stream))
        if stream["events_failed"]:
            # not "sent": a request refused before it left (a connection refused, a body that
            # could not be encoded) failed the run as one Meta answered did
            warnings.append(
                f"Stream {name!r}: "
                f"{counted(stream['events_failed'], 'event was', 'events were')} in requests "
                "that failed the run (its error says whether they reached Meta), and no state "
                "covers them (a rerun sends them again; Meta deduplicates by event_id any it "
                "did store)."
            )
        if stream["events_in_flight"]:
            warnings.append(
                f"Stream {name!r}: "
                f"{counted(stream['events_in_flight'], 'sent event was', 'sent events were')} "
                "not acknowledged before the run stopped (waiting for an answer, or to be "
                "retried), and no state covers them (a rerun sends them again; Meta "
                "deduplicates those it did receive, by event_id)."
            )
        if stream["events_unsent"]:
            warnings.append(
                f"Stream {name!r}: "
                + counted(
                    stream["events_unsent"],
                    "mapped event was not sent: the run stopped before it was",
                    "mapped events were not sent: the run stopped before they were",
                )
                + f", and no state covers {_them(stream['events_unsent'])} (a rerun from the last "
                f"state processes {_them(stream['events_unsent'])} again)."
            )
        national_phones = stream["dropped_values"].get("ph", {}).get(REASON_NO_COUNTRY_CODE)
        if national_phones:
            warnings.append(
                f"Stream {name!r}: "
                f"{counted(national_phones, 'phone number was', 'phone numbers were')} left out: "
                "written as dialled inside their country (with a leading 0, or as a US or "
                "Canadian number without its 1), they lack the country code without which "
                "Meta matches no one. Set phone_country_code (or "
                "this stream's own, in `streams`) to their country, or, for customers of "
                "several countries, phone_country_from_country to read each number in its "
                "event's user_data.country."
            )
        coverage = stream["match_key_coverage"]
        if coverage and not any(coverage.values()):
            warnings.append(
                f"Stream {name!r}: none of its {counted(stream['events_mapped'], 'event')} "
                f"carries a match key ({', '.join(COVERAGE_KEYS)}); Meta can hardly attribute "
                "them."
            )
    return warnings


def _dead_letter_warning(name: str, stream: Mapping[str, Any]) -> str:
    """Exit code 0 does not say that some events never reached Meta; this line does."""
    reasons = stream["dead_letters_by_reason"]
    warning = (
        f"Stream {name!r}: "
        f"{counted(stream['events_dead_lettered'], 'event was', 'events were')} dead-lettered "
        f"({listing(reasons)}): Meta has not taken "
        + ("it; it is" if stream["events_dead_lettered"] == 1 else "them; each is")
        + " in the dead-letter file with its reason."
    )
    if f"{RULE_REASON_PREFIX}event_time_too_old" in reasons:
        warning += (
            f" Meta takes events at most {_MAX_AGE_DAYS} days old ({_PHYSICAL_STORE_MAX_AGE_DAYS} "
            "for physical_store): older rows cannot be sent through the Conversions API."
        )
    if graph_error_reason(400, 100, RULES["event_time_too_old"].subcode) in reasons:
        warning += (
            " Meta refused as too old events that were not when read: their requests waited "
            "(throttling, retries) longer than the safety margin kept before Meta's cutoff, or "
            "this machine's clock is behind Meta's."
        )
    if f"{RULE_REASON_PREFIX}event_time_in_future" in reasons:
        warning += (
            " Meta refuses event times ahead of now (each dead letter says by how much): whole "
            "hours ahead are local times read as UTC (a `timestamp without time zone` column, "
            "or text without an offset while `time_zone` is unset; docs/meltano.md), minutes "
            "ahead a source clock ahead of this machine's."
        )
    return warning


# --- formatting ------------------------------------------------------------------------------


def _them(count: int) -> str:
    """The pronoun standing for `count` events."""
    return "it" if count == 1 else "them"


def listing(counts: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in counts.items()) or "none"
