"""Fast per-record schema work for the sink: a compiled validator and precomputed date parsing.

The singer-sdk spends most of a target's CPU on two things that do not change from one record
to the next (see docs/performance.md): it walks the JSON schema with `jsonschema` for every
record, and it looks up every property's schema again for every record to find the date-like
ones. Here the schema is compiled once (fastjsonschema) and the date-like properties are listed
once per schema. The behaviour the SDK documents is kept: an invalid schema raises
`InvalidJSONSchema`, an invalid record `InvalidRecord`, `validate_records: false` turns
validation off, bad timestamps follow `datetime_error_treatment`. Two things it gets wrong for
taps written with singer-python (pipelinewise, Stitch) are read as those taps mean them: their
schemas are JSON Schema Draft 4, and their `multipleOf` is checked exactly on the decimals the
input's numbers are read as. fastjsonschema reads Drafts 4 to 7 only: a schema it would read
otherwise than its draft (2019-09 or 2020-12) says is checked by jsonschema.

Use: `class MySink(FastRecordParsingMixin, BatchSink)`.
"""

from __future__ import annotations

import contextlib
import decimal
import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import fastjsonschema
import jsonschema  # type: ignore[import-untyped]
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import specification_with
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.helpers._compat import (
    date_fromisoformat,
    datetime_fromisoformat,
    time_fromisoformat,
)
from singer_sdk.helpers._typing import (
    get_datelike_property_type,
    handle_invalid_timestamp_in_record,
)
from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_meta_capi.capi._words import shown_json
from target_meta_capi.mapping.values import datetime_from_text

_PARSERS: dict[str, Callable[[str], Any]] = {
    "date-time": datetime_fromisoformat,
    "date": date_fromisoformat,
    "time": time_fromisoformat,
}


# Python classes a JSON value of each schema type is decoded to that fastjsonschema accepts
# for it: a subset of what it accepts (integral floats for "integer", tuples for "array" are
# left to it), so a record whose values all have these exact classes is valid.
_CLASSES_OF_TYPE: dict[str, frozenset[type]] = {
    "string": frozenset({str}),
    "null": frozenset({type(None)}),
    "integer": frozenset({int}),
    "number": frozenset({int, float, Decimal}),
    "boolean": frozenset({bool}),
    "array": frozenset({list}),
    "object": frozenset({dict}),
}
# Keywords that neither constrain a value nor change it (fastjsonschema fills in "default"s).
_ANNOTATIONS = frozenset({"description", "title", "format"})  # formats are not checked


def _classes_for(property_schema: Any) -> frozenset[type] | None:
    """The classes a flat property schema allows, or None when it is not flat."""
    if not isinstance(property_schema, dict) or not property_schema.keys() <= {
        "type",
        *_ANNOTATIONS,
    }:
        return None
    types = property_schema.get("type")
    names = [types] if isinstance(types, str) else types
    if (
        not isinstance(names, list)
        or not names
        or not all(name in _CLASSES_OF_TYPE for name in names)
    ):
        return None
    return frozenset().union(*(_CLASSES_OF_TYPE[name] for name in names))


