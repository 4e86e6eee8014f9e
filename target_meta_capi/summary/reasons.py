"""The labels saying why an event was dead-lettered or an attempt failed.

A label is PII-free by construction: a rule's or field's name, Meta's error code, an HTTP
status or an exception's class — never an error message, which may quote a value.
"""

from __future__ import annotations

from typing import Any

from target_meta_capi.capi.errors import EventsReceivedMismatch, GraphAPIError, NetworkError

#: A dead letter's reason: `rule:<rule>` for an event breaking one of Meta's rules locally,
#: `mapping:<field>` for a record whose value its field cannot take (see graph_error_reason for
#: Meta's own refusals).
RULE_REASON_PREFIX = "rule:"
MAPPING_REASON_PREFIX = "mapping:"


def graph_error_reason(http_status: Any, code: Any, subcode: Any) -> str:
    """The label of an answer of Meta's, for a failed attempt as for a dead letter:
    `meta:<code>[/<subcode>]`, or `http:<status>` for one without a Graph error (a proxy's 413)."""
    if code is None:
        return f"http:{http_status}"
    return f"meta:{code}" if subcode is None else f"meta:{code}/{subcode}"


def error_reason(error: BaseException) -> str:
    """A short, PII-free label for a failed attempt: `meta:<code>/<subcode>`, `http:<status>`..."""
    if isinstance(error, GraphAPIError):
        return graph_error_reason(error.http_status, error.code, error.subcode)
    if isinstance(error, NetworkError):
        return f"network:{type(error).__name__}"
    if isinstance(error, EventsReceivedMismatch):
        return "events_received_mismatch"
    return type(error).__name__
