"""The one line a user reads when a run fails: what went wrong and where in the input.

Errors of the target's own (TargetFailure, SingerInputError, CapiError …) say it already;
others get the input line and stream they happened at, and an error raised by code that
knows nothing of privacy is named without its message, which may quote a record.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

from singer_sdk.exceptions import (
    InvalidRecord,
    MapExpressionError,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
    SingerSDKError,
)

from target_meta_capi.capi.errors import CapiError
from target_meta_capi.capi.http import NO_DESCRIPTOR_LEFT
from target_meta_capi.dead_letter import DeadLetterWriteError
from target_meta_capi.delivery import (
    RAISE_OPEN_FILES,
    BadRecordError,
    InvalidEventError,
    TargetFailure,
)
from target_meta_capi.mapping.values import TOO_DEEP
from target_meta_capi.reader import NumberedSingerReader, SingerInputError
from target_meta_capi.settings.checks import faker_installed
from target_meta_capi.sink import UnsendableStreamError
from target_meta_capi.validation import UnparseableDateError

#: Failures of the input itself (a line, a record, a value), not of the run's machinery: the
#: requests already sent may still be answered and settle a state (`is_bad_input`).
_BAD_INPUT = (
    SingerInputError,
    InvalidRecord,
    MissingKeyPropertiesError,
    UnparseableDateError,
    RecordsWithoutSchemaException,
    MapExpressionError,
    BadRecordError,
    InvalidEventError,
    UnsendableStreamError,
)


def is_bad_input(error: BaseException) -> bool:
    """Whether `error` stopped the run at a line of the input that is to be fixed at the
    source; the sending, the ledger and the dead-letter file are then as sound as before it.
    Python's own errors count when a stream map's expression raised them on a record's
    values (int('q')), which the SDK does not wrap in its MapExpressionError."""
    return isinstance(error, _BAD_INPUT) or bool(_stream_map_property(error))


def describe_failure(error: BaseException, reader: NumberedSingerReader) -> str:
    """One line saying what went wrong and where."""
    if reader.current_message_type is not None:
        where = f"input line {reader.line_number}"
        if reader.current_stream:
            where += f", stream {reader.current_stream!r}"
    elif reader.input_ended:
        where = f"at the end of input, after line {reader.line_number}"
    elif reader.failed_reading_a_line(error):
        where = f"reading input line {reader.line_number + 1}"
    else:
        where = f"after input line {reader.line_number}, between messages"
    if isinstance(error, (BadRecordError, InvalidEventError)):
        return f"{error} at input line {reader.line_number}"
    if isinstance(error, (TargetFailure, SingerInputError, CapiError, DeadLetterWriteError)):
        return str(error)
    if isinstance(error, MemoryError):
        # its own message is empty, or a size
        return (
            f"Out of memory ({where}): raise the memory the target may use (`ulimit -v`, a "
            "container's limit), or lower batch_size, concurrent_requests or record_workers; "
            "rerun from the last state."
        )
    if isinstance(error, OSError) and error.errno in NO_DESCRIPTOR_LEFT:
        # wherever it happened (a module imported while mapping a record, say), the fix is the
        # same; the system's reason alone is shown: a file name given with it is no help
        return (
            f"{type(error).__name__} ({where}): [Errno {error.errno}] "
            f"{os.strerror(error.errno)}; {RAISE_OPEN_FILES}"
        )
    if isinstance(error, UnparseableDateError):
        return f"Record has a date that cannot be parsed ({where}): {error}"
    if isinstance(error, InvalidRecord):
        return f"Record does not match its SCHEMA ({where}): {error.error_message}"
    if isinstance(error, RecursionError) and reader.current_message_type is not None:
        # valid JSON nested hundreds of levels deep, which some step copies or walks
        # recursively (the SDK deep-copies each SCHEMA): the line is what to fix, whichever
        return f"The {reader.current_message_type} message {TOO_DEEP} to be processed ({where})"
    unparsed = _unparsed_stream_map_property(error)
    if unparsed:
        # the SDK's message names the expression only (and for an empty one is an IndexError
        # of its own), not which of the stream's maps holds it
        return (
            f"Stream map expression does not parse ({where}{unparsed}): "
            f"{_why_not_parsed(error)}; correct it in stream_maps"
        )
    in_property = _stream_map_property(error)
    if in_property and isinstance(error, MapExpressionError):
        # the SDK's message repeats the expression `where` names, and says nothing of why
        return (
            f"Stream map expression failed ({where}{in_property}): "
            f"{_why_expression_failed(error.__cause__)}; correct it in stream_maps"
        )
    where += in_property
    if reader.current_message_type == "RECORD" and not isinstance(error, SingerSDKError):
        # raised by code that knows nothing of privacy (Python under a stream map's
        # expression: int('jane@example.com')), whose message may quote the record; the
        # SDK's own errors name streams, columns and expressions, never values
        frames = traceback.extract_tb(error.__traceback__)
        origin = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        # what to do is known when a stream map's expression failed on this record's values
        fix = "; make the expression in stream_maps handle them" if in_property else ""
        return (
            f"{type(error).__name__}{origin} while processing a record ({where}); its "
            f"message is not shown, as it may quote the record's values{fix}"
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


def _unparsed_stream_map_property(error: BaseException) -> str:
    """Which property of a stream map holds the expression that does not parse, when the
    SDK's parsing of a stream's maps (at its SCHEMA) failed on it: read from the frame of the
    SDK's method, whose names come from the config. Not an expression failing on a record,
    which the SDK evaluates in another function."""
    parse_failed = isinstance(error, IndexError) or (
        isinstance(error, MapExpressionError)
        and isinstance(error.__cause__, (SyntaxError, IndexError))
    )
    if not parse_failed:
        return ""
    for frame, _ in traceback.walk_tb(error.__traceback__):
        if (
            frame.f_code.co_name != "_init_functions_and_schema"
            or frame.f_globals.get("__name__") != _SDK_MAPPER
        ):
            continue
        names = frame.f_locals
        if isinstance(names.get("prop_def"), str):
            return f", stream map property {names.get('prop_key')!r}: {names['prop_def']}"
        if isinstance(names.get("filter_rule"), str):
            return f", stream map property '__filter__': {names['filter_rule']}"
    return ""


def _why_not_parsed(error: BaseException) -> str:
    if isinstance(error.__cause__, SyntaxError):
        return f"it is not a Python expression ({error.__cause__.msg})"
    return "it is empty"  # the SDK's IndexError: an expression of no character or statement


def _why_expression_failed(cause: BaseException | None) -> str:
    """What simpleeval (the SDK's evaluator, known here by its errors' names: no dependency of
    ours) refused, by the names it holds or by a message naming only what the expression uses:
    never the record's values, which its message for a number too high quotes."""
    kind = type(cause).__name__
    if kind == "NameNotDefined":
        name = getattr(cause, "name", "?")
        if name == "fake" and not faker_installed():
            return "the name 'fake' is not defined: it is Faker's, which is not installed"
        return (
            f"the name {name!r} is not defined (a column this record lacks? "
            f"record.get({name!r}) is null for it)"
        )
    if kind == "FunctionNotDefined":
        return f"the function {getattr(cause, 'func_name', '?')!r} is not one stream maps offer"
    if kind == "AttributeDoesNotExist":
        return f"the attribute {getattr(cause, 'attr', '?')!r} does not exist or is not allowed"
    if kind == "OperatorNotDefined":
        return f"the operator {getattr(cause, 'attr', '?')!r} is not allowed"
    if kind == "FeatureNotAvailable":  # its message names what of the expression, only that
        return f"stream maps do not allow what it uses ({cause})"
    if kind == "NumberTooHigh":  # its message quotes the numbers, maybe the record's
        return "a number it computes is past what stream maps allow (a power or a shift)"
    if kind == "IterableTooLong":
        return "a text or list it makes is longer than stream maps allow"
    return f"simpleeval refused it ({kind})"


_SDK_MAPPER = "singer_sdk.mapper"