class FlatTypeCheck:
    """A quick check that a record is valid against a schema whose properties only name types.

    It decides "valid" only for records it can vouch for: every value of a schema property
    has exactly one of the classes its type allows (strings, None, ints, floats, Decimals,
    bools, flat lists, dicts of untyped objects), and the required keys are present. Anything
    else gets an answer of False, and the full validator decides, with its own message.
    """

    #: Verdicts kept per record shape (columns and value classes); a stream has few shapes.
    max_shapes = 1024

    def __init__(
        self,
        classes: dict[str, frozenset[type]],
        item_classes: dict[str, frozenset[type]],
        required: frozenset[str],
    ) -> None:
        self._classes = classes
        self._item_classes = item_classes
        self._required = required
        # shape → the list columns whose items still need a look, or None: not vouched for
        self._verdicts: dict[tuple[Any, ...], tuple[str, ...] | None] = {}

    @classmethod
    def for_schema(cls, schema: Mapping[str, Any]) -> FlatTypeCheck | None:
        """The check for `schema`, or None when the schema asks for more than types."""
        # singer-sdk taps name their draft (`$schema`): its types mean the same in every draft
        if not schema.keys() <= {
            "type",
            "properties",
            "required",
            "description",
            "title",
            "$schema",
        }:
            return None
        if schema.get("type", "object") not in ("object", ["object"]):
            return None
        # checked against its draft's metaschema (schema_dialect): properties is an object,
        # required a list of names
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        classes: dict[str, frozenset[type]] = {}
        item_classes: dict[str, frozenset[type]] = {}
        for name, property_schema in properties.items():
            if not isinstance(property_schema, dict):
                return None
            if "items" in property_schema:
                allowed_items = _classes_for(property_schema["items"])
                if allowed_items is None or allowed_items & {list, dict}:
                    return None
                item_classes[name] = allowed_items
                property_schema = {k: v for k, v in property_schema.items() if k != "items"}
            allowed = _classes_for(property_schema)
            if allowed is None:
                if property_schema.keys() <= _ANNOTATIONS:
                    continue  # no type: any value is valid
                return None
            classes[name] = allowed
        return cls(classes, item_classes, frozenset(required))

    def __call__(self, record: dict[str, Any]) -> bool:
        shape = (tuple(record), *map(type, record.values()))
        try:
            list_columns = self._verdicts[shape]
        except KeyError:
            if len(self._verdicts) >= self.max_shapes:
                self._verdicts.clear()
            list_columns = self._verdicts[shape] = self._verdict(record)
        if list_columns is None:
            return False
        for name in list_columns:
            allowed_items = self._item_classes[name]
            for item in record[name]:
                if item.__class__ not in allowed_items:
                    return False
        return True

    def _verdict(self, record: dict[str, Any]) -> tuple[str, ...] | None:
        """For records of this one's shape: None when not vouched for, else the list columns
        whose items must still be checked."""
        classes = self._classes
        list_columns = []
        for name, value in record.items():
            allowed = classes.get(name)
            if allowed is None:  # not in the schema, or any value allowed
                continue
            if value.__class__ not in allowed:
                return None
            if value.__class__ is list and name in self._item_classes:
                list_columns.append(name)
        if not self._required <= record.keys():
            return None
        return tuple(list_columns)


