"""Converting a value to what a Conversions API parameter takes.

Values are made acceptable to Meta: ``event_time`` becomes integer Unix seconds (datetimes,
naive = UTC; dates = midnight UTC; ISO strings; epoch seconds, or milli-, micro- or nanoseconds
told by magnitude), and so do the times inside original_event_data and attribution_data;
decimals become JSON numbers, datetimes in custom_data ISO strings, ``value``,
``predicted_ltv`` and ``net_revenue`` floats, ``num_items`` an int, ``content_ids`` a list of
non-empty strings (left out when empty), ids text, app_data's flags booleans and
``extinfo``'s unknown items "" (see the ``_…_CONVERTERS`` tables).
A value that cannot be converted is a :class:`MappingError`; a constant that cannot is a
:class:`MappingConfigError` when the config is read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

# Python 3.11's fromisoformat on 3.10 too (a backport there), as the SDK reads date-times
from singer_sdk.helpers._compat import datetime_fromisoformat

from target_meta_capi.capi._words import json_kind

# 1e11 seconds is the year 5138: an epoch number larger than that is milliseconds, above 1e14
# microseconds (a warehouse's UNIX_MICROS, Spark), above 1e17 nanoseconds (pandas, Kafka
# Connect). Each reading covers 1973-5138, so no event time Meta takes has two.
_LARGEST_EPOCH_SECONDS = 1e11
# (the largest number read in the unit, the unit's count per second)
_FINER_EPOCH_UNITS = ((1e14, 1_000), (1e17, 1_000_000), (1e20, 1_000_000_000))
#: ISO 8601's basic date, 20261129: read as epoch seconds it would be a moment of 1970, which
#: Meta refuses anyway
_COMPACT_DATE_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_NUMBER_TEXT_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
#: RFC 3339's leap second, 23:59:60 (the seconds of a date-time, before a fraction or offset)
_LEAP_SECOND_RE = re.compile(r"(?<=\d[T t]\d\d:\d\d:)60(?=[.,Zz+-]|$)")
# No value: a source that gives none, or a converter's answer for a value that leaves its key
# out of the event (an empty content_ids list).
NO_VALUE = object()
TEXT_TYPE = frozenset({str})


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value: Any) -> float | int | Decimal:
    """A finite number from a number or numeric text; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("is true or false, not a number")
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER_TEXT_RE.fullmatch(text):
            raise ValueError("is not a number")
        value = Decimal(text)
    if not isinstance(value, (int, float, Decimal)):
        raise ValueError(f"is {json_kind(value)}, not a number")
    if isinstance(value, (float, Decimal)) and not math.isfinite(value):
        raise ValueError(_not_finite(value))
    return value


def _not_finite(value: float | Decimal) -> str:
    """Why a number that no float holds is refused: NaN or infinite, or past a float's range
    (a JSON 1e400 arrives as a finite Decimal, which math.isfinite reads as a float)."""
    if isinstance(value, Decimal) and value.is_finite():
        return "is a number past a float's range (±1.8e308)"
    return "is not a finite number"


def _json_number(value: Decimal | float) -> int | float:
    if value == int(value):
        return int(value)
    return float(value)


def _to_float(value: Any) -> float:
    kind = value.__class__
    if kind is float or kind is Decimal:  # the common cases, first
        if not math.isfinite(value):
            raise ValueError(_not_finite(value))
        return float(value)
    number = _number(value)
    try:
        return float(number)
    except OverflowError:  # a whole number of 309 digits or more
        raise ValueError(_not_finite(Decimal(number))) from None


def _to_int(value: Any) -> int:
    if value.__class__ is int:  # the common case, first
        return value
    number = _number(value)
    if number != int(number):
        raise ValueError("is not a whole number")
    return int(number)


