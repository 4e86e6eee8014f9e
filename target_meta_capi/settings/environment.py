"""Settings given in the environment: the variables `--config ENV` reads (the `.env` file's
too), checked before the SDK reads them, and text read as the number, integer or boolean its
setting takes (from the environment, Meltano or a hand-written file)."""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import typing as t

from dotenv import dotenv_values, find_dotenv
from singer_sdk.configuration import _dict_config as sdk_environment_config
from singer_sdk.helpers import _typing as sdk_typing

#: The words singer-sdk reads as true in a boolean setting's environment variable, and those
#: that mean false.
ENVIRONMENT_TRUE_WORDS = frozenset(sdk_environment_config.TRUTHY)
ENVIRONMENT_FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def with_texts_parsed(
    schema: t.Mapping[str, t.Any], config: t.Mapping[str, t.Any]
) -> dict[str, t.Any]:
    """The settings, a number, integer or boolean setting (request_timeout, batch_size,
    dry_run) given as text holding one read as it.

    Such text comes from the environment, which singer-sdk parses for integers, booleans,
    arrays and objects but not numbers, from Meltano, which passes settings declared without
    a kind as text, and from hand-written config files. meltano.yml declares these settings
    without a kind because Meltano's own reading of a kind is worse: `kind: decimal` crashes
    Meltano 4.4 on a value from the environment, `kind: integer` fails on `abc` with a
    traceback naming no setting, and `kind: boolean` reads any text but its four true words
    as false (DRY_RUN=ture would send for real). A boolean's text is one of the words
    singer-sdk reads in the environment, in any case. Other text is left as it is, for
    validation to refuse by the setting's name.
    """
    properties = schema.get("properties", {})
    parsed: dict[str, t.Any] = {}
    for name, value in config.items():
        if not isinstance(value, str):
            continue
        property_schema = properties.get(name, {})
        if sdk_typing.is_integer_type(property_schema):
            typed: float | bool | None = _whole_number_in(value)
        elif sdk_typing.is_number_type(property_schema):  # not true of integers
            typed = _number_in(value)
        elif sdk_typing.is_boolean_type(property_schema):
            typed = _boolean_in(value)
        else:
            continue
        if typed is not None:
            parsed[name] = typed
    return {**config, **parsed}


def _boolean_in(text: str) -> bool | None:
    """The boolean text holds (`true`, ` FALSE `, `1`, `off`), or None (`ture`, `maybe`)."""
    word = text.strip().lower()
    if word in ENVIRONMENT_TRUE_WORDS:
        return True
    if word in ENVIRONMENT_FALSE_WORDS:
        return False
    return None


def _number_in(text: str) -> float | None:
    """The number text holds (`30`, ` 2.5 `, `inf`), or None; `nan` is none, as no minimum or
    maximum can refuse it."""
    try:
        number = float(text)
    except ValueError:
        return None
    return None if math.isnan(number) else number


def _whole_number_in(text: str) -> int | None:
    """The whole number text holds (`500`, ` 8 `), or None (`2.5`, `ten`)."""
    try:
        return int(text)
    except ValueError:
        return None


def _takes_text(property_schema: dict[str, t.Any]) -> bool:
    """Whether a setting takes text as well as a number (phone_country_code: 44 or GB)."""
    return bool(sdk_typing.is_string_type(property_schema)) and bool(
        sdk_typing.is_integer_type(property_schema) or sdk_typing.is_number_type(property_schema)
    )


