"""The one line a user reads when a run fails: what went wrong and where in the input.

Errors of the target's own (TargetFailure, SingerInputError, CapiError …) say it already;
others get the input line and stream they happened at, and an error raised by code that
knows nothing of privacy is named without its message, which may quote a record.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from singer_sdk.exceptions import InvalidRecord, SingerSDKError

from target_meta_capi.capi.errors import CapiError
from target_meta_capi.dead_letter import DeadLetterWriteError
from target_meta_capi.delivery import BadRecordError, InvalidEventError, TargetFailure
from target_meta_capi.mapping.values import TOO_DEEP
from target_meta_capi.reader import NumberedSingerReader, SingerInputError
from target_meta_capi.validation import UnparseableDateError


def describe_failure(error: BaseException, reader: NumberedSingerReader) -> str:
    """One line saying what went wrong and where."""
    if reader.current_message_type is not None:
        where = f"input line {reader.line_number}"
        if reader.current_stream:
            where += f", stream {reader.current_stream!r}"
    elif reader.input_ended:
        where = f"at the end of input, after line {reader.line_number}"
    else:
        where = f"after input line {reader.line_number}, between messages"
    if isinstance(error, (BadRecordError, InvalidEventError)):
        return f"{error} at input line {reader.line_number}"
    if isinstance(error, (TargetFailure, SingerInputError, CapiError, DeadLetterWriteError)):
        return str(error)
    if isinstance(error, UnparseableDateError):
        return f"Record has a date that cannot be parsed ({where}): {error}"
    if isinstance(error, InvalidRecord):
        return f"Record does not match its SCHEMA ({where}): {error.error_message}"
    if isinstance(error, RecursionError) and reader.current_message_type is not None:
        # valid JSON nested hundreds of levels deep, which some step copies or walks
        # recursively (the SDK deep-copies each SCHEMA): the line is what to fix, whichever
        return f"The {reader.current_message_type} message {TOO_DEEP} to be processed ({where})"
    where += _stream_map_property(error)
    if reader.current_message_type == "RECORD" and not isinstance(error, SingerSDKError):
        # raised by code that knows nothing of privacy (Python under a stream map's
        # expression: int('jane@example.com')), whose message may quote the record; the
        # SDK's own errors name streams, columns and expressions, never values
        frames = traceback.extract_tb(error.__traceback__)
        origin = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        return (
            f"{type(error).__name__}{origin} while processing a record ({where}); its "
            "message is not shown, as it may quote the record's values"
        )
    return f"{type(error).__name__} ({where}): {error}"


def _stream_map_property(error: BaseException) -> str:
    """Which property of a stream map was being computed, when the error was raised there.

    The SDK says neither (its own error names the expression, an error of Python's under it
    nothing), and a map has many properties. Read from the frame of the SDK's method that
    evaluates one: the property's name and expression come from the config, not the record.
    """
    for frame, _ in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_name == "_eval" and frame.f_globals.get("__name__") == _SDK_MAPPER:
            name, expression = frame.f_locals.get("property_name"), frame.f_locals.get("expr")
            if isinstance(expression, str):
                # the SDK evaluates the __filter__ expression under no property's name
                return f", stream map property {name or '__filter__'!r}: {expression}"
    return ""


_SDK_MAPPER = "singer_sdk.mapper"
