"""The ``streams`` setting and the other mapping settings: read, checked at start-up, and
matched to the streams of a run.

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
"""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
import json
import re
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from target_meta_capi.capi._words import shown_json
from target_meta_capi.capi.normalize import (
    HASHED_KEYS,
    MATCH_KEYS,
    NAMES_NO_PHONE_COUNTRY,
    InvalidCountryCode,
    normalize_user_data,
    phone_region,
)
from target_meta_capi.capi.request import is_pixel_id
from target_meta_capi.capi.rules import (
    ACTION_SOURCES,
    STANDARD_EVENT_NAMES,
    violations_in_every_event,
)
from target_meta_capi.mapping.aliases import ALIASES
from target_meta_capi.mapping.parameters import OBJECT_KEYS, SCALAR_KEYS, Path
from target_meta_capi.mapping.values import (
    OBJECT_CONVERTERS,
    SCALAR_CONVERTERS,
    is_empty,
    to_json,
)

_STREAM_SETTINGS = frozenset(
    {
        "event_name",
        "action_source",
        "fields",
        "constants",
        "unmapped_columns_to_custom_data",
        "pixel_id",
        "time_zone",
        "phone_country_code",
    }
)


class MappingConfigError(ValueError):
    """The ``streams`` setting for a stream cannot be used.

    ``problems``: each problem found, when there are several (all in the message, too).
    """

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems) or (message,)


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
    elif head in SCALAR_KEYS:
        if len(path) > 1:
            problem = f"{head} is a single value, not an object"
    elif head not in OBJECT_KEYS:
        problem = "is not a Conversions API event parameter"
    elif head == "user_data" and path[1:] and (len(path) > 2 or path[1] not in MATCH_KEYS):
        problem = "is not a customer information parameter"
    elif len(path) > 2 and path[1] in OBJECT_CONVERTERS.get(head, {}):
        # a key of an object Meta reads as a number, a text or a list: every value given
        # below it would be refused, record by record
        problem = f"{head}.{path[1]} is a single value or a list, not an object"
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
    if head not in OBJECT_KEYS | SCALAR_KEYS:
        close = difflib.get_close_matches(head, sorted(OBJECT_KEYS | SCALAR_KEYS), n=1)
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
    # the zone this stream's times without an offset are in, instead of the `time_zone`
    # setting's; None: that setting's (a stream's "UTC" overrides it, so is not None)
    time_zone: dt.tzinfo | None = None
    # the country (ISO alpha-2) of this stream's phone numbers written without + or 00, from
    # its own phone_country_code, instead of the setting's; None: that setting's
    phone_region: str | None = None

    @classmethod
    def from_config(
        cls, stream: str, raw: Mapping[str, Any], *, setting_phone_region: str | None = None
    ) -> StreamMapping:
        """The stream's entry, checked; `setting_phone_region` is the phone_country_code
        setting's country, which a phone number among its constants is read in when the
        entry has no phone_country_code of its own."""
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
                f"(a JSON boolean), got {shown_json(unmapped_to_custom_data)}"
            )
        pixel_id = raw.get("pixel_id")
        if pixel_id is not None:
            pixel_id = str(pixel_id)
            if not is_pixel_id(pixel_id):
                raise MappingConfigError(
                    f"streams.{stream}.pixel_id must be a pixel (dataset) ID: digits only, "
                    f"got {pixel_id!r}"
                )
        fields = {
            path: _field_columns(stream, path, column)
            for path, column in _parse_paths(stream, "fields", raw.get("fields")).items()
            if column is not None
        }
        constants = _parse_paths(stream, "constants", raw.get("constants"))
        time_zone = None
        if raw.get("time_zone") is not None:
            time_zone = zone_named(f"streams.{stream}.time_zone", raw["time_zone"])
        phone_region = None
        if raw.get("phone_country_code") is not None:
            phone_region = phone_region_named(
                f"streams.{stream}.phone_country_code", raw["phone_country_code"]
            )
        _check_action_source(
            f"streams.{stream}.constants.action_source", constants.get(("action_source",))
        )
        problems = [
            f"streams.{stream}.constants.{'.'.join(path)}: {problem}"
            for path, value in constants.items()
            if path != ("action_source",)
            and (problem := _constant_problem(path, value, phone_region or setting_phone_region))
        ]
        if not problems:
            every_event = _literal_event(raw, constants, phone_region or setting_phone_region)
            problems = [
                f"streams.{stream}.constants.{violation.field}: Meta refuses every event it "
                f"is used in ({violation.rule}): {violation.message}"
                for violation in violations_in_every_event(
                    every_event, {".".join(path) for path in fields}
                )
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
            time_zone=time_zone,
            phone_region=phone_region,
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
            f"{setting} must be one of {', '.join(sorted(ACTION_SOURCES))}; got {shown_json(value)}"
        )