def to_text(value: Any) -> str:
    if value.__class__ is str:  # the common cases, first
        return value.strip()
    if value.__class__ is int:
        return str(value)
    if isinstance(value, (Decimal, float)):
        if not math.isfinite(value):
            # "nan" (a stream map's float('nan')) would make every such row one event_id
            raise ValueError(_not_finite(value))
        if value == int(value):
            return str(int(value))
    if isinstance(value, (str, int, Decimal, float)) and not isinstance(value, bool):
        return str(value).strip()
    raise ValueError(f"is {json_kind(value)}, not a text")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y"):
        return True
    if text in ("0", "false", "f", "no", "n"):
        return False
    try:
        number = Decimal(text)
        if number in (0, 1):
            return number == 1  # 1.0 too: a tap fed by pandas writes a flag as a float
    except ArithmeticError:  # no number, or a signalling NaN, which cannot be compared
        pass
    raise ValueError("is not a boolean")


#: A value nesting lists and objects deeper than converting it (recursively) can go: a row's
#: value its field cannot take, like any other (and Meta would take no such value either).
TOO_DEEP = "nests arrays and objects too deeply"


def to_json(value: Any) -> Any:
    """Something json.dumps writes and Meta reads: no Decimal, datetime, NaN or tuple."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, (Decimal, float)):
        if not math.isfinite(value):
            raise ValueError(_not_finite(value))
        return _json_number(value) if isinstance(value, Decimal) else value
    if isinstance(value, (dt.date, dt.time)):  # datetime included
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    return str(value)


def loads_if_text(value: Any, kind: str) -> Any:
    """JSON columns sometimes arrive as text (CSV taps, json columns read as strings).

    kind: what the column should hold, in JSON's words ("object", "array"), for the error.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"is text that is not a JSON {kind}") from None
    return value


def _to_text_list(value: Any) -> list[str]:
    if value.__class__ is list and TEXT_TYPE.issuperset(map(type, value)):
        return [item.strip() for item in value]  # the common case: what to_text gives texts
    if isinstance(value, str) and value.lstrip().startswith("["):
        value = loads_if_text(value, "array")
    if isinstance(value, (list, tuple)):
        return [to_text(item) for item in value if item is not None]
    return [to_text(value)]


def _to_content_ids(value: Any) -> Any:
    """content_ids: a list of non-empty texts; NO_VALUE (the key left out) when none is."""
    if value.__class__ is list and TEXT_TYPE.issuperset(map(type, value)):
        ids = [text for item in value if (text := item.strip())]  # the common case
    else:
        ids = [text for text in _to_text_list(value) if text]
    return ids or NO_VALUE


_CONTENT_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "id": to_text,
    "quantity": _to_int,
    "item_price": _to_float,
}


def _to_contents(value: Any) -> list[dict[str, Any]]:
    value = loads_if_text(value, "array")
    if not isinstance(value, (list, tuple)) or not all(isinstance(c, Mapping) for c in value):
        raise ValueError("is not a list of objects")
    contents = []
    for index, content in enumerate(value):
        converted = {}
        for key, item in content.items():
            if item is None:
                continue
            converter = _CONTENT_CONVERTERS.get(key)
            try:
                converted[key] = (converter or to_json)(item)
            except ValueError as error:
                # Meta's keys are named; another key of the item may be the data's own
                where = f"item {index}'s {key}" if converter else f"item {index}"
                raise ValueError(f"{where} {error}") from None
        contents.append(converted)
    return contents


CUSTOM_DATA_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "value": _to_float,
    "predicted_ltv": _to_float,
    "net_revenue": _to_float,
    "num_items": _to_int,
    "content_ids": _to_content_ids,
    "contents": _to_contents,
    "currency": to_text,
    "order_id": to_text,
    "content_name": to_text,
    "content_type": to_text,
    "content_category": to_text,
    "search_string": to_text,
    "status": to_text,
    "delivery_category": to_text,
}
# converters that may answer NO_VALUE
CONVERTERS_LEAVING_OUT = frozenset({_to_content_ids})
TOP_LEVEL_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "action_source": to_text,
    "event_source_url": to_text,
    "referrer_url": to_text,
    "messaging_channel": to_text,
    "opt_out": _to_bool,
    "data_processing_options": _to_text_list,
    "data_processing_options_country": _to_int,
    "data_processing_options_state": _to_int,
    "advanced_measurement_table": to_text,
}