def environment_schema(schema: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The settings' schema as the SDK is to read the environment by: a setting taking text as
    well as a number is read as text, which that setting's own check reads either way; the
    SDK's int() would fail on GB with a traceback."""
    properties = {
        name: {**property_schema, "type": "string"}
        if _takes_text(property_schema)
        else property_schema
        for name, property_schema in schema.get("properties", {}).items()
    }
    return {**schema, "properties": properties}


def dotenv_path() -> str:
    """The `.env` file `--config ENV` loads into the environment before its variables are read,
    or "": the one in the working directory or the nearest directory above it, where singer-sdk
    looks for it from 0.55 on (0.54 looked upwards from its own installed package instead; the
    target hands the SDK this one whatever its version). Not one another user could have
    written (`untrusted_dotenv`)."""
    path = find_dotenv(usecwd=True)
    return "" if path and untrusted_dotenv(path) else path


def untrusted_dotenv(path: str | None = None) -> str | None:
    """Why the `.env` file found (or `path`) is not read, or None. Its variables replace the
    environment's, graph_url among them: one another user put in a directory above the working
    directory (a shared /tmp) would send the token where they please."""
    path = find_dotenv(usecwd=True) if path is None else path
    if not path:
        return None
    try:
        status = os.stat(path)
    except OSError:  # gone since it was found: nothing of it is read
        return None
    geteuid = getattr(os, "geteuid", None)  # POSIX only
    if geteuid is not None and status.st_uid != geteuid():
        problem = "it belongs to another user"
    elif status.st_mode & 0o002:
        problem = "any user may write to it"
    else:
        return None
    return (
        f"The .env file {path} is not read: {problem}, and its variables would replace the "
        "environment's settings (graph_url, say). Make it yours and not writable by others."
    )


def environment_setting_problem(schema: t.Mapping[str, t.Any], prefix: str) -> str | None:
    """What is wrong with the first setting given in the environment that cannot be read,
    without its value: it may be a secret. Asked before the SDK reads them: it reads integers
    with int() and arrays and objects as JSON and fails with a traceback naming no variable,
    its validation would refuse a number setting's text quoting the value, and it reads a
    boolean that is none of its true words as false. Variables from the `.env` file loaded
    first (`dotenv_path`) count too, over the environment's: python-dotenv, loading it for the
    SDK, replaces them."""
    environment = _environment()
    for name, property_schema in schema.get("properties", {}).items():
        variable = prefix + name.upper().replace("-", "_")
        value = environment.get(variable)
        if value is None:
            continue
        if _takes_text(property_schema):
            continue  # as it is (phone_country_code's GB or 44): its own check reads it
        if sdk_typing.is_integer_type(property_schema):
            if _whole_number_in(value) is None:
                return f"environment variable {variable} is not a whole number"
        elif sdk_typing.is_number_type(property_schema):  # not true of integers
            if _number_in(value) is None:
                return f"environment variable {variable} is not a number"
        elif sdk_typing.is_boolean_type(property_schema):
            # the SDK reads any text but its four true words (spaces and all) as false:
            # DRY_RUN=ture or " true" would send for real
            if value.lower() not in ENVIRONMENT_TRUE_WORDS | ENVIRONMENT_FALSE_WORDS:
                return (
                    f"environment variable {variable} is not a boolean: "
                    f"{'/'.join(sorted(ENVIRONMENT_TRUE_WORDS))} or "
                    f"{'/'.join(sorted(ENVIRONMENT_FALSE_WORDS))}"
                )
        elif not sdk_typing.is_string_array_type(property_schema) and (
            sdk_typing.is_array_type(property_schema) or sdk_typing.is_object_type(property_schema)
        ):
            try:
                json.loads(value)
            except ValueError as error:
                where = (
                    f" ({error.msg} at character {error.pos})"
                    if isinstance(error, json.JSONDecodeError)
                    else ""
                )
                return f"environment variable {variable} is not valid JSON{where}"
    return None


def log_level_problem(environ: t.MutableMapping[str, str], prefix: str) -> str | None:
    """What is wrong with the log level the environment sets, which singer-sdk reads from
    `<prefix>LOGLEVEL` or else `LOGLEVEL` (a name many programs share) and hands to logging
    as it is, upper-cased: a word logging does not know (`verbose`, `10`, ` info`) raises
    before the target runs, a traceback naming no variable. An empty variable, as `LOGLEVEL=`
    in an env file leaves it, is removed: it means the default level, INFO."""
    variables = (f"{prefix}LOGLEVEL", "LOGLEVEL")
    for name in variables:
        if environ.get(name) == "":
            del environ[name]
    variable = next((name for name in variables if name in environ), None)
    if variable is None or isinstance(logging.getLevelName(environ[variable].upper()), int):
        return None
    return (
        f"environment variable {variable} is {environ[variable]!r}, which is no log level: "
        "use DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )


def load_dotenv_log_level(environ: t.MutableMapping[str, str], prefix: str) -> None:
    """Put the log level the `.env` file sets (`dotenv_path`) in `environ`, over the
    environment's, as `--config ENV` loads it, but now: the SDK sets up logging with the level
    before it reads that file, and would go on at the environment's."""
    dotenv = dotenv_values(dotenv_path())
    for name in (f"{prefix}LOGLEVEL", "LOGLEVEL"):
        value = dotenv.get(name)
        if value is not None:
            environ[name] = value


def unknown_environment_variables(schema: t.Mapping[str, t.Any], prefix: str) -> list[str]:
    """Warnings for the variables `--config ENV` finds with the settings' prefix that name no
    setting (a typo: the SDK ignores them), each with the variable probably meant."""
    # compared without the prefix, which every one shares; LOGLEVEL is the SDK's own
    known = {name.upper().replace("-", "_") for name in schema.get("properties", {})}
    known.add("LOGLEVEL")
    warnings = []
    for variable in sorted(name for name in _environment() if name.startswith(prefix)):
        name = variable.removeprefix(prefix)
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
        warnings.append(f"Environment variable {variable} is ignored: it names no setting{hint}.")
    return warnings


def _environment() -> dict[str, str]:
    """The variables `--config ENV` reads: the environment's, and over them the `.env` file's
    (`dotenv_path`), which python-dotenv, loading it for the SDK, puts in their place."""
    dotenv = dotenv_values(dotenv_path())
    return {
        **os.environ,
        **{name: value for name, value in dotenv.items() if value is not None},
    }
