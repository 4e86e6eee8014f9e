"""The mapper of a stream: its records → Conversions API events.

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

For each set of columns its records come with, the mapper makes a plan once (which sources feed
which field, compiled to straight-line code), and keeps the hashed user_data of customers who
come back (the identity memo).
"""

from __future__ import annotations

import datetime as dt
import json
import marshal
import operator
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from target_meta_capi.capi._words import shown_json
from target_meta_capi.capi.normalize import (
    HASHED_KEYS,
    REASON_INVALID,
    UNHASHED_KEYS,
    DroppedValue,
    normalize_hashed_values,
    normalize_user_data,
)
from target_meta_capi.capi.privacy import MASK
from target_meta_capi.capi.rules import MUST_BE_HASHED_KEYS
from target_meta_capi.mapping.aliases import (
    ALIAS_PATHS_BY_COLUMN,
    ALIASES,
    IDENTIFYING_COLUMNS,
    OBJECT_ALIASES,
    USER_DATA_ALIAS_COLUMNS,
)
from target_meta_capi.mapping.compiled import (
    COLUMN,
    COLUMNS,
    LITERAL,
    NESTED_COLUMN,
    BuildEvent,
    FillPaths,
    Source,
    compile_builder,
    compile_paths,
    dig,
    with_identity,
)
from target_meta_capi.mapping.event_id import deterministic_event_id
from target_meta_capi.mapping.parameters import OBJECT_KEYS, Path
from target_meta_capi.mapping.result import (
    NO_EVENT_NAME,
    NO_EVENT_TIME,
    MappedEvent,
    MappingError,
)
from target_meta_capi.mapping.streams_setting import (
    StreamMapping,
    each_column,
    find_stream_config,
    phone_region_setting,
    streams_of,
    time_zone_setting,
)
from target_meta_capi.mapping.values import (
    NO_VALUE,
    OBJECT_CONVERTERS,
    TOO_DEEP,
    TOP_LEVEL_CONVERTERS,
    is_empty,
    loads_if_text,
    parse_event_time,
    to_json,
    to_text,
)

_METADATA_PREFIX = "_sdc_"
# Set by log-based taps (tap-postgres LOG_BASED, MySQL binlog) on a RECORD of a deleted row.
DELETED_AT = "_sdc_deleted_at"
_MAX_CACHED_PLANS = 256
# columns met whose bearing on plans is remembered (a SCHEMA's, unless records stray outside it)
_MAX_KNOWN_COLUMNS = 4096
# Customers repeat: their hashed user_data, keyed on the raw values of the columns it comes from
# (~1.3 KB each with its key: at most ~11 MB per process, over all its streams' mappers).
_MAX_CACHED_IDENTITIES = 1 << 13
# The memo is used while at least this share of customers come back within its size; whether
# they do is judged over this many customers (see EventMapper._keep).
_MIN_RETURNING_SHARE = 0.05
_CUSTOMERS_JUDGED = 1 << 10


_Identity = tuple[Mapping[str, Any], tuple[DroppedValue, ...]]  # shared: copied, never changed
_IDENTITY_VALUE_TYPES = frozenset({str, type(None), dt.date})


class _IdentityMemo(dict[Any, "_Identity | None"]):
    """A plan's memo: the raw values of its identity columns → the hashed user_data and dropped
    values they give, or None when those values take the general path.

    Keyed by the values' marshal bytes, not their tuple: ~180 bytes for a customer of ten
    columns, where the tuple keeps the first record's ten strings alive (~700 bytes; in one
    process, 8,000 customers grew the RSS by 14.2 MB instead of 16.5), for ≈ 0.4 µs more per
    record. Equal bytes are equal values of equal types. Dates (the SDK's date parsing: a date
    of birth) cannot be marshalled: once a plan meets one, its keys hold the dates apart (see
    _dates_apart; ≈ 0.4 µs more). A value of another type marshal refuses, which JSON decoding
    never gives, makes the plan key by the tuple from then on, rather than pay for the refusal
    on every record.
    """

    __slots__ = ("_by_marshal", "_date_indexes")

    def __init__(self) -> None:
        super().__init__()
        self._by_marshal = True
        self._date_indexes: tuple[int, ...] = ()  # where the plan's values have held dates

    def key_of(self, values: tuple[Any, ...]) -> bytes | tuple[Any, ...]:
        if not self._by_marshal:
            return values
        try:
            if self._date_indexes:
                return marshal.dumps(_dates_apart(values, self._date_indexes), 2)
            return marshal.dumps(values, 2)  # version 2: no back-references, one encoding
        except ValueError:
            dates = {index for index, value in enumerate(values) if isinstance(value, dt.date)}
            if dates <= set(self._date_indexes):  # refused for another value than a date
                self._by_marshal = False
                return values
            self._date_indexes = tuple(sorted(dates.union(self._date_indexes)))
            return self.key_of(values)