def _constant_problem(path: Path, value: Any, phone_region: str | None) -> str | None:
    """Why a constant could never be sent, converted as its field's values are; None if it can.

    The value itself is not shown: a user_data constant may be customer information.
    """
    if is_empty(value):
        return None  # never used: the field's next source is
    if path == ("event_id",):
        return (
            "gives every event the same event_id, and Meta keeps one event of an id: map "
            "event_id to a column that names the row, or leave it out (the target derives one)"
        )
    head = path[0]
    shown = "the text" if isinstance(value, str) else "the value"
    if len(path) == 1 and head in OBJECT_KEYS:  # objects given whole became paths of their keys
        return f"{shown} is not an object (set its keys instead: {head}.<key>)"
    if head == "user_data":
        dropped = normalize_user_data({path[1]: value}, phone_country_code=phone_region).dropped
        if dropped:
            return f"{shown} is not a usable {path[1]} ({dropped[0].reason})"
        return None
    try:
        _converted(path, value, phone_region)
    except (ValueError, ArithmeticError) as error:
        return f"{shown} {error}"
    return None


def _converted(path: Path, value: Any, phone_region: str | None) -> Any:
    """A constant as its events get it (None: left out of them); raises as the conversion of
    its field's values does."""
    head = path[0]
    if head == "user_data":
        normalized = normalize_user_data({path[1]: value}, phone_country_code=phone_region)
        return normalized.user_data.get(path[1])
    if len(path) == 1:
        return SCALAR_CONVERTERS.get(head, to_json)(value)
    if len(path) == 2:
        return OBJECT_CONVERTERS[head].get(path[1], to_json)(value)
    return to_json(value)


def _literal_event(
    raw: Mapping[str, Any], constants: Mapping[Path, Any], phone_region: str | None
) -> dict[str, Any]:
    """What the stream's literals (its event_name, action_source and constants, all usable)
    give each of its events, nested as in the event."""
    event: dict[str, Any] = {}
    for path, value in constants.items():
        converted = None if is_empty(value) else _converted(path, value, phone_region)
        if converted is None:
            continue
        node = event
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                break  # below another constant's value (custom_data.x and custom_data.x.y)
        else:
            node[path[-1]] = converted
    for name in ("event_name", "action_source"):
        if raw.get(name) is not None:
            event[name] = raw[name]  # the mapper takes these over the constants'
    return event


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


def each_column(columns: str | tuple[str, ...]) -> tuple[str, ...]:
    return (columns,) if isinstance(columns, str) else columns


def find_stream_config(streams: Mapping[str, Any], stream_name: str) -> Any:
    if stream_name in streams:
        return streams[stream_name]
    for pattern, stream_config in streams.items():
        if _is_pattern(pattern) and fnmatch.fnmatchcase(stream_name, pattern):
            return stream_config
    return None


def overlapping_patterns_warning(config: Mapping[str, Any], stream_name: str) -> str | None:
    """A warning when the stream has no entry of its own name and several patterns match it:
    the first applies (its pixel_id, event_name, fields), which the config does not show."""
    streams = streams_of(config)
    if stream_name in streams:
        return None
    patterns = [
        entry for entry in streams if _is_pattern(entry) and fnmatch.fnmatchcase(stream_name, entry)
    ]
    if len(patterns) < 2:
        return None
    return (
        f"Stream {stream_name!r} matches several `streams` patterns "
        f"({', '.join(map(repr, patterns))}): only the first, {patterns[0]!r}, applies (its "
        "pixel_id, event_name and fields). Give the stream an entry of its own name, or make "
        "the patterns exclusive."
    )


