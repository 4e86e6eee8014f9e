"""Record → Conversions API event, driven by configuration only.

How a record becomes an event (explicit beats implicit). Every CAPI field — an event
parameter, or a key of one of its objects — takes the first non-empty value of, in order:

1. the column mapped to it in ``streams.<stream>.fields``;
2. the stream's literal (``event_name``, ``action_source``, ``constants``);
3. a column named like one of its :data:`ALIASES` (case-insensitive, earlier alias first; of
   columns differing only in case, the first in the record first). A column named in ``fields``
   is used only as mapped there, not through its alias;
4. the target's ``default_event_name`` or ``default_action_source``;
5. the key of that name in a column holding the whole object — ``user_data``, ``custom_data``,
   ``app_data``, ``original_event_data``, ``attribution_data`` (by alias, or mapped in
   ``fields``, which wins) — copied in first and overwritten by steps 1-4;
6. with ``unmapped_columns_to_custom_data: true``, for a ``custom_data`` key only: the column
   of that name, if the SCHEMA lists it (when there is one), no step above used it, and it is
   not Singer's ``_sdc_*`` metadata.

So a record already shaped like a CAPI event maps without ``fields``, its objects giving what
nothing else gives; its user_data is normalized and hashed, its other objects' values converted.

``streams`` maps a stream name (or a glob pattern such as ``public-*``; the exact name wins) to::

    {"event_name": "Purchase", "action_source": "website",
     "fields": {"event_time": "created_at", "user_data.em": "email",
                "custom_data": {"value": "total"}},
     "constants": {"custom_data.currency": "EUR"},
     "unmapped_columns_to_custom_data": false}

``fields`` and ``constants`` accept dotted paths and nested objects alike (Meltano rewrites the
former into the latter). A ``fields`` column may name a nested value with dots
(``customer.email``) when the record has no column of that exact name; that column may hold the
object or its JSON text (anything else: the fields reading in it are counted as dropped). A
hashed customer parameter (``em``, ``ph``, ``fn`` … ``external_id``) may list several columns
(``"user_data.ph": ["phone", "mobile_phone"]``): it gets the list of their non-empty values
(each item of a column holding a list), which Meta matches one by one.

Values are made acceptable to Meta: ``event_time`` becomes integer Unix seconds (datetimes,
naive = UTC; dates = midnight UTC; ISO strings; epoch seconds; epoch milliseconds when above
1e11), and so do the times inside original_event_data and attribution_data; decimals become
JSON numbers, datetimes in custom_data ISO strings, ``value`` and ``predicted_ltv`` floats,
``num_items`` an int, ``content_ids`` a list of non-empty strings (left out when empty), ids
text, app_data's flags booleans (see the ``_…_CONVERTERS`` tables). A value that cannot be
converted is a :class:`MappingError`; a constant that cannot is a :class:`MappingConfigError`
when the config is read.

``event_id`` is the mapped or aliased column's value as text; otherwise it is derived from the
row so that the same row always gets the same id (and Meta deduplicates a resend): the first 32
hex digits of SHA-256 over the canonical JSON (sorted keys, no spaces, integral numbers as
integers, other numbers as the float equal to them — or, for a decimal with more digits than a
float holds, as its exact digits in a text) of ``[stream_name, [key property values…],
event_name]``, or, for a stream without key properties (or a record missing one), of
``[stream_name, {record without _sdc_* columns}, event_name]``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
import hashlib
import json
import math
import operator
import re
import weakref
import zoneinfo
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from typing import Any

# Python 3.11's fromisoformat on 3.10 too (a backport there), as the SDK reads date-times
from singer_sdk.helpers._compat import datetime_fromisoformat

from target_meta_capi.capi.normalize import (
    HASHED_KEYS,
    MATCH_KEYS,
    REASON_INVALID,
    UNHASHED_KEYS,
    DroppedValue,
    normalize_hashed_values,
    normalize_user_data,
)
from target_meta_capi.capi.privacy import MASK
from target_meta_capi.capi.rules import ACTION_SOURCES, STANDARD_EVENT_NAMES

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
    "parse_event_time",
    "unmatched_stream_entries",
]

# CAPI field → column names that map to it by themselves (matched case-insensitively; when a
# record has several, the earlier name is used first). Documented in the README.
ALIASES: dict[str, tuple[str, ...]] = {
    # whole objects: a record already shaped like a CAPI event
    "user_data": ("user_data",),
    "custom_data": ("custom_data",),
    "app_data": ("app_data",),
    "original_event_data": ("original_event_data",),
    "attribution_data": ("attribution_data",),
    # event parameters
    "event_name": ("event_name",),
    "event_time": ("event_time",),
    "event_id": ("event_id",),
    "event_source_url": ("event_source_url",),
    "action_source": ("action_source",),
    "opt_out": ("opt_out",),
    "referrer_url": ("referrer_url",),
    "data_processing_options": ("data_processing_options",),
    "data_processing_options_country": ("data_processing_options_country",),
    "data_processing_options_state": ("data_processing_options_state",),
    # customer information (normalized and hashed where Meta requires it)
    "user_data.em": ("em", "email", "email_address"),
    "user_data.ph": ("ph", "phone", "phone_number"),
    "user_data.fn": ("fn", "first_name", "firstname"),
    "user_data.ln": ("ln", "last_name", "lastname", "surname"),
    "user_data.ge": ("ge", "gender"),
    "user_data.db": ("db", "date_of_birth", "birthdate", "birth_date", "dob", "birthday"),
    "user_data.ct": ("ct", "city"),
    "user_data.st": ("st", "state"),
    "user_data.zp": ("zp", "zip", "zip_code", "zipcode", "postal_code", "postcode"),
    "user_data.country": ("country", "country_code"),
    "user_data.external_id": ("external_id",),
    "user_data.client_ip_address": ("client_ip_address", "ip_address", "client_ip", "ip"),
    "user_data.client_user_agent": ("client_user_agent", "user_agent"),
    "user_data.fbc": ("fbc",),
    "user_data.fbp": ("fbp",),
    # custom data
    "custom_data.value": ("value",),
    "custom_data.currency": ("currency",),
    "custom_data.order_id": ("order_id",),
    "custom_data.content_ids": ("content_ids",),
    "custom_data.contents": ("contents",),
    "custom_data.num_items": ("num_items",),
    "custom_data.content_name": ("content_name",),
    "custom_data.content_type": ("content_type",),
    "custom_data.content_category": ("content_category",),
    "custom_data.predicted_ltv": ("predicted_ltv",),
    "custom_data.search_string": ("search_string",),
    "custom_data.status": ("status",),
    "custom_data.delivery_category": ("delivery_category",),
}

EVENT_ID_HEX_DIGITS = 32
_MILLISECONDS_THRESHOLD = 1e11  # 1e11 seconds is the year 5138: anything larger is milliseconds
_METADATA_PREFIX = "_sdc_"
# Set by log-based taps (tap-postgres LOG_BASED, MySQL binlog) on a RECORD of a deleted row.
DELETED_AT = "_sdc_deleted_at"
_MAX_CACHED_PLANS = 256
# columns met whose bearing on plans is remembered (a SCHEMA's, unless records stray outside it)
_MAX_KNOWN_COLUMNS = 4096
# Customers repeat: their hashed user_data, keyed on the raw values of the columns it comes from
# (~1.8 KB each with its key: at most ~15 MB per process, over all its streams' mappers).
_MAX_CACHED_IDENTITIES = 1 << 13
# The memo is used while at least this share of customers come back within its size; whether
# they do is judged over this many customers (see EventMapper._keep).
_MIN_RETURNING_SHARE = 0.05
_CUSTOMERS_JUDGED = 1 << 10

# Top-level event parameters holding objects (user_data, custom_data …) or single values.
_OBJECT_KEYS = frozenset(
    {"user_data", "custom_data", "app_data", "original_event_data", "attribution_data"}
)
_SCALAR_KEYS = frozenset(
    {
        "event_name",
        "event_time",
        "event_id",
        "event_source_url",
        "action_source",
        "opt_out",
        "referrer_url",
        "messaging_channel",
        "customer_segmentation",
        "data_processing_options",
        "data_processing_options_country",
        "data_processing_options_state",
    }
)
_STREAM_SETTINGS = frozenset(
    {
        "event_name",
        "action_source",
        "fields",
        "constants",
        "unmapped_columns_to_custom_data",
        "pixel_id",
    }
)

Path = tuple[str, ...]


class MappingConfigError(ValueError):
    """The ``streams`` setting for a stream cannot be used.

    ``problems``: each problem found, when there are several (all in the message, too).
    """

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems) or (message,)


class MappingError(ValueError):
    """A record cannot become an event. Names stream, record and field — never a PII value."""

    def __init__(self, stream: str, field: str, message: str, record_key: str | None = None):
        self.stream = stream
        self.field = field
        self.message = message
        self.record_key = record_key
        record = f"record {record_key}" if record_key else "record"
        super().__init__(f"stream {stream!r}, {record}, field {field!r}: {message}")


@dataclass(slots=True)  # not frozen: a frozen dataclass is slow to build, once per record
class MappedEvent:
    event: dict[str, Any]
    dropped: list[DroppedValue]
    event_id: str


# --- the `streams` setting ----------------------------------------------------------------------


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _parse_path(stream: str, dotted: str) -> Path:
    path = tuple(dotted.split("."))
    head = path[0]
    problem = None
    if any(not part for part in path):
        problem = "has an empty part"
    elif head in _SCALAR_KEYS:
        if len(path) > 1:
            problem = f"{head} is a single value, not an object"
    elif head not in _OBJECT_KEYS:
        problem = "is not a Conversions API event parameter"
    elif head == "user_data" and path[1:] and (len(path) > 2 or path[1] not in MATCH_KEYS):
        problem = "is not a customer information parameter"
    if problem:
        meant = _path_meant(path)
        hint = f" (did you mean {'.'.join(meant)!r}?)" if meant else ""
        raise MappingConfigError(f"streams.{stream}: field {dotted!r} {problem}{hint}")
    return path


def _path_meant(path: Path) -> Path | None:
    """The field probably meant by one that is none: a customer parameter by its column name
    (`user_data.email` is `user_data.em`), or a misspelt parameter (`event_tme`)."""
    head, rest = path[0], path[1:]
    if head == "user_data" and len(rest) == 1:
        key = rest[0].lower()
        for field_path, aliases in ALIASES.items():
            if field_path.startswith("user_data.") and key in aliases:
                return tuple(field_path.split("."))
        close = difflib.get_close_matches(key, sorted(MATCH_KEYS), n=1, cutoff=0.75)
        return ("user_data", close[0]) if close else None
    if head not in _OBJECT_KEYS | _SCALAR_KEYS:
        close = difflib.get_close_matches(head, sorted(_OBJECT_KEYS | _SCALAR_KEYS), n=1)
        return (close[0], *rest) if close else None
    return None


def _parse_paths(stream: str, setting: str, raw: Any) -> dict[Path, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise MappingConfigError(f"streams.{stream}.{setting} must be an object")
    parsed: dict[Path, Any] = {}
    for dotted, value in _flatten(raw):
        path = _parse_path(stream, dotted)
        if path in parsed:
            raise MappingConfigError(f"streams.{stream}.{setting}: {dotted!r} is given twice")
        parsed[path] = value
    return parsed


@dataclass(frozen=True)
class StreamMapping:
    """The ``streams`` entry of one stream, checked and with paths split."""

    event_name: str | None = None
    action_source: str | None = None
    # a column, or for a hashed customer parameter possibly several (every value is sent)
    fields: dict[Path, str | tuple[str, ...]] = field(default_factory=dict)
    constants: dict[Path, Any] = field(default_factory=dict)
    unmapped_columns_to_custom_data: bool = False
    # the pixel (dataset) this stream's events go to, instead of the target's pixel_id
    pixel_id: str | None = None

    @classmethod
    def from_config(cls, stream: str, raw: Mapping[str, Any]) -> StreamMapping:
        if not isinstance(raw, Mapping):
            raise MappingConfigError(f"streams.{stream} must be an object")
        unknown = sorted(set(raw) - _STREAM_SETTINGS)
        if unknown:
            raise MappingConfigError(
                f"streams.{stream}: unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_STREAM_SETTINGS))}"
            )
        for literal in ("event_name", "action_source"):
            _check_name(f"streams.{stream}.{literal}", raw.get(literal))
        _check_action_source(f"streams.{stream}.action_source", raw.get("action_source"))
        unmapped_to_custom_data = raw.get("unmapped_columns_to_custom_data")
        if unmapped_to_custom_data is None:
            unmapped_to_custom_data = False
        elif not isinstance(unmapped_to_custom_data, bool):
            # text "false" is true to bool(): the stream's columns would go to Meta unhashed
            raise MappingConfigError(
                f"streams.{stream}.unmapped_columns_to_custom_data must be true or false "
                f"(a JSON boolean), got {unmapped_to_custom_data!r}"
            )
        pixel_id = raw.get("pixel_id")
        if pixel_id is not None:
            pixel_id = str(pixel_id)
            if not (pixel_id.isascii() and pixel_id.isdigit()):
                raise MappingConfigError(
                    f"streams.{stream}.pixel_id must be a pixel (dataset) ID: digits only"
                )
        fields = {
            path: _field_columns(stream, path, column)
            for path, column in _parse_paths(stream, "fields", raw.get("fields")).items()
            if column is not None
        }
        constants = _parse_paths(stream, "constants", raw.get("constants"))
        _check_action_source(
            f"streams.{stream}.constants.action_source", constants.get(("action_source",))
        )
        problems = [
            f"streams.{stream}.constants.{'.'.join(path)}: {problem}"
            for path, value in constants.items()
            if path != ("action_source",) and (problem := _constant_problem(path, value))
        ]
        if problems:
            raise MappingConfigError("; ".join(problems), problems)
        return cls(
            event_name=raw.get("event_name"),
            action_source=raw.get("action_source"),
            fields=fields,
            constants=constants,
            unmapped_columns_to_custom_data=unmapped_to_custom_data,
            pixel_id=pixel_id,
        )


def _check_name(setting: str, value: Any) -> None:
    """An event name or action source given in the settings is sent as it is: blank, it
    leaves every event without one; with a line break around it, "Lead\n" is no Lead."""
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise MappingConfigError(f"{setting} must be a non-empty text")
    if value != value.strip():
        raise MappingConfigError(
            f"{setting} has spaces or a line break before or after it, got {value!r}"
        )


def _check_action_source(setting: str, value: Any) -> None:
    """A configured action_source Meta would refuse fails the run at start, not every event."""
    if value is not None and (not isinstance(value, str) or value not in ACTION_SOURCES):
        raise MappingConfigError(
            f"{setting} must be one of {', '.join(sorted(ACTION_SOURCES))}; got {value!r}"
        )


def _constant_problem(path: Path, value: Any) -> str | None:
    """Why a constant could never be sent, converted as its field's values are; None if it can.

    The value itself is not shown: a user_data constant may be customer information.
    """
    if _is_empty(value):
        return None  # never used: the field's next source is
    head = path[0]
    shown = "the text" if isinstance(value, str) else f"a {type(value).__name__}"
    if len(path) == 1 and head in _OBJECT_KEYS:  # objects given whole became paths of their keys
        return f"{shown} is not an object (set its keys instead: {head}.<key>)"
    if head == "user_data":
        dropped = normalize_user_data({path[1]: value}).dropped
        if dropped:
            return f"{shown} is not a usable {path[1]} ({dropped[0].reason})"
        return None
    if len(path) == 1:
        converter = _SCALAR_CONVERTERS.get(head, _to_json)
    elif len(path) == 2:
        converter = _OBJECT_CONVERTERS[head].get(path[1], _to_json)
    else:
        converter = _to_json
    try:
        converter(value)
    except (ValueError, ArithmeticError) as error:
        return f"{shown} {error}"
    return None


def _field_columns(stream: str, path: Path, columns: Any) -> str | tuple[str, ...]:
    """A `fields` entry: one column, or several for a parameter Meta takes a list of."""
    where = f"streams.{stream}.fields.{'.'.join(path)}"
    if isinstance(columns, str) and columns:
        return columns
    if not isinstance(columns, list):
        raise MappingConfigError(f"{where} must name a column")
    if path[0] != "user_data" or len(path) != 2 or path[1] not in HASHED_KEYS:
        raise MappingConfigError(
            f"{where} must name one column: only the hashed customer parameters "
            f"({', '.join(sorted(HASHED_KEYS))}) take a list of columns"
        )
    if not columns or not all(isinstance(column, str) and column for column in columns):
        raise MappingConfigError(f"{where} must list one or more column names")
    return tuple(dict.fromkeys(columns))


def _each_column(columns: str | tuple[str, ...]) -> tuple[str, ...]:
    return (columns,) if isinstance(columns, str) else columns


def _find_stream_config(streams: Mapping[str, Any], stream_name: str) -> Any:
    if stream_name in streams:
        return streams[stream_name]
    for pattern, stream_config in streams.items():
        if _is_pattern(pattern) and fnmatch.fnmatchcase(stream_name, pattern):
            return stream_config
    return None


def _is_pattern(entry: str) -> bool:
    return any(char in entry for char in "*?[")


def _streams_setting(config: Mapping[str, Any]) -> Mapping[str, Any]:
    streams = config.get("streams") or {}
    if isinstance(streams, str):  # given as JSON text, e.g. through an environment variable
        try:
            streams = json.loads(streams)
        except ValueError:
            raise MappingConfigError("streams is text that is not a JSON object") from None
    if not isinstance(streams, Mapping):
        raise MappingConfigError("streams must be an object keyed by stream name")
    return streams


def time_zone_setting(config: Mapping[str, Any]) -> dt.tzinfo | None:
    """The ``time_zone`` setting's zone, in which event times without an offset are read;
    None for UTC (unset), the default. MappingConfigError for a name that is no zone here."""
    name = config.get("time_zone")
    if name is None or name == "UTC":
        return None
    if not isinstance(name, str) or not name.strip():
        raise MappingConfigError("time_zone must be an IANA time zone name such as Europe/Berlin")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise MappingConfigError(
            f"time_zone {name!r} is not a time zone known here: give an IANA name such as "
            "Europe/Berlin or America/New_York (a system without a time zone database needs "
            "the tzdata package)"
        ) from None


def mapping_config_errors(config: Mapping[str, Any]) -> list[str]:
    """Every problem of the ``streams`` and default mapping settings, found at start-up: a
    wrong entry must not wait for its stream's SCHEMA, after other streams' data went out."""
    errors: list[str] = []
    try:
        streams = _streams_setting(config)
    except MappingConfigError as error:
        errors.append(str(error))
        streams = {}  # no entry to check, but the other settings still are
    for stream, raw in streams.items():
        try:
            StreamMapping.from_config(stream, raw)
        except MappingConfigError as error:
            errors.extend(error.problems)
    try:
        _check_name("default_event_name", config.get("default_event_name"))
    except MappingConfigError as error:
        errors.append(str(error))
    try:
        _check_action_source("default_action_source", config.get("default_action_source"))
    except MappingConfigError as error:
        errors.append(str(error))
    try:
        time_zone_setting(config)
    except MappingConfigError as error:
        errors.append(str(error))
    return errors


def event_name_warnings(config: Mapping[str, Any]) -> list[str]:
    """Configured event names that are no standard event of Meta's but look like one
    (`purchase`, `Purchse`, `add_to_cart`): Meta takes each as a custom event, and the rules
    of the standard one (a Purchase's value and currency) are not checked."""
    try:
        streams = _streams_setting(config)
    except MappingConfigError:
        return []  # a settings error, said by mapping_config_errors
    names: dict[str, Any] = {}
    for stream, raw in streams.items():
        if isinstance(raw, Mapping):
            names[f"streams.{stream}.event_name"] = raw.get("event_name")
            constants = raw.get("constants")
            if isinstance(constants, Mapping):
                names[f"streams.{stream}.constants.event_name"] = constants.get("event_name")
    names["default_event_name"] = config.get("default_event_name")
    warnings = []
    for setting, name in names.items():
        meant = _standard_event_meant(name)
        if meant is not None:
            warnings.append(
                f"{setting} {name!r} is not one of Meta's standard events; did you mean "
                f"{meant!r}? Event names are case-sensitive: Meta counts {name!r} as a custom "
                f"event, not as a {meant}."
            )
    return warnings


def _standard_event_meant(name: Any) -> str | None:
    """The standard event name a configured one differs from only in case, separators or a
    typo; None for a standard name or one unlike any (a custom event meant as such)."""
    if not isinstance(name, str) or name in STANDARD_EVENT_NAMES:
        return None
    by_folded = {_folded(standard): standard for standard in STANDARD_EVENT_NAMES}
    # high enough that a custom `Unsubscribe` or `Contacted` is not taken for a typo
    close = difflib.get_close_matches(_folded(name), by_folded, n=1, cutoff=0.91)
    return by_folded[close[0]] if close else None


def _folded(name: str) -> str:
    return re.sub(r"[\s_-]", "", name).casefold()


def unmatched_stream_entries(config: Mapping[str, Any], streams_seen: Iterable[str]) -> list[str]:
    """The ``streams`` entries (names or patterns) that no stream of the run matched.

    An entry matches a stream of exactly its name first, as in :func:`_find_stream_config`:
    ``sales[eu]`` is the stream ``sales[eu]`` even though it also reads as a pattern.
    """
    seen = set(streams_seen)
    return [
        entry
        for entry in _streams_setting(config)
        if entry not in seen
        and not (_is_pattern(entry) and any(fnmatch.fnmatchcase(s, entry) for s in seen))
    ]


def closest_stream_entry(config: Mapping[str, Any], stream_name: str) -> str | None:
    """The ``streams`` entry most like an unmapped stream's name: probably meant for it."""
    names = [entry for entry in _streams_setting(config) if not _is_pattern(entry)]
    # the table's name alone, where the tap names streams <schema>-<table> (tap-postgres)
    tables = [name for name in names if stream_name.endswith((f"-{name}", f".{name}"))]
    close = tables or difflib.get_close_matches(stream_name, names, n=1, cutoff=0.8)
    return close[0] if close else None


# --- value conversion ---------------------------------------------------------------------------

_NUMBER_TEXT_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
# No value: a source that gives none, or a converter's answer for a value that leaves its key
# out of the event (an empty content_ids list).
_NO_VALUE = object()


def _number(value: Any) -> float | int | Decimal:
    """A finite number from a number or numeric text; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("is a boolean, not a number")
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER_TEXT_RE.fullmatch(text):
            raise ValueError("is not a number")
        value = Decimal(text)
    if not isinstance(value, (int, float, Decimal)):
        raise ValueError(f"is a {type(value).__name__}, not a number")
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
    return float(_number(value))


def _to_int(value: Any) -> int:
    if value.__class__ is int:  # the common case, first
        return value
    number = _number(value)
    if number != int(number):
        raise ValueError("is not a whole number")
    return int(number)


def _to_text(value: Any) -> str:
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
    raise ValueError(f"is a {type(value).__name__}, not a text")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y"):
        return True
    if text in ("0", "false", "f", "no", "n"):
        return False
    raise ValueError("is not a boolean")


#: A value nesting lists and objects deeper than converting it (recursively) can go: a row's
#: value its field cannot take, like any other (and Meta would take no such value either).
_TOO_DEEP = "nests arrays and objects too deeply"


def _to_json(value: Any) -> Any:
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
        return {str(key): _to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    return str(value)


def _loads_if_text(value: Any, kind: str) -> Any:
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
    if value.__class__ is list and _TEXT_TYPE.issuperset(map(type, value)):
        return [item.strip() for item in value]  # the common case: what _to_text gives texts
    if isinstance(value, str) and value.lstrip().startswith("["):
        value = _loads_if_text(value, "array")
    if isinstance(value, (list, tuple)):
        return [_to_text(item) for item in value if item is not None]
    return [_to_text(value)]


def _to_content_ids(value: Any) -> Any:
    """content_ids: a list of non-empty texts; _NO_VALUE (the key left out) when none is."""
    if value.__class__ is list and _TEXT_TYPE.issuperset(map(type, value)):
        ids = [text for item in value if (text := item.strip())]  # the common case
    else:
        ids = [text for text in _to_text_list(value) if text]
    return ids or _NO_VALUE


_CONTENT_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "id": _to_text,
    "quantity": _to_int,
    "item_price": _to_float,
}


def _to_contents(value: Any) -> list[dict[str, Any]]:
    value = _loads_if_text(value, "array")
    if not isinstance(value, (list, tuple)) or not all(isinstance(c, Mapping) for c in value):
        raise ValueError("is not a list of objects")
    return [
        {
            key: _CONTENT_CONVERTERS.get(key, _to_json)(item)
            for key, item in content.items()
            if item is not None
        }
        for content in value
    ]


_CUSTOM_DATA_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "value": _to_float,
    "predicted_ltv": _to_float,
    "num_items": _to_int,
    "content_ids": _to_content_ids,
    "contents": _to_contents,
    "currency": _to_text,
    "order_id": _to_text,
    "content_name": _to_text,
    "content_type": _to_text,
    "content_category": _to_text,
    "search_string": _to_text,
    "status": _to_text,
    "delivery_category": _to_text,
}
# converters that may answer _NO_VALUE
_CONVERTERS_LEAVING_OUT = frozenset({_to_content_ids})
_TOP_LEVEL_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "action_source": _to_text,
    "event_source_url": _to_text,
    "referrer_url": _to_text,
    "messaging_channel": _to_text,
    "opt_out": _to_bool,
    "data_processing_options": _to_text_list,
    "data_processing_options_country": _to_int,
    "data_processing_options_state": _to_int,
}


def parse_event_time(value: Any, zone: dt.tzinfo = dt.timezone.utc) -> int:
    """Unix seconds from a datetime, date, ISO text or epoch seconds/milliseconds; a time or
    date without an offset is one in `zone`."""
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
        if not _NUMBER_TEXT_RE.fullmatch(text):
            if text[-1:] == "z":  # RFC 3339 allows it; fromisoformat takes only "Z"
                text = text[:-1] + "Z"
            try:
                return parse_event_time(datetime_fromisoformat(text), zone)
            except ValueError:
                raise ValueError("is neither an ISO 8601 time nor epoch seconds") from None
    seconds = _number(value)
    if seconds > _MILLISECONDS_THRESHOLD:
        seconds = seconds / 1000
    return math.floor(seconds)


# The other objects' parameters whose type Meta checks (Unix seconds, booleans, numbers, ids as
# text); any other key is sent as JSON, like an unknown custom_data key.
_ORIGINAL_EVENT_DATA_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "event_name": _to_text,
    "event_time": parse_event_time,
    "event_id": _to_text,
    "order_id": _to_text,
}
_APP_DATA_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "advertiser_tracking_enabled": _to_bool,
    "application_tracking_enabled": _to_bool,
    "consider_views": _to_bool,
    "include_dwell_data": _to_bool,
    "include_video_data": _to_bool,
}
_ATTRIBUTION_DATA_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "visit_time": parse_event_time,
    "touchpoint_ts": parse_event_time,
    "ad_id": _to_text,
    "adset_id": _to_text,
    "campaign_id": _to_text,
    "attribution_share": _to_float,
    "attribution_value": _to_float,
    "attr_window": _to_int,
}
# every single-value event parameter's converter (what _finish applies)
_SCALAR_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    **_TOP_LEVEL_CONVERTERS,
    "event_name": _to_text,
    "event_time": parse_event_time,
    "event_id": _to_text,
}
# event key holding an object → converters of its keys (user_data is normalized instead)
_OBJECT_CONVERTERS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "custom_data": _CUSTOM_DATA_CONVERTERS,
    "original_event_data": _ORIGINAL_EVENT_DATA_CONVERTERS,
    "app_data": _APP_DATA_CONVERTERS,
    "attribution_data": _ATTRIBUTION_DATA_CONVERTERS,
}


# --- event_id -----------------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """The same data gives the same JSON whether numbers arrive as Decimal, float or int."""
    if isinstance(value, (Decimal, float)) and not isinstance(value, bool):
        if math.isfinite(value) and value == int(value):
            return int(value)
        if isinstance(value, Decimal) and value.is_finite():
            return _canonical_decimal(value)
        return float(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _canonical_decimal(value: Decimal) -> float | str:
    """A non-integral decimal as the float holding exactly its value, as ids were always
    derived; otherwise (more digits than a float holds, or a whole number past its range) as
    exact text, so that two such values never share an id. Trailing zeros after the point do
    not count: 2.50 and 2.5 are the same value."""
    as_float = float(value)
    if Decimal(repr(as_float)) == value:
        return as_float
    text = format(value, "f")
    # a whole number past a float's range (1E+400) has no point, and its zeros are digits
    return text.rstrip("0") if "." in text else text


def deterministic_event_id(stream_name: str, row_identity: Any, event_name: str) -> str:
    """First 32 hex digits of SHA-256 of canonical JSON [stream, identity, event_name]."""
    text = json.dumps(
        [stream_name, _canonical(row_identity), event_name],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:EVENT_ID_HEX_DIGITS]


# --- the mapper ---------------------------------------------------------------------------------

# _COLUMNS: several column sources (_COLUMN or _NESTED_COLUMN), read as the list of their
# non-empty values
_COLUMN, _NESTED_COLUMN, _LITERAL, _COLUMNS = 0, 1, 2, 3
Source = tuple[int, Any]
_Identity = tuple[Mapping[str, Any], tuple[DroppedValue, ...]]  # shared: copied, never changed
_IDENTITY_VALUE_TYPES = frozenset({str, type(None), dt.date})
_TEXT_TYPE = frozenset({str})


@dataclass(frozen=True, slots=True)
class _IdentitySource:
    """Where a hashed user_data key of the identity memo takes its value from."""

    key: str
    value_indexes: tuple[int, ...]  # into the memo key, tried in order: first non-empty wins
    fallback: Any  # a non-empty literal when no column has a value, or _NO_VALUE
    precedes_unhashed: bool  # its path comes before every unhashed user_data path


@dataclass(frozen=True, slots=True)
class _Plan:
    """What to read from records with one particular set of columns."""

    objects: tuple[tuple[Source, str], ...]  # (source, event key) of whole-object columns
    extra_columns: tuple[str, ...]
    fill_paths: FillPaths  # every path, compiled
    # every path but the hashed user_data ones, compiled (those come from the identity memo)
    fill_other_paths: FillPaths
    # The hashed user_data paths when they can be taken from the identity memo (all fed by
    # plain columns or literals, no user_data object column, the other user_data keys all
    # unhashed): their columns (the memo key); how each key finds its value in those.
    identity_columns: tuple[str, ...] | None = None
    identity_sources: tuple[_IdentitySource, ...] = ()
    # raw values of identity_columns → the hashed user_data and dropped values they give, or
    # None when those values take the general path
    identities: dict[tuple[Any, ...], _Identity | None] = field(default_factory=dict)
    identity_values: Callable[[Mapping[str, Any]], tuple[Any, ...]] = tuple
    # the whole event from a memoized identity, when the plan allows (see _compile_builder)
    build: BuildEvent | None = None
    # the columns `fields` reads nested values from (customer.email: customer), each with the
    # keys of the fields reading from it, counted as dropped when the column holds no object
    nested_columns: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # the columns some step above the sixth (unmapped_columns_to_custom_data) uses
    consumed: frozenset[str] = frozenset()


def _dig(record: Mapping[str, Any], parts: Path) -> Any:
    value: Any = record
    for part in parts:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _gather(record: Mapping[str, Any], sources: tuple[Source, ...]) -> list[Any] | None:
    """The non-empty values of several column sources, in order; None when there is none.

    A column holding a list (an array column of e-mails …) gives each of its items.
    """
    values: list[Any] = []
    for kind, payload in sources:
        value = record[payload] if kind == _COLUMN else _dig(record, payload)
        if isinstance(value, (list, tuple)):
            values.extend(item for item in value if not _is_empty(item))
        elif not _is_empty(value):
            values.append(value)
    return values or None


def _read_nested_columns(
    record: Mapping[str, Any], nested_columns: tuple[tuple[str, tuple[str, ...]], ...]
) -> tuple[Mapping[str, Any], list[DroppedValue] | None]:
    """The record as nested paths read it, and the values they cannot read.

    A column holding an object as JSON text (``'{"email": …}'``, as whole-object columns take
    it) is parsed once, into a copy: the record itself stays as it came (its derived event_id,
    its dead letter). A column holding something else than an object, or text that is not a
    JSON object, leaves the fields reading in it empty: counted as dropped, each once.
    """
    parsed: dict[str, Any] | None = None
    dropped: list[DroppedValue] | None = None
    for column, keys in nested_columns:
        value = record[column]
        if value.__class__ is dict or _is_empty(value):  # the common cases, first
            continue
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = None
            if value.__class__ is dict:
                if parsed is None:
                    parsed = dict(record)
                parsed[column] = value
                continue
        elif isinstance(value, Mapping):
            continue
        if dropped is None:
            dropped = []
        dropped.extend(DroppedValue(key, REASON_INVALID) for key in keys)
    return (record if parsed is None else parsed), dropped


def _dropped_key(path: Path) -> str:
    """How a field's dropped value is counted: a user_data key as normalization counts it."""
    return path[1] if path[0] == "user_data" and len(path) == 2 else ".".join(path)


def _put(event: dict[str, Any], path: Path, value: Any) -> None:
    target = event
    for part in path[:-1]:
        inner = target.get(part)
        if not isinstance(inner, dict):
            inner = target[part] = {}
        target = inner
    target[path[-1]] = value


FillPaths = Callable[[Mapping[str, Any], dict[str, Any]], None]
BuildEvent = Callable[[Mapping[str, Any], Mapping[str, Any], tuple[DroppedValue, ...]], MappedEvent]
_NO_EVENT_NAME = (
    "no event name: map a column, or set streams.<stream>.event_name or default_event_name"
)
_NO_EVENT_TIME = "no event time: map a column to event_time"


def _with_identity(
    hashed: Mapping[str, Any],
    dropped_hashed: tuple[DroppedValue, ...],
    unhashed: dict[str, Any],
    mapper: EventMapper,
) -> tuple[dict[str, Any], list[DroppedValue]]:
    """What normalize_user_data gives for the memoized hashed keys and the unhashed ones."""
    if _TEXT_TYPE.issuperset(map(type, unhashed.values())):
        return {**hashed, **unhashed}, list(dropped_hashed)  # non-empty texts, kept as they are
    rest = normalize_user_data(unhashed, hash_external_id=mapper.hash_external_id)
    return {**hashed, **rest.user_data}, [*dropped_hashed, *rest.dropped]


class _Code:
    """Python source being generated for one plan, and the constants it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {
            "_dig": _dig,
            "_gather": _gather,
            "_put": _put,
            "_NO_VALUE": _NO_VALUE,
        }

    def literal(self, value: Any) -> str:
        if value.__class__ is str:
            return repr(value)  # a str's repr is always a valid Python literal
        name = f"_constant_{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def first_value(self, path_sources: tuple[Source, ...], indent: str) -> None:
        """Lines setting `value` to the first non-empty value of the sources, or _NO_VALUE."""
        for kind, payload in path_sources:
            if kind == _COLUMN:
                read = f"record[{self.literal(payload)}]"
            elif kind == _COLUMNS:
                read = f"_gather(record, {self.literal(payload)})"
            elif kind == _LITERAL:
                read = self.literal(payload)
            else:
                read = f"_dig(record, {self.literal(payload)})"
            self.lines.append(f"{indent}value = {read}")
            self.lines.append(
                f"{indent}if value is None or (isinstance(value, str) and not value.strip()):"
            )
            indent += "    "
        self.lines.append(f"{indent}value = _NO_VALUE")

    def function(self, name: str) -> Any:
        exec(compile("\n".join(self.lines), "<event mapping>", "exec"), self.namespace)
        return self.namespace[name]


def _compile_paths(paths: tuple[tuple[Path, tuple[Source, ...]], ...]) -> FillPaths:
    """fill(record, event): each path gets the first non-empty value of its sources.

    Generated straight-line code, once per set of columns: the loop it replaces cost more in
    dispatch (source kinds, path lengths) than in the work itself.
    """
    code = _Code()
    code.lines.append("def fill(record, event):")
    for path, path_sources in paths:
        code.first_value(path_sources, "    ")
        code.lines.append("    if value is not _NO_VALUE:")
        if len(path) == 2:  # user_data.em, custom_data.value ...: most paths
            code.lines += [
                f"        inner = event.get({code.literal(path[0])})",
                "        if not isinstance(inner, dict):",
                f"            inner = event[{code.literal(path[0])}] = {{}}",
                f"        inner[{code.literal(path[1])}] = value",
            ]
        elif len(path) == 1:
            code.lines.append(f"        event[{code.literal(path[0])}] = value")
        else:
            code.lines.append(f"        _put(event, {code.literal(path)}, value)")
    code.lines.append("    return None")
    return code.function("fill")


def _compile_builder(
    paths: tuple[tuple[Path, tuple[Source, ...]], ...],
    hashed_paths: Collection[Path],
    mapper: EventMapper,
) -> BuildEvent | None:
    """build(record, hashed, dropped_hashed) → MappedEvent, for a plan whose hashed user_data
    comes from the identity memo; None when the plan has paths it does not cover.

    It does what fill and _finish do together, in one piece of straight-line code: each value
    is read, converted and put in its final place once, with converters and literals resolved
    when the plan is made (~4 µs of ~35 per record in a record worker). _finish stays the
    reference: tests/test_mapping_builder.py holds the two to the same events, dropped values
    and errors. Two differences, both without meaning to Meta: the keys after user_data come
    in the plan's order, not in the order the record happened to fill them; and when two
    fields after user_data are unusable, the error names the first in that order.
    """
    by_path = dict(paths)
    if ("event_name",) not in by_path or ("event_time",) not in by_path:
        return None  # _finish raises its error for every record
    by_key: dict[str, list[Path]] = {}
    for path in by_path:
        if len(path) > 2 or (len(path) == 2 and path[0] not in ("user_data", "custom_data")):
            return None
        if len(path) == 1 and path[0] in _OBJECT_KEYS:  # a constant object: _finish merges it
            return None
        if path not in hashed_paths:
            by_key.setdefault(path[0], []).append(path)

    code = _Code()
    code.namespace.update(
        _error=mapper._error,
        _time_error=mapper._event_time_error,
        _derived_event_id=mapper._derived_event_id,
        _with_identity=_with_identity,
        _parse_event_time=mapper.parse_event_time,
        _to_text=_to_text,
        MappedEvent=MappedEvent,
        mapper=mapper,
    )
    lines = code.lines
    lines.append("def build(record, hashed, dropped_hashed):")

    def convert(path: Path, converter: Callable[[Any], Any], target: str, field: str) -> None:
        """Lines converting the path's first value into `target`, or leaving it unset."""
        path_sources = by_path[path]
        first_kind, first_payload = path_sources[0]
        if first_kind == _LITERAL and not _is_empty(first_payload):
            try:
                constant = converter(first_payload)
            except (ValueError, ArithmeticError):
                constant = None  # refused per record, as _finish does
            if constant.__class__ in (str, int, float, bool):  # immutable: shared by events
                lines.append(f"    {target} = {code.literal(constant)}")
                return
        code.first_value(path_sources, "    ")
        lines.extend(
            [
                "    if value is not _NO_VALUE:",
                "        try:",
                f"            converted = {code.literal(converter)}(value)",
                "        except (ValueError, ArithmeticError) as error:",
                f"            raise _error(record, {field!r}, str(error)) from None",
                # as _finish: a row's value like any other, not a crash of the whole run
                "        except RecursionError:",
                f"            raise _error(record, {field!r}, {_TOO_DEEP!r}) from None",
            ]
        )
        if converter in _CONVERTERS_LEAVING_OUT:
            lines.extend(
                ["        if converted is not _NO_VALUE:", f"            {target} = converted"]
            )
        else:
            lines.append(f"        {target} = converted")

    lines.append("    event_name = _NO_VALUE")
    convert(("event_name",), _to_text, "event_name", "event_name")
    lines += [
        "    if event_name is _NO_VALUE:",
        f"        raise _error(record, 'event_name', {_NO_EVENT_NAME!r})",
    ]
    code.first_value(by_path[("event_time",)], "    ")
    lines += [
        "    if value is _NO_VALUE:",
        f"        raise _error(record, 'event_time', {_NO_EVENT_TIME!r})",
        "    try:",
        "        event_time = _parse_event_time(value)",
        "    except (ValueError, ArithmeticError) as error:",
        "        raise _time_error(record, value, error) from None",
        "    event_id = ''",
    ]
    if ("event_id",) in by_path:
        convert(("event_id",), _to_text, "event_id", "event_id")
    lines += [
        "    if not event_id:",
        "        event_id = _derived_event_id(record, event_name)",
        "    unhashed = {}",
    ]
    for path in by_key.get("user_data", ()):
        code.first_value(by_path[path], "    ")
        lines += [
            "    if value is not _NO_VALUE:",
            f"        unhashed[{code.literal(path[1])}] = value",
        ]
    lines += [
        "    user_data, dropped = _with_identity(hashed, dropped_hashed, unhashed, mapper)",
        "    event = {'event_name': event_name, 'event_time': event_time, "
        "'event_id': event_id, 'user_data': user_data}",
    ]
    for key, key_paths in by_key.items():
        if key in ("event_name", "event_time", "event_id", "user_data"):
            continue
        if key == "custom_data":
            lines.append("    custom_data = {}")
            for path in key_paths:
                name = path[1]
                converter = _CUSTOM_DATA_CONVERTERS.get(name, _to_json)
                convert(path, converter, f"custom_data[{name!r}]", f"custom_data.{name}")
            lines += ["    if custom_data:", "        event['custom_data'] = custom_data"]
        else:
            converter = _TOP_LEVEL_CONVERTERS.get(key, _to_json)
            convert((key,), converter, f"event[{key!r}]", key)
    lines.append("    return MappedEvent(event, dropped, event_id)")
    return code.function("build")


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _identity_source(
    key: str, path_sources: tuple[Source, ...], columns: tuple[str, ...], precedes_unhashed: bool
) -> _IdentitySource:
    """The sources of a hashed key, as positions in the memo key up to its first literal."""
    indexes: list[int] = []
    fallback: Any = _NO_VALUE
    for kind, payload in path_sources:
        if kind == _COLUMN:
            indexes.append(columns.index(payload))
        elif not _is_empty(payload):  # a literal: the sources after it are never read
            fallback = payload
            break
    return _IdentitySource(key, tuple(indexes), fallback, precedes_unhashed)


def _alias_lookup() -> tuple[dict[str, list[tuple[Path, int]]], dict[str, str]]:
    by_column: dict[str, list[tuple[Path, int]]] = {}
    for dotted, names in ALIASES.items():
        for rank, name in enumerate(names):
            by_column.setdefault(name, []).append((tuple(dotted.split(".")), rank))
    objects = {
        name: dotted
        for dotted, names in ALIASES.items()
        if dotted in _OBJECT_KEYS
        for name in names
    }
    return by_column, objects


_ALIAS_PATHS_BY_COLUMN, _OBJECT_ALIASES = _alias_lookup()
_USER_DATA_ALIAS_COLUMNS = frozenset(
    name for dotted, names in ALIASES.items() if dotted.startswith("user_data") for name in names
)


# Columns so named hold what identifies a person whatever the table: a column named like a
# place or a gender ("state", "country") may well be an order's, so is not presumed to.
_IDENTIFYING_COLUMNS = frozenset(
    name
    for dotted in (
        "user_data.em",
        "user_data.ph",
        "user_data.fn",
        "user_data.ln",
        "user_data.db",
        "user_data.client_ip_address",
        "user_data.client_user_agent",
    )
    for name in ALIASES[dotted]
)


class EventMapper:
    """Maps the records of one stream. Build it with :func:`build_event_mapper`."""

    def __init__(
        self,
        stream_name: str,
        key_properties: Collection[str],
        mapping: StreamMapping,
        *,
        default_event_name: str | None = None,
        default_action_source: str | None = None,
        hash_external_id: bool = True,
        schema_properties: Collection[str] | None = None,
        time_zone: dt.tzinfo | None = None,
    ) -> None:
        self.stream_name = stream_name
        self.key_properties = tuple(key_properties)
        self.mapping = mapping
        self.hash_external_id = hash_external_id
        # Every user_data value of these keys in map()'s events is SHA-256 hex: all of them go
        # through normalize_user_data, which hashes or drops what is not a hash already.
        self.hashed_user_data_keys: frozenset[str] = (
            HASHED_KEYS if hash_external_id else HASHED_KEYS - {"external_id"}
        )
        # times without an offset (a `timestamp without time zone` column) are in `time_zone`
        self.parse_event_time: Callable[[Any], int] = parse_event_time
        self._object_converters = _OBJECT_CONVERTERS
        if time_zone is not None:
            self.parse_event_time = partial(parse_event_time, zone=time_zone)
            self._object_converters = {
                key: {
                    name: self.parse_event_time if converter is parse_event_time else converter
                    for name, converter in converters.items()
                }
                for key, converters in _OBJECT_CONVERTERS.items()
            }
        self._literals: dict[Path, Any] = dict(mapping.constants)
        if mapping.event_name:
            self._literals[("event_name",)] = mapping.event_name
        if mapping.action_source:
            self._literals[("action_source",)] = mapping.action_source
        self._defaults: dict[Path, str] = {}
        if default_event_name:
            self._defaults[("event_name",)] = default_event_name
        if default_action_source:
            self._defaults[("action_source",)] = default_action_source
        # the stream's SCHEMA columns; None: not known (a mapper built without a SCHEMA)
        self._schema_columns = None if schema_properties is None else frozenset(schema_properties)
        known = set(schema_properties or ())
        # `fields` columns the schema does not know (a typo, a column renamed or dropped since),
        # each once, with the fields it would feed: worth a warning by the caller
        unknown: dict[str, list[str]] = {}
        for path, columns in mapping.fields.items():
            for column in dict.fromkeys(_each_column(columns)):
                if known and column not in known and column.split(".", 1)[0] not in known:
                    unknown.setdefault(column, []).append(".".join(path))
        self.unknown_columns: dict[str, tuple[str, ...]] = {
            column: tuple(paths) for column, paths in unknown.items()
        }
        # columns named in `fields`: used as mapped there, never also through their aliases
        self._mapped_columns = frozenset(
            column for columns in mapping.fields.values() for column in _each_column(columns)
        )
        user_data_columns = {
            column
            for path, columns in mapping.fields.items()
            if path[0] == "user_data"
            for column in _each_column(columns)
        }
        # Key properties that carry customer information: never shown in errors or dead letters.
        self.redacted_keys = frozenset(
            key
            for key in self.key_properties
            if key in user_data_columns or key.lower() in _USER_DATA_ALIAS_COLUMNS
        )
        # `fields` outside user_data that send customer information unhashed, as mapped: a
        # column also mapped into user_data, or named like an e-mail, phone, name, birth date,
        # IP address or user agent (its last part, for a value nested in an object column).
        # Worth a warning by the caller, and never shown in dead letters.
        self.unhashed_customer_fields: tuple[tuple[Path, str], ...] = tuple(
            (path, column)
            for path, columns in mapping.fields.items()
            if path[0] != "user_data"
            for column in _each_column(columns)
            if column in user_data_columns
            or column.rsplit(".", 1)[-1].lower() in _IDENTIFYING_COLUMNS
        )
        # Plans by the columns they read (`_plan_key`), and the same plans by the whole set of a
        # record's columns, the lookup each record makes. A table whose records leave out their
        # null columns, as document stores write them, comes with a new set of columns every few
        # records; keyed on all of them, each record compiled a plan of its own (~5 ms).
        self._plans: dict[tuple[str, ...], _Plan] = {}
        self._plans_by_columns: dict[tuple[str, ...], _Plan] = {}
        self._read_columns: dict[str, bool] = {}  # column → whether plans depend on it
        self._nested_heads = frozenset(
            column.split(".", 1)[0] for column in self._mapped_columns if "." in column
        )
        # The customer memo, over all plans. It is used only while customers come back: when
        # they do not (a day of orders from one-off customers), it would hold ~15 MB of them
        # for nothing. While it is off, hashes of recent customers tell whether it would pay.
        # Its room, and that of those hashes, is the process's (`_MEMO_ROOM`), shared by the
        # mappers of every stream.
        self._identities_kept = 0  # since the memo was last emptied
        self._memoizing = False
        self._identity_hits = 0  # while memoizing, since the memo was last emptied
        self._customers_judged = 0
        self._customers_returning = 0

    # -- planning (once per set of columns) --

    def columns_feeding(self, path: Path, columns: Iterable[str]) -> tuple[str, ...]:
        """Of `columns` (a SCHEMA's), those whose values go to `path` (("user_data", "zp")):
        the ones `fields` maps there, and the ones named like its aliases that `fields` does
        not use elsewhere."""
        present = tuple(columns)
        mapped = tuple(
            column
            for column in _each_column(self.mapping.fields.get(path, ()))
            if column in present
        )
        aliased = tuple(
            column
            for column in present
            if column not in self._mapped_columns
            and any(alias == path for alias, _ in _ALIAS_PATHS_BY_COLUMN.get(column.lower(), ()))
        )
        return mapped + aliased

    def fixed_event_name(self, columns: Iterable[str]) -> str | None:
        """The event name of every record with `columns` (a SCHEMA's): the stream's literal
        or the default, unless a column mapped to event_name (or, before the default, one
        named like it) may give each record its own; a whole-object column cannot."""
        present = tuple(columns)
        if ("event_name",) in self.mapping.fields and self.columns_feeding(
            ("event_name",), present
        ):
            return None
        literal = self._literals.get(("event_name",))
        if literal is not None:
            return str(literal)
        if self.columns_feeding(("event_name",), present):
            return None
        return self._defaults.get(("event_name",))

    def custom_data_columns(self, columns: Iterable[str]) -> tuple[str, ...]:
        """The columns a record with `columns` sends as custom_data under their own names,
        unhashed (``unmapped_columns_to_custom_data``): never one outside the SCHEMA."""
        return self._plan(tuple(columns)).extra_columns

    def _plan(self, columns: tuple[str, ...]) -> _Plan:
        present = set(columns)
        consumed: set[str] = set()
        sources: dict[Path, list[tuple[int, Source]]] = {}

        def add(path: Path, rank: int, source: Source) -> None:
            sources.setdefault(path, []).append((rank, source))

        # Every column named like an alias, whatever its case, is used: of columns differing
        # only in case, the one first in the record first (sorting by rank keeps their order),
        # the others where it is empty. Whole objects merge with the first one's keys winning.
        # A column named in `fields` is used as mapped there only.
        alias_objects: dict[str, list[Source]] = {}
        mapped_columns = self._mapped_columns
        for column in columns:
            if column in mapped_columns:
                continue
            lower = column.lower()
            if lower in _OBJECT_ALIASES:
                alias_objects.setdefault(_OBJECT_ALIASES[lower], []).append((_COLUMN, column))
                consumed.add(column)
            for path, rank in _ALIAS_PATHS_BY_COLUMN.get(lower, ()):
                if path[0] not in _OBJECT_KEYS or len(path) > 1:
                    add(path, 2000 + rank, (_COLUMN, column))
                    consumed.add(column)
        objects: list[tuple[Source, str]] = [
            (source, key) for key, group in alias_objects.items() for source in reversed(group)
        ]
        for path, value in self._literals.items():
            add(path, 1000, (_LITERAL, value))
        for path, value in self._defaults.items():
            add(path, 3000, (_LITERAL, value))
        nested: dict[str, list[str]] = {}  # column → keys of the fields reading in it
        for path, mapped in self.mapping.fields.items():
            column_sources: list[Source] = []
            for column in _each_column(mapped):
                if column in present:
                    column_sources.append((_COLUMN, column))
                    consumed.add(column)
                elif "." in column and (head := column.split(".", 1)[0]) in present:
                    column_sources.append((_NESTED_COLUMN, tuple(column.split("."))))
                    consumed.add(head)
                    nested.setdefault(head, []).append(_dropped_key(path))
            if not column_sources:
                continue
            source: Source = (
                column_sources[0] if isinstance(mapped, str) else (_COLUMNS, tuple(column_sources))
            )
            if len(path) == 1 and path[0] in _OBJECT_KEYS:
                objects.append((source, path[0]))
            else:
                add(path, 0, source)
        extra = self._unmapped_columns(columns, consumed)
        paths = tuple(
            (path, tuple(source for _, source in sorted(ranked, key=lambda r: r[0])))
            for path, ranked in sources.items()
        )
        identity_plan = self._identity_plan(objects, paths)
        build = None
        if identity_plan and not objects and not extra:
            hashed_paths = {("user_data", key.key) for key in identity_plan["identity_sources"]}
            build = _compile_builder(paths, hashed_paths, self)
        return _Plan(
            objects=tuple(objects),
            extra_columns=extra,
            fill_paths=_compile_paths(paths),
            fill_other_paths=_compile_paths(identity_plan.pop("other_paths", ())),
            build=build,
            nested_columns=tuple(
                (head, tuple(dict.fromkeys(keys))) for head, keys in nested.items()
            ),
            consumed=frozenset(consumed),
            **identity_plan,
        )

    def _plan_for(self, columns: tuple[str, ...]) -> _Plan:
        """The plan for records with these columns: the one of every set of columns that
        differs from them only in columns no plan reads."""
        key = self._plan_key(columns)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _MAX_CACHED_PLANS:
                self._plans.clear()
                self._plans_by_columns.clear()
            plan = self._plans[key] = self._plan(key)
        # the columns sent as they are, which the key leaves out: this record's own
        extra = self._unmapped_columns(columns, plan.consumed)
        if extra != plan.extra_columns:  # the memo (identities) stays the plan's
            plan = replace(plan, extra_columns=extra, build=None)
        if len(self._plans_by_columns) >= _MAX_CACHED_PLANS:
            self._plans_by_columns.clear()
        self._plans_by_columns[columns] = plan
        return plan

    def _plan_key(self, columns: tuple[str, ...]) -> tuple[str, ...]:
        """The columns, in record order, whose presence `_plan` depends on: those `fields`
        maps (or reads nested values in) and those named like an alias. `_plan` of these gives
        the plan of `columns` but for the unmapped columns it sends, which `_plan_for` adds."""
        known = self._read_columns
        try:
            return tuple(filter(known.__getitem__, columns))
        except KeyError:  # a column met for the first time
            if len(known) >= _MAX_KNOWN_COLUMNS:
                known.clear()  # a record's columns outside the SCHEMA are not bounded by it
            for column in columns:
                if column not in known:
                    known[column] = self._plans_read(column)
            return tuple(filter(known.__getitem__, columns))

    def _plans_read(self, column: str) -> bool:
        if column in self._mapped_columns or column in self._nested_heads:
            return True
        lower = column.lower()
        return lower in _OBJECT_ALIASES or lower in _ALIAS_PATHS_BY_COLUMN

    def _unmapped_columns(
        self, columns: Iterable[str], consumed: Collection[str]
    ) -> tuple[str, ...]:
        """The columns ``unmapped_columns_to_custom_data`` sends as they are (none without
        it): those no step uses, and only those the SCHEMA lists (the ones the SCHEMA-time
        warning names), no Singer metadata."""
        if not self.mapping.unmapped_columns_to_custom_data:
            return ()
        schema = self._schema_columns
        return tuple(
            column
            for column in columns
            if column not in consumed
            and not column.startswith(_METADATA_PREFIX)
            and (schema is None or column in schema)
        )

    @staticmethod
    def _identity_plan(
        objects: list[tuple[Source, str]], paths: tuple[tuple[Path, tuple[Source, ...]], ...]
    ) -> dict[str, Any]:
        hashed = [
            (index, path, path_sources)
            for index, (path, path_sources) in enumerate(paths)
            if path[0] == "user_data" and len(path) == 2 and path[1] in HASHED_KEYS
        ]
        hashed_indexes = {index for index, _, _ in hashed}
        unhashed_indexes = [
            index
            for index, (path, _) in enumerate(paths)
            if path[0] == "user_data" and index not in hashed_indexes
        ]
        columns = tuple(
            dict.fromkeys(
                payload
                for _, _, path_sources in hashed
                for kind, payload in path_sources
                if kind == _COLUMN
            )
        )
        usable = (
            len(columns) >= 2
            and not any(key == "user_data" for _, key in objects)
            and all(
                kind in (_COLUMN, _LITERAL)
                for _, _, path_sources in hashed
                for kind, _ in path_sources
            )
            and all(
                len(paths[index][0]) == 2 and paths[index][0][1] in UNHASHED_KEYS
                for index in unhashed_indexes
            )
        )
        if not usable:
            return {}
        first_unhashed = min(unhashed_indexes, default=len(paths))
        return {
            "identity_values": operator.itemgetter(*columns),  # a tuple: 2 columns or more
            "identity_columns": columns,
            "identity_sources": tuple(
                _identity_source(path[1], path_sources, columns, index < first_unhashed)
                for index, path, path_sources in hashed
            ),
            "other_paths": tuple(
                item for index, item in enumerate(paths) if index not in hashed_indexes
            ),
        }

    def _identity(self, plan: _Plan, values: tuple[Any, ...]) -> _Identity | None:
        """The memoized hashed user_data for these raw values of the plan's identity columns.

        None: these values take the general path (normalize_user_data over all of user_data).
        """
        try:
            identity = plan.identities[values]
        except KeyError:
            pass
        except TypeError:  # an unhashable value (a list …)
            return None
        else:
            self._identity_hits += 1
            return identity
        # Kept only for types whose equal values normalize alike (1, 1.0 and True are equal
        # keys). Looking up needs no such check: nothing but a str, None or a date equals a
        # str, None or a date, short of subclasses that neither JSON decoding nor the SDK's
        # date parsing produce.
        if not _IDENTITY_VALUE_TYPES.issuperset(map(type, values)):
            return None
        winners: dict[str, Any] = {}
        late: list[str] = []  # winners whose paths come after an unhashed one
        for source in plan.identity_sources:
            for index in source.value_indexes:
                value = values[index]  # a str, None or a date (checked above)
                if value is not None and (value.__class__ is not str or value.strip()):
                    break
            else:
                value = source.fallback
                if value is _NO_VALUE:
                    continue
            winners[source.key] = value
            if not source.precedes_unhashed:
                late.append(source.key)
        # normalize_user_data puts two or more texts first as a group and the rest in record
        # order: hashed results followed by the unhashed values is the same only when every
        # hashed value outside that group comes before the unhashed ones.
        if late and sum(value.__class__ is str for value in winners.values()) >= 2:
            late = [key for key in late if winners[key].__class__ is not str]
        identity = None
        # a literal of another type (a list constant …) could give a list, shared if kept
        if not late and _IDENTITY_VALUE_TYPES.issuperset(map(type, winners.values())):
            normalized = normalize_hashed_values(winners, hash_external_id=self.hash_external_id)
            identity = (normalized.user_data, tuple(normalized.dropped))
        self._keep(plan, values, identity)
        return identity

    def _keep(self, plan: _Plan, values: tuple[Any, ...], identity: _Identity | None) -> None:
        """Memoize a customer met for the first time, while customers come back.

        Memoizing: when the process's room is full, every memo in it is emptied, and each goes
        on only if at least `_MIN_RETURNING_SHARE` of its lookups since it was last emptied
        found a customer. Not memoizing: every `_CUSTOMERS_JUDGED` customers, the hashes of
        the last `_MAX_CACHED_IDENTITIES` (of every mapper not memoizing) say whether a memo
        would have found that share.
        """
        room = _MEMO_ROOM
        if self._memoizing:
            if room.kept >= _MAX_CACHED_IDENTITIES:
                room.empty()
            if self._memoizing:
                plan.identities[values] = identity
                self._identities_kept += 1
                room.kept += 1
                room.mappers.add(self)
            return
        recent = room.recent
        customer = hash((id(self), values))
        if customer in recent:
            self._customers_returning += 1
        elif len(recent) >= _MAX_CACHED_IDENTITIES:
            recent.clear()
        recent.add(customer)
        self._customers_judged += 1
        if self._customers_judged >= _CUSTOMERS_JUDGED:
            if self._customers_returning >= _MIN_RETURNING_SHARE * self._customers_judged:
                self._memoizing = True
                recent.clear()
            self._customers_judged = self._customers_returning = 0

    def _empty_memo(self) -> None:
        """Forget every customer memoized, going on memoizing only if at least
        `_MIN_RETURNING_SHARE` of the lookups since the memo was last emptied found one."""
        lookups = self._identity_hits + self._identities_kept
        self._memoizing = self._identity_hits >= _MIN_RETURNING_SHARE * lookups
        self._identity_hits = self._identities_kept = 0
        for plan in self._plans.values():
            plan.identities.clear()

    # -- mapping (once per record) --

    def map(self, record: Mapping[str, Any]) -> MappedEvent:
        columns = tuple(record)
        plan = self._plans_by_columns.get(columns)
        if plan is None:
            plan = self._plan_for(columns)

        values = record  # what the plan's sources read: the record with JSON objects parsed
        dropped: list[DroppedValue] | None = None
        if plan.nested_columns:
            values, dropped = _read_nested_columns(record, plan.nested_columns)
        identity = None
        fill_paths = plan.fill_paths
        if plan.identity_columns is not None and values is record and dropped is None:
            identity = self._identity(plan, plan.identity_values(record))
            if identity is not None:
                if plan.build is not None:
                    return plan.build(record, *identity)
                fill_paths = plan.fill_other_paths

        event: dict[str, Any] = {}
        for (kind, payload), key in plan.objects:
            value = values[payload] if kind == _COLUMN else _dig(values, payload)
            if _is_empty(value):
                continue
            try:
                value = _loads_if_text(value, "object")
            except ValueError as error:
                raise self._error(record, key, str(error)) from None
            if not isinstance(value, Mapping):
                raise self._error(record, key, "the column does not hold an object")
            event[key] = {**event[key], **value} if key in event else dict(value)
        fill_paths(values, event)
        if plan.extra_columns:
            custom = event.setdefault("custom_data", {})
            for column in plan.extra_columns:
                value = record[column]
                # last: a key that a mapped field, constant, alias or object set stays theirs
                if value is not None and _is_empty(custom.get(column)):
                    custom[column] = value
        mapped = self._finish(record, event, identity)
        if dropped:
            mapped.dropped = [*dropped, *mapped.dropped]
        return mapped

    def _finish(
        self, record: Mapping[str, Any], event: dict[str, Any], identity: _Identity | None = None
    ) -> MappedEvent:
        event_name = event.pop("event_name", None)
        if event_name is None:
            raise self._error(record, "event_name", _NO_EVENT_NAME)
        try:
            event_name = _to_text(event_name)
        except ValueError as error:
            raise self._error(record, "event_name", str(error)) from None

        raw_time = event.pop("event_time", None)
        if raw_time is None:
            raise self._error(record, "event_time", _NO_EVENT_TIME)
        try:
            event_time = self.parse_event_time(raw_time)
        except (ValueError, ArithmeticError) as error:
            raise self._event_time_error(record, raw_time, error) from None

        raw_id = event.pop("event_id", None)
        event_id = ""
        if raw_id is not None:
            try:
                event_id = _to_text(raw_id)
            except ValueError as error:
                raise self._error(record, "event_id", str(error)) from None
        if not event_id:
            event_id = self._derived_event_id(record, event_name)

        raw_user_data = event.pop("user_data", None) or {}
        if identity is None:
            normalized = normalize_user_data(raw_user_data, hash_external_id=self.hash_external_id)
            user_data, dropped = normalized.user_data, normalized.dropped
        else:
            user_data, dropped = _with_identity(*identity, raw_user_data, self)
        result: dict[str, Any] = {
            "event_name": event_name,
            "event_time": event_time,
            "event_id": event_id,
            "user_data": user_data,
        }
        for key, value in event.items():
            converters = self._object_converters.get(key)
            if converters is not None:
                converted = self._convert_object(record, key, value, converters)
                if converted:  # as the builder does: no empty custom_data (nor other object)
                    result[key] = converted
                continue
            try:
                result[key] = _TOP_LEVEL_CONVERTERS.get(key, _to_json)(value)
            except (ValueError, ArithmeticError) as error:
                raise self._error(record, key, str(error)) from None
            except RecursionError:
                raise self._error(record, key, _TOO_DEEP) from None
        return MappedEvent(result, dropped, event_id)

    def _convert_object(
        self,
        record: Mapping[str, Any],
        key: str,
        value: Any,
        converters: Mapping[str, Callable[[Any], Any]],
    ) -> dict[str, Any]:
        """custom_data, app_data …: each key's value converted as that parameter requires,
        however it got there (a mapped path, a constant, a whole-object column)."""
        if not isinstance(value, Mapping):
            raise self._error(record, key, "is not an object")
        converted = {}
        for name, item in value.items():
            if item is None:
                continue
            try:
                item = converters.get(name, _to_json)(item)
            except (ValueError, ArithmeticError) as error:
                raise self._error(record, f"{key}.{name}", str(error)) from None
            except RecursionError:
                raise self._error(record, f"{key}.{name}", _TOO_DEEP) from None
            if item is not _NO_VALUE:
                converted[name] = item
        return converted

    def _event_time_error(
        self, record: Mapping[str, Any], raw_time: Any, error: Exception
    ) -> MappingError:
        # the kind of value, never the value: a wrongly mapped column may hold an e-mail
        shown = "the text" if isinstance(raw_time, str) else f"a {type(raw_time).__name__}"
        return self._error(record, "event_time", f"{shown} {error}")

    def _derived_event_id(self, record: Mapping[str, Any], event_name: str) -> str:
        try:
            return deterministic_event_id(self.stream_name, self._row_identity(record), event_name)
        except RecursionError:  # a row without key properties is its own identity
            raise self._error(
                record,
                "event_id",
                f"the row {_TOO_DEEP} to derive an event_id from it (map an event_id column, "
                "or give the stream key properties)",
            ) from None

    def _row_identity(self, record: Mapping[str, Any]) -> Any:
        if self.key_properties:
            values = [record.get(key) for key in self.key_properties]
            if all(value is not None for value in values):
                return values
        return {
            column: value
            for column, value in record.items()
            if not column.startswith(_METADATA_PREFIX)
        }

    def record_key(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record's key properties, those carrying customer information masked."""
        return {
            key: MASK if key in self.redacted_keys else record.get(key)
            for key in self.key_properties
        }

    def _record_key_text(self, record: Mapping[str, Any]) -> str | None:
        return record_key_text(self.record_key(record)) if self.key_properties else None

    def _error(self, record: Mapping[str, Any], field: str, message: str) -> MappingError:
        return MappingError(self.stream_name, field, message, self._record_key_text(record))


class _MemoRoom:
    """The room of a process's customer memos: `_MAX_CACHED_IDENTITIES` customers over all
    its mappers, and as many hashes of recent customers to judge by. Each stream's mapper had
    room of its own: a worker mapping 50 streams whose customers come back held ~15 MB for
    each, growing with the run to hundreds of MB."""

    def __init__(self) -> None:
        self.kept = 0  # customers memoized, over every mapper, since the room was last emptied
        self.mappers: weakref.WeakSet[EventMapper] = weakref.WeakSet()  # those holding some
        self.recent: set[int] = set()  # mappers' recent customers while their memo is off

    def empty(self) -> None:
        """Empty every mapper's memo, each judging whether to go on memoizing."""
        for mapper in list(self.mappers):
            mapper._empty_memo()
        self.mappers.clear()
        self.kept = 0


_MEMO_ROOM = _MemoRoom()


def record_key_text(key: Mapping[str, Any]) -> str:
    """A record's key (`EventMapper.record_key`) for a message: `order_id=7`, masked values
    as the mask."""
    return ", ".join(
        f"{name}={value}" if value is MASK else f"{name}={value!r}" for name, value in key.items()
    )


def _has_recognisable_fields(schema_properties: Collection[str], config: Mapping) -> bool:
    """Customer information and an event name can be found without a `streams` entry."""
    columns = {name.lower() for name in schema_properties}
    has_customer_information = "user_data" in columns or bool(columns & _USER_DATA_ALIAS_COLUMNS)
    has_event_name = "event_name" in columns or bool(config.get("default_event_name"))
    return has_customer_information and has_event_name


def build_event_mapper(
    stream_name: str,
    key_properties: Collection[str] | None,
    config: Mapping[str, Any],
    schema_properties: Collection[str] | None = None,
) -> EventMapper | None:
    """The mapper for one stream, or None when the stream cannot yield events (skip it).

    A stream listed in ``streams`` is always mapped. Any other stream is mapped only when its
    schema has customer information (a ``user_data`` column or a user_data alias) and an event
    name (an ``event_name`` column or ``default_event_name``). Raises MappingConfigError for an
    unusable ``streams`` entry. ``schema_properties``: the columns of the stream's SCHEMA;
    None when there is no SCHEMA (then every column may go to custom_data with
    ``unmapped_columns_to_custom_data``).
    """
    stream_config = _find_stream_config(_streams_setting(config), stream_name)
    if stream_config is None:
        if not _has_recognisable_fields(schema_properties or (), config):
            return None
        mapping = StreamMapping()
    else:
        mapping = StreamMapping.from_config(stream_name, stream_config)
    return EventMapper(
        stream_name,
        key_properties or (),
        mapping,
        default_event_name=config.get("default_event_name"),
        default_action_source=config.get("default_action_source"),
        hash_external_id=config.get("hash_external_id") is not False,
        schema_properties=schema_properties,
        time_zone=time_zone_setting(config),
    )