def datetime_from_text(text: str) -> dt.datetime:
    """An ISO 8601 date-time as singer-sdk reads one, or RFC 3339's with a lowercase "z" for
    UTC or a leap second (23:59:60, read as the next day's 00:00:00, as Unix time counts it):
    JSON Schema's date-time format allows them, fromisoformat does not. ValueError else."""
    try:
        return datetime_fromisoformat(text)
    except ValueError:
        leap_second = _LEAP_SECOND_RE.search(text)
        if leap_second is not None:
            before_it = text[: leap_second.start()] + "59" + text[leap_second.end() :]
            return datetime_from_text(before_it) + dt.timedelta(seconds=1)
        if text[-1:] != "z":
            raise
        return datetime_fromisoformat(text[:-1] + "Z")


def parse_event_time(value: Any, zone: dt.tzinfo = dt.timezone.utc) -> int:
    """Unix seconds from a datetime, date, ISO text or epoch seconds (or milli-, micro- or
    nanoseconds); a time or date without an offset is one in `zone`."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        return math.floor(value.timestamp())
    if isinstance(value, dt.date):
        return math.floor(dt.datetime(value.year, value.month, value.day, tzinfo=zone).timestamp())
    if isinstance(value, dt.time):  # a `time` column (tap-postgres): a time of day, no moment
        raise ValueError("is a time of day without a date")
    if isinstance(value, str):
        text = value.strip()
        compact = _COMPACT_DATE_RE.fullmatch(text)
        if compact:
            with contextlib.suppress(ValueError):  # 20261399: no date, so epoch seconds
                return parse_event_time(dt.date(*map(int, compact.groups())), zone)
        if not _NUMBER_TEXT_RE.fullmatch(text):
            try:
                return parse_event_time(datetime_from_text(text), zone)
            except ValueError:
                raise ValueError("is neither an ISO 8601 time nor epoch seconds") from None
    seconds = _number(value)
    if seconds > _LARGEST_EPOCH_SECONDS:
        return _seconds_from_finer_epoch(seconds)
    return math.floor(seconds)


def _seconds_from_finer_epoch(number: float | int | Decimal) -> int:
    """Unix seconds from epoch milliseconds, microseconds or nanoseconds, told by magnitude."""
    for largest, units_per_second in _FINER_EPOCH_UNITS:
        if number <= largest:
            # floor division: nanoseconds divided as floats could round up to the next second
            return math.floor(number // units_per_second)
    raise ValueError("is past the year 5138 even read as epoch nanoseconds")


# The other objects' parameters whose type Meta checks (Unix seconds, booleans, numbers, ids as
# text); any other key is sent as JSON, like an unknown custom_data key.
_ORIGINAL_EVENT_DATA_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "event_name": to_text,
    "event_time": parse_event_time,
    "event_id": to_text,
    "order_id": to_text,
}


def _to_ext_info(value: Any) -> list[Any]:
    """``extinfo`` with "" for an unknown value: Meta requires every index, an empty string
    where unknown (Meta's SDK sends null there). An array, also as JSON text (a text column);
    anything else is no extinfo Meta takes."""
    value = loads_if_text(value, "array")
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"is {json_kind(value)}, not an array")
    return [to_json("" if item is None else item) for item in value]


_APP_DATA_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "extinfo": _to_ext_info,
    "advertiser_tracking_enabled": _to_bool,
    "application_tracking_enabled": _to_bool,
    "consider_views": _to_bool,
    "include_dwell_data": _to_bool,
    "include_video_data": _to_bool,
}
_ATTRIBUTION_DATA_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "visit_time": parse_event_time,
    "touchpoint_ts": parse_event_time,
    "ad_id": to_text,
    "adset_id": to_text,
    "campaign_id": to_text,
    "attribution_share": _to_float,
    "attribution_value": _to_float,
    "attr_window": _to_int,
}
# every single-value event parameter's converter (what _finish applies)
SCALAR_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    **TOP_LEVEL_CONVERTERS,
    "event_name": to_text,
    "event_time": parse_event_time,
    "event_id": to_text,
}
# event key holding an object → converters of its keys (user_data is normalized instead)
OBJECT_CONVERTERS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "custom_data": CUSTOM_DATA_CONVERTERS,
    "original_event_data": _ORIGINAL_EVENT_DATA_CONVERTERS,
    "app_data": _APP_DATA_CONVERTERS,
    "attribution_data": _ATTRIBUTION_DATA_CONVERTERS,
}