def _dates_apart(
    values: tuple[Any, ...], date_indexes: tuple[int, ...]
) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """The values with the dates at these indexes replaced by None, and those dates apart: a
    date as (index, its ordinal), a datetime as (index, its ISO text, offset included: equal
    datetimes at different offsets may be different days of birth). marshal takes these, and
    no key of values without dates (a tuple of texts and Nones) is one of these two lists."""
    parts = list(values)
    dates: list[tuple[Any, ...]] = []
    for index in date_indexes:
        value = parts[index]
        if isinstance(value, dt.date):
            parts[index] = None
            dates.append(
                (index, value.toordinal())
                if value.__class__ is dt.date
                else (index, value.__class__.__name__, value.isoformat())
            )
    return parts, dates


@dataclass(frozen=True, slots=True)
class _IdentitySource:
    """Where a hashed user_data key of the identity memo takes its value from."""

    key: str
    value_indexes: tuple[int, ...]  # into the memo key, tried in order: first non-empty wins
    fallback: Any  # a non-empty literal when no column has a value, or NO_VALUE
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
    identities: _IdentityMemo = field(default_factory=_IdentityMemo)
    identity_values: Callable[[Mapping[str, Any]], tuple[Any, ...]] = tuple
    # the whole event from a memoized identity, when the plan allows (see compile_builder)
    build: BuildEvent | None = None
    # the columns `fields` reads nested values from (customer.email: customer), each with the
    # keys of the fields reading from it, counted as dropped when the column holds no object
    nested_columns: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # the columns some step above the sixth (unmapped_columns_to_custom_data) uses
    consumed: frozenset[str] = frozenset()
    # the paths some column, value inside one, constant or default feeds (whole objects not)
    fed_paths: frozenset[Path] = frozenset()


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
        if value.__class__ is dict or is_empty(value):  # the common cases, first
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


