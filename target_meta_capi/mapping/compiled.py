"""Where a field takes its value from (a column, a value nested in one, several columns, a
literal), and the straight-line Python generated once per plan to fill an event from those
sources: ``fill`` (each path's first non-empty value) and ``build`` (the whole finished event,
for a plan whose hashed user_data comes from the identity memo)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from target_meta_capi.capi.normalize import DroppedValue, normalize_user_data
from target_meta_capi.mapping.parameters import OBJECT_KEYS, Path
from target_meta_capi.mapping.result import NO_EVENT_NAME, MappedEvent
from target_meta_capi.mapping.values import (
    CONVERTERS_LEAVING_OUT,
    CUSTOM_DATA_CONVERTERS,
    NO_VALUE,
    TEXT_TYPE,
    TOO_DEEP,
    TOP_LEVEL_CONVERTERS,
    is_empty,
    to_json,
    to_text,
)

if TYPE_CHECKING:
    from target_meta_capi.mapping.mapper import EventMapper

# COLUMNS: several column sources (COLUMN or NESTED_COLUMN), read as the list of their
# non-empty values
COLUMN, NESTED_COLUMN, LITERAL, COLUMNS = 0, 1, 2, 3
Source = tuple[int, Any]


def dig(record: Mapping[str, Any], parts: Path) -> Any:
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
        value = record[payload] if kind == COLUMN else dig(record, payload)
        if isinstance(value, (list, tuple)):
            values.extend(item for item in value if not is_empty(item))
        elif not is_empty(value):
            values.append(value)
    return values or None


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


def with_identity(
    hashed: Mapping[str, Any],
    dropped_hashed: tuple[DroppedValue, ...],
    unhashed: dict[str, Any],
    mapper: EventMapper,
) -> tuple[dict[str, Any], list[DroppedValue]]:
    """What normalize_user_data gives for the memoized hashed keys and the unhashed ones."""
    if TEXT_TYPE.issuperset(map(type, unhashed.values())):
        return {**hashed, **unhashed}, list(dropped_hashed)  # non-empty texts, kept as they are
    rest = normalize_user_data(
        unhashed,
        hash_external_id=mapper.hash_external_id,
        phone_country_code=mapper.phone_region,
        phone_country_from_country=mapper.phone_country_from_country,
    )
    return {**hashed, **rest.user_data}, [*dropped_hashed, *rest.dropped]


class _Code:
    """Python source being generated for one plan, and the constants it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {
            "dig": dig,
            "_gather": _gather,
            "_put": _put,
            "NO_VALUE": NO_VALUE,
        }

    def literal(self, value: Any) -> str:
        if value.__class__ is str:
            return repr(value)  # a str's repr is always a valid Python literal
        name = f"_constant_{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def first_value(self, path_sources: tuple[Source, ...], indent: str) -> None:
        """Lines setting `value` to the first non-empty value of the sources, or NO_VALUE."""
        for kind, payload in path_sources:
            if kind == COLUMN:
                read = f"record[{self.literal(payload)}]"
            elif kind == COLUMNS:
                read = f"_gather(record, {self.literal(payload)})"
            elif kind == LITERAL:
                read = self.literal(payload)
            else:
                read = f"dig(record, {self.literal(payload)})"
            self.lines.append(f"{indent}value = {read}")
            self.lines.append(
                f"{indent}if value is None or (isinstance(value, str) and not value.strip()):"
            )
            indent += "    "
        self.lines.append(f"{indent}value = NO_VALUE")

    def function(self, name: str) -> Any:
        exec(compile("\n".join(self.lines), "<event mapping>", "exec"), self.namespace)
        return self.namespace[name]


def compile_paths(paths: tuple[tuple[Path, tuple[Source, ...]], ...]) -> FillPaths:
    """fill(record, event): each path gets the first non-empty value of its sources.

    Generated straight-line code, once per set of columns: the loop it replaces cost more in
    dispatch (source kinds, path lengths) than in the work itself.
    """
    code = _Code()
    code.lines.append("def fill(record, event):")
    for path, path_sources in paths:
        code.first_value(path_sources, "    ")
        code.lines.append("    if value is not NO_VALUE:")
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


def compile_builder(
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
        if len(path) == 1 and path[0] in OBJECT_KEYS:  # a constant object: _finish merges it
            return None
        if path not in hashed_paths:
            by_key.setdefault(path[0], []).append(path)

    code = _Code()
    code.namespace.update(
        _error=mapper._error,
        _time_error=mapper._event_time_error,
        _no_event_time=mapper._no_event_time_error,
        _derived_event_id=mapper._derived_event_id,
        with_identity=with_identity,
        _parse_event_time=mapper.parse_event_time,
        to_text=to_text,
        MappedEvent=MappedEvent,
        mapper=mapper,
    )
    lines = code.lines
    lines.append("def build(record, hashed, dropped_hashed):")

    def convert(path: Path, converter: Callable[[Any], Any], target: str, field: str) -> None:
        """Lines converting the path's first value into `target`, or leaving it unset."""
        path_sources = by_path[path]
        first_kind, first_payload = path_sources[0]
        if first_kind == LITERAL and not is_empty(first_payload):
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
                "    if value is not NO_VALUE:",
                "        try:",
                f"            converted = {code.literal(converter)}(value)",
                "        except (ValueError, ArithmeticError) as error:",
                f"            raise _error(record, {field!r}, str(error)) from None",
                # as _finish: a row's value like any other, not a crash of the whole run
                "        except RecursionError:",
                f"            raise _error(record, {field!r}, {TOO_DEEP!r}) from None",
            ]
        )
        if converter in CONVERTERS_LEAVING_OUT:
            lines.extend(
                ["        if converted is not NO_VALUE:", f"            {target} = converted"]
            )
        else:
            lines.append(f"        {target} = converted")

    lines.append("    event_name = NO_VALUE")
    convert(("event_name",), to_text, "event_name", "event_name")
    lines += [
        "    if event_name is NO_VALUE:",
        f"        raise _error(record, 'event_name', {NO_EVENT_NAME!r})",
    ]
    code.first_value(by_path[("event_time",)], "    ")
    lines += [
        "    if value is NO_VALUE:",
        "        raise _no_event_time(record)",
        "    try:",
        "        event_time = _parse_event_time(value)",
        "    except (ValueError, ArithmeticError) as error:",
        "        raise _time_error(record, value, error) from None",
        "    event_id = ''",
    ]
    if ("event_id",) in by_path:
        convert(("event_id",), to_text, "event_id", "event_id")
    lines += [
        "    if not event_id:",
        "        event_id = _derived_event_id(record, event_name)",
        "    unhashed = {}",
    ]
    for path in by_key.get("user_data", ()):
        code.first_value(by_path[path], "    ")
        lines += [
            "    if value is not NO_VALUE:",
            f"        unhashed[{code.literal(path[1])}] = value",
        ]
    lines += [
        "    user_data, dropped = with_identity(hashed, dropped_hashed, unhashed, mapper)",
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
                converter = CUSTOM_DATA_CONVERTERS.get(name, to_json)
                convert(path, converter, f"custom_data[{name!r}]", f"custom_data.{name}")
            lines += ["    if custom_data:", "        event['custom_data'] = custom_data"]
        else:
            converter = TOP_LEVEL_CONVERTERS.get(key, to_json)
            convert((key,), converter, f"event[{key!r}]", key)
    lines.append("    return MappedEvent(event, dropped, event_id)")
    return code.function("build")