_DRAFT_4 = "http://json-schema.org/draft-04/schema#"
_INTEGRAL_LIMIT = Decimal("1E+100")
# Exact for a quotient of up to 1,000 digits: any value of a numeric(p, s) column (p <= 1000 in
# PostgreSQL), the columns taps give a multipleOf for. A quotient of more digits (1E+2000 by
# 0.01) is no multiple.
_EXACT = decimal.Context(prec=1000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def schema_dialect(schema: Mapping[str, Any]) -> tuple[type[Any], dict[str, Any]]:
    """The JSON Schema draft a stream's SCHEMA is read in, and the schema saying so.

    A schema naming its draft (`$schema`) is read in that one. One naming none is read in Draft
    2020-12, as the SDK reads every schema, unless only Draft 4 accepts it: singer-python taps
    write Draft 4 without naming it (pipelinewise-tap-postgres gives every numeric column
    `exclusiveMaximum: true`, which Draft 2020-12 refuses as an invalid schema). Raises
    InvalidJSONSchema, with the SDK's message, for a schema no draft accepts.
    """
    dialect: type[Any] | None = None
    if isinstance(schema.get("$schema"), str):
        dialect = jsonschema.validators.validator_for(dict(schema), default=None)
    if dialect is None:
        # each check against a metaschema takes milliseconds: a valid schema is checked
        # against one only (it was checked twice, in every SCHEMA naming no draft)
        dialect = jsonschema.Draft202012Validator
        error = _metaschema_error(dialect, schema)
        if error is not None and _metaschema_error(jsonschema.Draft4Validator, schema) is None:
            return jsonschema.Draft4Validator, {**schema, "$schema": _DRAFT_4}
    else:
        error = _metaschema_error(dialect, schema)
    if error is not None:
        # jsonschema's own text quotes the part of the metaschema broken, as Python prints it
        # ({'uniqueItems': True}), over a dozen lines: the place in the SCHEMA is what helps
        place = ".".join(str(part) for part in error.path) or "(the schema itself)"
        found = error.message
        if found.startswith(repr(error.instance)):  # the value, as its JSON wrote it
            found = shown_json(error.instance) + found[len(repr(error.instance)) :]
        raise InvalidJSONSchema(
            f"the stream's SCHEMA is not a valid JSON Schema at {place}: {found} (the tap's "
            "schema or catalog must be fixed)"
        ) from error
    return dialect, dict(schema)


def _metaschema_error(
    dialect: type[Any], schema: Mapping[str, Any]
) -> jsonschema.SchemaError | None:
    """What the draft's metaschema finds wrong with the schema (its formats checked too, a
    regular expression among them), or None."""
    try:
        dialect.check_schema(schema)
    except jsonschema.SchemaError as error:
        return error
    return None


# Keywords of Drafts 2019-09 and 2020-12 that fastjsonschema (Drafts 4 to 7) does not know, and
# `dependencies`, which they dropped and it still checks
_PAST_DRAFT_7 = frozenset(
    {
        "prefixItems",
        "dependentRequired",
        "dependentSchemas",
        "unevaluatedProperties",
        "unevaluatedItems",
        "minContains",
        "maxContains",
        "$dynamicRef",
        "$recursiveRef",
        "dependencies",
    }
)
# Keywords whose value is an object of schemas by name: the names are no keywords
_SCHEMAS_BY_NAME = frozenset({"properties", "patternProperties", "$defs", "definitions"})
# Keywords whose value is data, not a schema
_DATA = frozenset({"enum", "const", "default", "examples"})


def _subschemas(schema: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Each object in `schema` that is a schema (itself first), with the keys leading to it."""
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from _subschemas(item, (*path, str(index)))
        return
    if not isinstance(schema, dict):
        return
    yield path, schema
    for keyword, value in schema.items():
        if keyword in _DATA:
            continue
        if keyword in _SCHEMAS_BY_NAME and isinstance(value, dict):
            for name, named in value.items():
                yield from _subschemas(named, (*path, keyword, name))
        else:
            yield from _subschemas(value, (*path, keyword))


def _read_past_draft_7(schema: Any) -> bool:
    """Whether fastjsonschema would read this Draft 2019-09 or 2020-12 schema otherwise than
    its draft: a keyword it does not know (singer-sdk's own `th.Property(...,
    requires_properties=...)` writes `dependentRequired`) is not checked, `items: false` after
    `prefixItems` refuses every item, and a `$ref`'s sibling keywords are ignored, as Draft 7
    ignores them."""
    keywords = jsonschema.Draft202012Validator.VALIDATORS.keys()
    return any(
        not _PAST_DRAFT_7.isdisjoint(node)
        or ("$ref" in node and not keywords.isdisjoint(node.keys() - {"$ref"}))
        for _, node in _subschemas(schema)
    )


def _unresolvable_ref(dialect: type[Any], schema: dict[str, Any]) -> str | None:
    """What is wrong with the schema's first `$ref` that leads nowhere, naming the column it is
    in; None when each leads somewhere. A record would find it only when it reaches it: past
    the records sent before, or never in a branch of an anyOf that most values skip. Left to
    that check: refs in a schema whose parts have ids of their own, which change what a ref
    is relative to."""
    nodes = list(_subschemas(schema))
    refs = [(path, node["$ref"]) for path, node in nodes if isinstance(node.get("$ref"), str)]
    if not refs or any(path and ("$id" in node or "id" in node) for path, node in nodes):
        return None
    specification = specification_with(dialect.ID_OF(dialect.META_SCHEMA))
    resolver = Registry().resolver_with_root(specification.create_resource(schema))
    for path, ref in refs:
        try:
            resolver.lookup(ref)
        except Unresolvable:
            where = f" (column {path[1]!r})" if path[:1] == ("properties",) else ""
            return f"the stream's SCHEMA has a $ref that cannot be resolved: {ref!r}{where}"
    return None


def _as_decimal(number: int | float | Decimal) -> Decimal:
    # a float's repr is the shortest text that reads back as it: 0.1, not 0.1000000000000000055…
    return Decimal(repr(number)) if isinstance(number, float) else Decimal(number)


def is_multiple_of(number: int | float | Decimal, step: int | float | Decimal) -> bool:
    """`multipleOf` checked in decimal, as a DECIMAL column means it.

    fastjsonschema and jsonschema divide in binary floating point, or fail with TypeError on
    the Decimals the input's numbers are read as (49.90 / 0.01), so neither is asked.
    """
    try:
        with decimal.localcontext(_EXACT):
            return _as_decimal(number) % _as_decimal(step) == 0
    except (decimal.DecimalException, ValueError):
        return False


def _breaks_step(value: Any, step: int | float | Decimal) -> bool:
    """Whether `value` is a number that is no multiple of `step` (anything else is for the
    other keywords to judge)."""
    return value.__class__ in (int, float, Decimal) and not is_multiple_of(value, step)


def _step(schema: Mapping[str, Any]) -> int | float | Decimal | None:
    """The schema's `multipleOf`, when it is a number."""
    step = schema.get("multipleOf")
    return step if isinstance(step, int | float | Decimal) else None


def _exact_multiple_of(
    validator: Any, step: Any, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    if _breaks_step(instance, step):
        yield jsonschema.ValidationError(f"is not a multiple of {step}")


def _has_multiple_of(schema: Any) -> bool:
    return any(_step(node) is not None for _, node in _subschemas(schema))


def _column_steps(
    schema: dict[str, Any],
) -> tuple[dict[str, Any], tuple[tuple[str, int | float | Decimal], ...]]:
    """The schema without its columns' `multipleOf`, and those (column, step), which
    fastjsonschema cannot check (is_multiple_of)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema, ()
    steps = tuple(
        (name, step)
        for name, column in properties.items()
        if isinstance(column, dict) and (step := _step(column)) is not None
    )
    if not steps:
        return schema, ()
    stepped = dict(steps)
    columns = {
        name: {k: v for k, v in column.items() if k != "multipleOf"} if name in stepped else column
        for name, column in properties.items()
    }
    return {**schema, "properties": columns}, steps


class _ReferenceValidator:
    """jsonschema in the schema's draft, `multipleOf` checked exactly; formats not checked."""

    def __init__(self, dialect: type[Any], schema: dict[str, Any]) -> None:
        exact = jsonschema.validators.extend(dialect, {"multipleOf": _exact_multiple_of})
        self._validator = exact(schema, format_checker=jsonschema.FormatChecker(formats=()))

    def validate(self, record: Any) -> None:
        try:
            self._validator.validate(record)
        except jsonschema.ValidationError as error:
            raise InvalidRecord(error.message, record) from error


class CompiledRecordValidator(BaseJSONSchemaValidator):
    """Validates records with a schema compiled to Python code by fastjsonschema.

    Formats are not checked, like the SDK's default validator. Error messages name the field
    and the rule, never the value (jsonschema's messages quote the value, which may be PII).
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        super().__init__(schema)
        dialect, schema = schema_dialect(schema)
        unresolvable = _unresolvable_ref(dialect, schema)
        if unresolvable is not None:
            raise InvalidJSONSchema(unresolvable)
        reference = _ReferenceValidator(dialect, schema)
        # Most Singer schemas only name each column's types: checking the classes of the
        # values is then enough to know a record is valid, in a fraction of the time.
        self._quick_check: FlatTypeCheck | None = None
        compiled, self._steps = _column_steps(schema)
        if _has_multiple_of(compiled) or (
            dialect in (jsonschema.Draft201909Validator, jsonschema.Draft202012Validator)
            and _read_past_draft_7(schema)
        ):
            # multipleOf deeper than a column (in an array's items, say), or keywords
            # fastjsonschema would read as Draft 7 does: all to jsonschema
            self._check: Callable[[Any], Any] = reference.validate
            self._steps = ()
            return
        try:
            self._check = fastjsonschema.compile(compiled, use_formats=False)
        except fastjsonschema.JsonSchemaDefinitionException:
            # A schema jsonschema accepts but fastjsonschema cannot compile: stay correct.
            self._check = reference.validate
            self._steps = ()
        else:
            if not self._steps:
                self._quick_check = FlatTypeCheck.for_schema(schema)

    def validate(self, record: dict[str, Any]) -> None:
        quick_check = self._quick_check
        if quick_check is not None and record.__class__ is dict and quick_check(record):
            return
        try:
            self._validate(record)
        except InvalidRecord:
            # 1.0 is an integer (JSON Schema, Draft 6 on), but the Decimal the input's 1.0 is
            # read as is none to fastjsonschema or jsonschema: a tap passing on its driver's
            # floats (a nullable integer column through pandas) wrote it
            with_ints = _integral_numbers_as_ints(record)
            if with_ints is record:
                raise
            self._validate(with_ints)

    def _validate(self, record: Any) -> None:
        try:
            self._check(record)
        except fastjsonschema.JsonSchemaValueException as error:
            raise InvalidRecord(error.message, record) from error
        except Unresolvable as error:
            # jsonschema (a schema fastjsonschema cannot compile, one with a $ref to nowhere
            # among them) finds a $ref it cannot follow only when a record reaches it: the
            # schema's fault, not the record's
            raise InvalidJSONSchema(
                f"the stream's SCHEMA has a $ref that cannot be resolved: {error.ref!r}"
            ) from None
        for name, step in self._steps:
            if _breaks_step(record.get(name), step):
                raise InvalidRecord(
                    f"{name} is not a multiple of {step}", record
                ) from jsonschema.ValidationError(
                    f"is not a multiple of {step}",
                    validator="multipleOf",
                    validator_value=step,
                    path=deque([name]),
                )


def _integral_numbers_as_ints(value: Any) -> Any:
    """`value` with its integral Decimals and floats (1.0, 1E+2) as ints; itself when it has
    none. Numbers of more than 100 digits stay as they are: no integer column holds them."""
    if isinstance(value, Decimal | float):
        try:
            if -_INTEGRAL_LIMIT < value < _INTEGRAL_LIMIT and value == int(value):
                return int(value)
        except (ArithmeticError, ValueError):  # NaN, infinity: never integers
            pass
        return value
    if value.__class__ is dict:
        converted = {key: _integral_numbers_as_ints(item) for key, item in value.items()}
        changed = any(converted[key] is not item for key, item in value.items())
        return converted if changed else value
    if value.__class__ is list:
        items = [_integral_numbers_as_ints(item) for item in value]
        return (
            items if any(new is not old for new, old in zip(items, value, strict=True)) else value
        )
    return value


@dataclass(frozen=True)
class TimestampPlan:
    """What the SDK would find by inspecting the schema for every record, found once."""

    properties: frozenset[str]
    datelike: tuple[tuple[str, str], ...]  # (property, "date-time" | "date" | "time")

    @classmethod
    def for_schema(cls, schema: Mapping[str, Any]) -> TimestampPlan:
        properties = schema.get("properties", {})
        datelike = tuple(
            (name, kind)
            for name, property_schema in properties.items()
            if (kind := get_datelike_property_type(property_schema)) in _PARSERS
        )
        return cls(frozenset(properties), datelike)


class UnparseableDateError(ValueError):
    """A value in a date, time or date-time column that is none. Names the column but never
    the value, which may be a birth date."""

    def __init__(self, field: str) -> None:
        super().__init__(f"field {field!r} is not an ISO 8601 date, time or date-time")
        self.field = field


def parse_timestamps(
    record: dict[str, Any],
    plan: TimestampPlan,
    treatment: DatetimeErrorTreatmentEnum | None,
    logger: logging.Logger | None,
) -> None:
    """Replace the date-like strings of `record` by date/datetime/time objects, in place.

    A value that is not a date follows `treatment`; without one, or with 'error',
    UnparseableDateError (nothing logged). A value that is not text (a number in a column typed
    string or integer with a date-time format) is not a date either, as singer-sdk reads it from
    0.55 on (0.54 raised the parser's TypeError). Blank text is no date, as null is: what taps
    reading CSV, JSONL or spreadsheet files write for an empty cell of a column they typed as
    dates.
    """
    for name, kind in plan.datelike:
        value = record.get(name)
        if value is None:
            continue
        try:
            record[name] = _PARSERS[kind](value)
        except (ValueError, TypeError) as error:
            if kind == "date-time" and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    record[name] = datetime_from_text(value)  # as the mapping reads text
                    continue
            if _is_blank(value):
                record[name] = None
                continue
            if treatment in (None, DatetimeErrorTreatmentEnum.ERROR) or logger is None:
                raise UnparseableDateError(name) from None
            record[name] = handle_invalid_timestamp_in_record(
                record, [name], value, kind, error, treatment, logger
            )


def _is_blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


class FastRecordParsingMixin:
    """Sink mixin: compiled validation and per-schema date parsing (see the module doc)."""

    _timestamp_plan: TimestampPlan | None = None
    _timestamp_plan_schema: dict | None = None

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        if self.validate_field_string_format:  # type: ignore[attr-defined]
            return super().get_validator()  # type: ignore[misc]
        if not self.validate_schema:  # type: ignore[attr-defined]
            return None
        return CompiledRecordValidator(self.schema)  # type: ignore[attr-defined]

    def _validate_and_parse(self, record: dict) -> dict:
        """The SDK's step, without its log of the failure: it logs an invalid record with a
        traceback before raising, and a record breaking its schema is the tap's mistake, said
        once by the run's one error line (which names line, stream and field)."""
        validator = self._validator  # type: ignore[attr-defined]
        if validator is not None:
            try:
                validator.validate(record)
            except InvalidRecord as error:
                if self.fail_on_record_validation_exception:  # type: ignore[attr-defined]
                    raise
                self.logger.warning(  # type: ignore[attr-defined]
                    "Record validation failed: %s", error.error_message
                )
        self._parse_timestamps_in_record(
            record=record,
            schema=self.schema,  # type: ignore[attr-defined]
            treatment=self.datetime_error_treatment,  # type: ignore[attr-defined]
        )
        return record

    def _parse_timestamps_in_record(
        self,
        record: dict,
        schema: dict,
        treatment: DatetimeErrorTreatmentEnum,
    ) -> None:
        plan = self._timestamp_plan
        if plan is None or schema is not self._timestamp_plan_schema:
            plan = self._timestamp_plan = TimestampPlan.for_schema(schema)
            self._timestamp_plan_schema = schema
        if not record.keys() <= plan.properties:
            # fields without a schema: the SDK warns about them as it always does (given only
            # them: its parsing of the others differs between its versions)
            unknown = {name: value for name, value in record.items() if name not in plan.properties}
            super()._parse_timestamps_in_record(unknown, schema, treatment)  # type: ignore[misc]
        parse_timestamps(record, plan, treatment, self.logger)  # type: ignore[attr-defined]