def _is_pattern(entry: str) -> bool:
    return any(char in entry for char in "*?[")


def streams_of(config: Mapping[str, Any]) -> Mapping[str, Any]:
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
    return zone_named("time_zone", name)


def zone_named(setting: str, name: Any) -> dt.tzinfo:
    """The IANA zone a setting names. MappingConfigError for a name that is no zone here."""
    if not isinstance(name, str) or not name.strip():
        raise MappingConfigError(f"{setting} must be an IANA time zone name such as Europe/Berlin")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise MappingConfigError(
            f"{setting} {name!r} is not a time zone known here: give an IANA name such as "
            "Europe/Berlin or America/New_York (a system without a time zone database needs "
            "the tzdata package)"
        ) from None


def phone_region_setting(config: Mapping[str, Any]) -> str | None:
    """The country the ``phone_country_code`` setting names; None (unset): phone numbers are
    hashed as written (those written with a trunk 0 are dropped). MappingConfigError for a
    value that names no country."""
    value = config.get("phone_country_code")
    if value is None:
        return None
    return phone_region_named("phone_country_code", value)


def phone_region_named(setting: str, value: Any) -> str:
    """The country a phone_country_code setting names. MappingConfigError for none."""
    try:
        return phone_region(value)
    except InvalidCountryCode:
        problem = f"{setting} {shown_json(value)} {NAMES_NO_PHONE_COUNTRY}"
        raise MappingConfigError(problem) from None


def mapping_config_errors(config: Mapping[str, Any]) -> list[str]:
    """Every problem of the ``streams`` and default mapping settings, found at start-up: a
    wrong entry must not wait for its stream's SCHEMA, after other streams' data went out."""
    errors: list[str] = []
    try:
        streams = streams_of(config)
    except MappingConfigError as error:
        errors.append(str(error))
        streams = {}  # no entry to check, but the other settings still are
    try:
        setting_phone_region = phone_region_setting(config)
    except MappingConfigError:
        setting_phone_region = None  # its error is listed below
    for stream, raw in streams.items():
        try:
            StreamMapping.from_config(stream, raw, setting_phone_region=setting_phone_region)
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
    for setting in (time_zone_setting, phone_region_setting):
        try:
            setting(config)
        except MappingConfigError as error:
            errors.append(str(error))
    return errors


def event_name_warnings(config: Mapping[str, Any]) -> list[str]:
    """Configured event names that are no standard event of Meta's but look like one
    (`purchase`, `Purchse`, `add_to_cart`): Meta takes each as a custom event, and the rules
    of the standard one (a Purchase's value and currency) are not checked."""
    try:
        streams = streams_of(config)
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
                f"event, not as the standard {meant!r}."
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

    An entry matches a stream of exactly its name first, as in :func:`find_stream_config`:
    ``sales[eu]`` is the stream ``sales[eu]`` even though it also reads as a pattern.
    """
    seen = set(streams_seen)
    return [
        entry
        for entry in streams_of(config)
        if entry not in seen
        and not (_is_pattern(entry) and any(fnmatch.fnmatchcase(s, entry) for s in seen))
    ]


def closest_stream_entry(config: Mapping[str, Any], stream_name: str) -> str | None:
    """The ``streams`` entry most like an unmapped stream's name: probably meant for it."""
    names = [entry for entry in streams_of(config) if not _is_pattern(entry)]
    # the table's name alone, where the tap names streams <schema>-<table> (tap-postgres)
    tables = [name for name in names if stream_name.endswith((f"-{name}", f".{name}"))]
    close = tables or difflib.get_close_matches(stream_name, names, n=1, cutoff=0.8)
    return close[0] if close else None