def _identity_source(
    key: str, path_sources: tuple[Source, ...], columns: tuple[str, ...], precedes_unhashed: bool
) -> _IdentitySource:
    """The sources of a hashed key, as positions in the memo key up to its first literal."""
    indexes: list[int] = []
    fallback: Any = NO_VALUE
    for kind, payload in path_sources:
        if kind == COLUMN:
            indexes.append(columns.index(payload))
        elif not is_empty(payload):  # a literal: the sources after it are never read
            fallback = payload
            break
    return _IdentitySource(key, tuple(indexes), fallback, precedes_unhashed)


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
        phone_region: str | None = None,
        phone_country_from_country: bool = False,
        schema_properties: Collection[str] | None = None,
        time_zone: dt.tzinfo | None = None,
    ) -> None:
        self.stream_name = stream_name
        self.key_properties = tuple(key_properties)
        self.mapping = mapping
        self.hash_external_id = hash_external_id
        # the country of phone numbers written without + or 00 (ISO alpha-2), if any
        self.phone_region = phone_region
        # such a number is read in its event's own user_data.country, when that names one
        self.phone_country_from_country = phone_country_from_country
        # Every user_data value of these keys in map()'s events is SHA-256 hex: all of them go
        # through normalize_user_data, which hashes or drops what is not a hash already.
        self.hashed_user_data_keys: frozenset[str] = (
            HASHED_KEYS if hash_external_id else MUST_BE_HASHED_KEYS
        )
        # times without an offset (a `timestamp without time zone` column) are in `time_zone`
        self.parse_event_time: Callable[[Any], int] = parse_event_time
        self._object_converters = OBJECT_CONVERTERS
        if time_zone is not None:
            self.parse_event_time = partial(parse_event_time, zone=time_zone)
            self._object_converters = {
                key: {
                    name: self.parse_event_time if converter is parse_event_time else converter
                    for name, converter in converters.items()
                }
                for key, converters in OBJECT_CONVERTERS.items()
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
            for column in dict.fromkeys(each_column(columns)):
                if known and not _among(column, known):
                    unknown.setdefault(column, []).append(".".join(path))
        self.unknown_columns: dict[str, tuple[str, ...]] = {
            column: tuple(paths) for column, paths in unknown.items()
        }
        # columns named in `fields`: used as mapped there, never also through their aliases
        self._mapped_columns = frozenset(
            column for columns in mapping.fields.values() for column in each_column(columns)
        )
        user_data_columns = {
            column
            for path, columns in mapping.fields.items()
            if path[0] == "user_data"
            for column in each_column(columns)
        }
        # Key properties that carry customer information: never shown in errors or dead letters.
        self.redacted_keys = frozenset(
            key
            for key in self.key_properties
            if key in user_data_columns or key.lower() in USER_DATA_ALIAS_COLUMNS
        )
        # `fields` outside user_data that send customer information unhashed, as mapped: a
        # column also mapped into user_data, or named like an e-mail, phone, name, birth date,
        # IP address or user agent (its last part, for a value nested in an object column).
        # Worth a warning by the caller, and never shown in dead letters.
        self.unhashed_customer_fields: tuple[tuple[Path, str], ...] = tuple(
            (path, column)
            for path, columns in mapping.fields.items()
            if path[0] != "user_data"
            for column in each_column(columns)
            if column in user_data_columns
            or column.rsplit(".", 1)[-1].lower() in IDENTIFYING_COLUMNS
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
            column for column in each_column(self.mapping.fields.get(path, ())) if column in present
        )
        aliased = tuple(
            column
            for column in present
            if column not in self._mapped_columns
            and any(alias == path for alias, _ in ALIAS_PATHS_BY_COLUMN.get(column.lower(), ()))
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

    def unsourced_parameters(self, columns: Iterable[str]) -> tuple[str, ...]:
        """Of the parameters every event needs and that no default gives (event_time,
        event_name, action_source), those no column of `columns` (a SCHEMA's), no value inside
        one and no constant can give: every record of the stream would be refused for want of
        them."""
        present = tuple(columns)
        return tuple(
            name
            for name in ("event_time", "event_name", "action_source")
            # a constant given empty (null, "": a Meltano $VAR left unset) gives none
            if is_empty(self._literals.get((name,)))
            and (name,) not in self._defaults
            and not self.columns_feeding((name,), present)
            and not any(
                _among(column, present)
                for column in each_column(self.mapping.fields.get((name,), ()))
            )
        )

    def may_give(self, path: Path, columns: Iterable[str]) -> bool:
        """Whether a record with `columns` (a SCHEMA's) may have a value at `path`
        (("user_data", "country")): something feeds it, or a whole object of its first key
        (a `user_data` column) may hold it."""
        plan = self._plan_for(tuple(columns))
        return path in plan.fed_paths or any(key == path[0] for _, key in plan.objects)

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
            if lower in OBJECT_ALIASES:
                alias_objects.setdefault(OBJECT_ALIASES[lower], []).append((COLUMN, column))
                consumed.add(column)
            for path, rank in ALIAS_PATHS_BY_COLUMN.get(lower, ()):
                if path[0] not in OBJECT_KEYS or len(path) > 1:
                    add(path, 2000 + rank, (COLUMN, column))
                    consumed.add(column)
        objects: list[tuple[Source, str]] = [
            (source, key) for key, group in alias_objects.items() for source in reversed(group)
        ]
        for path, value in self._literals.items():
            add(path, 1000, (LITERAL, value))
        for path, value in self._defaults.items():
            add(path, 3000, (LITERAL, value))
        nested: dict[str, list[str]] = {}  # column → keys of the fields reading in it
        for path, mapped in self.mapping.fields.items():
            column_sources: list[Source] = []
            for column in each_column(mapped):
                if column in present:
                    column_sources.append((COLUMN, column))
                    consumed.add(column)
                elif "." in column and (head := column.split(".", 1)[0]) in present:
                    column_sources.append((NESTED_COLUMN, tuple(column.split("."))))
                    consumed.add(head)
                    nested.setdefault(head, []).append(_dropped_key(path))
            if not column_sources:
                continue
            source: Source = (
                column_sources[0] if isinstance(mapped, str) else (COLUMNS, tuple(column_sources))
            )
            if len(path) == 1 and path[0] in OBJECT_KEYS:
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
            build = compile_builder(paths, hashed_paths, self)
        return _Plan(
            objects=tuple(objects),
            extra_columns=extra,
            fill_paths=compile_paths(paths),
            fill_other_paths=compile_paths(identity_plan.pop("other_paths", ())),
            build=build,
            nested_columns=tuple(
                (head, tuple(dict.fromkeys(keys))) for head, keys in nested.items()
            ),
            consumed=frozenset(consumed),
            fed_paths=frozenset(sources),
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
        return lower in OBJECT_ALIASES or lower in ALIAS_PATHS_BY_COLUMN

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
                if kind == COLUMN
            )
        )
        usable = (
            len(columns) >= 2
            and not any(key == "user_data" for _, key in objects)
            and all(
                kind in (COLUMN, LITERAL)
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
        key = plan.identities.key_of(values)
        try:
            identity = plan.identities[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value (a list …) in a tuple key
            return None
        else:
            self._identity_hits += 1
            return identity
        # Kept only for types whose equal values normalize alike (1, 1.0 and True are equal
        # in a tuple key). Looking up needs no such check: nothing but a str, None or a date
        # equals a str, None or a date, short of subclasses that neither JSON decoding nor the
        # SDK's date parsing produce.
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
                if value is NO_VALUE:
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
            normalized = normalize_hashed_values(
                winners,
                hash_external_id=self.hash_external_id,
                phone_country_code=self.phone_region,
                phone_country_from_country=self.phone_country_from_country,
            )
            identity = (normalized.user_data, tuple(normalized.dropped))
        self._keep(plan, key, identity)
        return identity

    def _keep(self, plan: _Plan, key: bytes | tuple[Any, ...], identity: _Identity | None) -> None:
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
                plan.identities[key] = identity
                self._identities_kept += 1
                room.kept += 1
                room.mappers.add(self)
            return
        recent = room.recent
        customer = hash((id(self), key))
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
            value = values[payload] if kind == COLUMN else dig(values, payload)
            if is_empty(value):
                continue
            try:
                value = loads_if_text(value, "object")
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
                if not is_empty(value) and is_empty(custom.get(column)):
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
            raise self._error(record, "event_name", NO_EVENT_NAME)
        try:
            event_name = to_text(event_name)
        except ValueError as error:
            raise self._error(record, "event_name", str(error)) from None

        raw_time = event.pop("event_time", None)
        if raw_time is None:
            raise self._no_event_time_error(record)
        try:
            event_time = self.parse_event_time(raw_time)
        except (ValueError, ArithmeticError) as error:
            raise self._event_time_error(record, raw_time, error) from None

        raw_id = event.pop("event_id", None)
        event_id = ""
        if raw_id is not None:
            try:
                event_id = to_text(raw_id)
            except ValueError as error:
                raise self._error(record, "event_id", str(error)) from None
        if not event_id:
            event_id = self._derived_event_id(record, event_name)

        raw_user_data = event.pop("user_data", None) or {}
        if identity is None:
            normalized = normalize_user_data(
                raw_user_data,
                hash_external_id=self.hash_external_id,
                phone_country_code=self.phone_region,
                phone_country_from_country=self.phone_country_from_country,
            )
            user_data, dropped = normalized.user_data, normalized.dropped
        else:
            user_data, dropped = with_identity(*identity, raw_user_data, self)
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
                result[key] = TOP_LEVEL_CONVERTERS.get(key, to_json)(value)
            except (ValueError, ArithmeticError) as error:
                raise self._error(record, key, str(error)) from None
            except RecursionError:
                raise self._error(record, key, TOO_DEEP) from None
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
            if is_empty(item):  # as a mapped field's blank column: no value (a CSV's "")
                continue
            try:
                item = converters.get(name, to_json)(item)
            except (ValueError, ArithmeticError) as error:
                raise self._error(record, f"{key}.{name}", str(error)) from None
            except RecursionError:
                raise self._error(record, f"{key}.{name}", TOO_DEEP) from None
            if item is not NO_VALUE:
                converted[name] = item
        return converted

    def _no_event_time_error(self, record: Mapping[str, Any]) -> MappingError:
        """A record without an event time: the columns that would have given one, empty in
        this record (a null created_at), or, when no column would, that one must be mapped."""
        mapped = each_column(self.mapping.fields.get(("event_time",), ()))
        aliases = [
            column
            for column in record
            if column.lower() in ALIASES["event_time"] and column not in self._mapped_columns
        ]
        columns = ", ".join(map(repr, [*mapped, *aliases]))
        if not columns:
            return self._error(record, "event_time", NO_EVENT_TIME)
        return self._error(
            record,
            "event_time",
            f"no event time in this record's {columns} (null, blank or missing)",
        )

    def _event_time_error(
        self, record: Mapping[str, Any], raw_time: Any, error: Exception
    ) -> MappingError:
        # the kind of value, never the value: a wrongly mapped column may hold an e-mail
        shown = "the text" if isinstance(raw_time, str) else "the value"
        return self._error(record, "event_time", f"{shown} {error}")

    def _derived_event_id(self, record: Mapping[str, Any], event_name: str) -> str:
        try:
            return deterministic_event_id(self.stream_name, self._row_identity(record), event_name)
        except RecursionError:  # a row without key properties is its own identity
            raise self._error(
                record,
                "event_id",
                f"the row {TOO_DEEP} to derive an event_id from it (map an event_id column, "
                "or give the stream key properties)",
            ) from None

    def _row_identity(self, record: Mapping[str, Any]) -> Any:
        if self.key_properties:
            values = [record.get(key) for key in self.key_properties]
            # a blank key names no row, as a null one: rows sharing it would share an id,
            # and Meta would keep one of them
            if not any(is_empty(value) for value in values):
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
    """A record's key (`EventMapper.record_key`) for a message: `order_id=7`, `sku='A-1'`,
    `id=12.5` (as the input's JSON wrote it, not Decimal('12.5')), masked values as the mask."""
    return ", ".join(
        f"{name}={value}" if value is MASK else f"{name}={shown_json(value)}"
        for name, value in key.items()
    )


def _among(column: str, columns: Collection[str]) -> bool:
    """Whether a column `fields` names is one of `columns`, or a value inside one of them
    (`order.created_at` in an object or JSON column `order`)."""
    return column in columns or column.split(".", 1)[0] in columns


def _has_recognisable_fields(schema_properties: Collection[str], config: Mapping) -> bool:
    """Customer information, an event name and an event time can be found without a
    `streams` entry."""
    columns = {name.lower() for name in schema_properties}
    has_customer_information = "user_data" in columns or bool(columns & USER_DATA_ALIAS_COLUMNS)
    has_event_name = "event_name" in columns or bool(config.get("default_event_name"))
    return has_customer_information and has_event_name and "event_time" in columns


def build_event_mapper(
    stream_name: str,
    key_properties: Collection[str] | None,
    config: Mapping[str, Any],
    schema_properties: Collection[str] | None = None,
) -> EventMapper | None:
    """The mapper for one stream, or None when the stream cannot yield events (skip it).

    A stream listed in ``streams`` is always mapped. Any other stream is mapped only when its
    schema has customer information (a ``user_data`` column or a user_data alias), an event
    name (an ``event_name`` column or ``default_event_name``) and an ``event_time`` column.
    Raises MappingConfigError for an unusable ``streams`` entry. ``schema_properties``: the
    columns of the stream's SCHEMA; None when there is no SCHEMA (then every column may go to
    custom_data with ``unmapped_columns_to_custom_data``).
    """
    stream_config = find_stream_config(streams_of(config), stream_name)
    setting_phone_region = phone_region_setting(config)
    if stream_config is None:
        if not _has_recognisable_fields(schema_properties or (), config):
            return None
        mapping = StreamMapping()
    else:
        mapping = StreamMapping.from_config(
            stream_name, stream_config, setting_phone_region=setting_phone_region
        )
    return EventMapper(
        stream_name,
        key_properties or (),
        mapping,
        default_event_name=config.get("default_event_name"),
        default_action_source=config.get("default_action_source"),
        hash_external_id=config.get("hash_external_id") is not False,
        phone_region=(
            mapping.phone_region if mapping.phone_region is not None else setting_phone_region
        ),
        phone_country_from_country=config.get("phone_country_from_country") is True,
        schema_properties=schema_properties,
        time_zone=(
            mapping.time_zone if mapping.time_zone is not None else time_zone_setting(config)
        ),
    )


def reports_deleted(record: dict[str, Any]) -> bool:
    """Whether a log-based tap reports the record's row deleted: a time in `_sdc_deleted_at`.
    Blank text is none, as null is: what a tap reading files writes for an empty cell."""
    deleted_at = record.get(DELETED_AT)
    return deleted_at is not None and not is_empty(deleted_at)
