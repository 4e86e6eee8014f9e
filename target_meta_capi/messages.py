"""The shape of SCHEMA, RECORD and STATE messages, checked before the SDK takes them.

The SDK takes a message's parts as they come, failing deep inside it on a part of the wrong
kind, and its own messages quote the whole line, customer data included. These errors name
the input line and the kind of value found, never the value: it may be customer data.
"""

from __future__ import annotations

from target_meta_capi.capi._words import json_kind
from target_meta_capi.reader import SingerInputError, assert_line_requires

RECORD_KEYS = frozenset({"stream", "record"})
SCHEMA_KEYS = frozenset({"stream", "schema"})


def stream_name_problem(stream: object) -> str | None:
    """Why a message's 'stream' names no stream, or None."""
    if not isinstance(stream, str):
        return f"'stream' is {json_kind(stream)}, not a stream name"
    if not stream:
        return "'stream' is empty, not a stream name"
    return None


def assert_schema_message_shape(message_dict: dict, line_number: int) -> None:
    # The SDK takes a SCHEMA's parts as they come: a null schema or stream fails deep inside
    # it with a TypeError, and key_properties "id" becomes the keys "i" and "d".
    assert_line_requires(message_dict, SCHEMA_KEYS, line_number)
    problem = None
    stream = message_dict["stream"]
    key_properties = message_dict.get("key_properties")
    if stream_problem := stream_name_problem(stream):
        problem = stream_problem
    elif not isinstance(message_dict["schema"], dict):
        problem = f"'schema' is {json_kind(message_dict['schema'])}, not a JSON object"
    elif "properties" not in message_dict["schema"]:
        # the SDK requires them, and would say the line lacks them
        problem = "the schema lacks 'properties' (its columns)"
    elif not isinstance(properties := message_dict["schema"]["properties"], dict):
        # the SDK reads them as an object: an AttributeError or TypeError deep inside it
        problem = f"the schema's 'properties' is {json_kind(properties)}, not a JSON object"
    elif key_properties is not None and not (
        isinstance(key_properties, list) and all(isinstance(key, str) for key in key_properties)
    ):
        problem = "'key_properties' is not an array of column names"
    if problem is None:
        problem = _take_boolean_property_schemas(message_dict["schema"])
    if problem:
        raise SingerInputError(f"Input line {line_number}, SCHEMA message: {problem}")


def assert_record_is_an_object(message_dict: dict, line_number: int) -> None:
    # The SDK's stream maps take a null record for one they filtered out and drop it
    # without a word, so state would pass a row never sent; other kinds fail deep inside
    # them with a TypeError.
    assert_line_requires(message_dict, RECORD_KEYS, line_number)
    stream = message_dict["stream"]
    if stream_problem := stream_name_problem(stream):
        # else a TypeError deep inside the SDK, or its "no schema for stream '5'"
        raise SingerInputError(f"Input line {line_number}, RECORD message: {stream_problem}")
    record = message_dict["record"]
    if not isinstance(record, dict):
        raise SingerInputError(
            f"Input line {line_number}, stream "
            f"{message_dict['stream']!r}: 'record' is {json_kind(record)}, not a JSON object"
        )


def _take_boolean_property_schemas(schema: dict) -> str | None:
    """A property's schema may be `true` (anything) in JSON Schema; the SDK's date handling
    reads every property schema as an object, so `true` becomes `{}`, which means the same.
    `false` (the property must be absent) is refused: a tap sends no such column. Any other
    kind is no schema at all, refused here: the SDK's date handling would fail on it."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return None
    for name, property_schema in properties.items():
        if property_schema is True:
            properties[name] = {}
        elif property_schema is False:
            return f"property {name!r} has the schema false: no value is allowed in it"
        elif not isinstance(property_schema, dict):
            return (
                f"property {name!r} has {json_kind(property_schema)} for its schema, "
                "not a JSON object"
            )
    return None
