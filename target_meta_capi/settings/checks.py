"""The rules the settings' JSON schema cannot express, and their messages: secrets never quoted,
request texts without stray spaces, a pixel_id, api_version and graph_url Meta can take, where
a missing setting is given (by hand or under Meltano), and settings that do nothing."""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import typing as t
import unicodedata
from urllib.parse import urlsplit

from target_meta_capi.capi._words import json_kind
from target_meta_capi.capi.errors import redact
from target_meta_capi.capi.privacy import is_loopback_host
from target_meta_capi.capi.request import (
    API_VERSION_PATTERN,
    DEFAULT_API_VERSION,
    DEFAULT_GRAPH_URL,
    OPTIONAL_PARAMETERS,
    graph_url_problem,
    is_pixel_id,
    shown_graph_url,
)
from target_meta_capi.settings.output_paths import output_path_errors
from target_meta_capi.settings.schema import SECRET_SETTINGS


def secret_settings_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """Secrets that are not text, said without their values.

    Checked before the JSON schema, whose messages quote the value they refuse.
    """
    return [
        f"{name} must be text (a JSON string), got {json_kind(config[name])}; "
        "its value is not shown"
        for name in sorted(SECRET_SETTINGS)
        if config.get(name) is not None and not isinstance(config[name], str)
    ]


def without_secrets(errors: t.Iterable[str], config: t.Mapping[str, t.Any]) -> list[str]:
    """Errors with the secrets' values, and anything like an access token, cut out.

    Errors quote the values they refuse, and a token pasted into the wrong setting (pixel_id
    and access_token swapped) is still the token.
    """
    texts = secret_texts(config)
    return [redact(error, texts) for error in errors]


def secret_texts(config: t.Mapping[str, t.Any]) -> list[str]:
    """The secret settings' values (the access token, the app secret) given as text."""
    return [secret for name in SECRET_SETTINGS if isinstance(secret := config.get(name), str)]


def with_pixel_id_as_text(config: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The settings, a pixel_id given as a JSON whole number (`"pixel_id": 1234567890`, the
    ID as Events Manager shows it) read as its digits, as a `streams` entry's pixel_id is."""
    pixel_id = config.get("pixel_id")
    if isinstance(pixel_id, int) and not isinstance(pixel_id, bool):
        return {**config, "pixel_id": str(pixel_id)}
    return dict(config)


def explained_schema_errors(errors: t.Iterable[str]) -> list[str]:
    """The SDK's schema errors, its words for a missing pixel_id (the one required setting)
    replaced by where the ID comes from and where to give it, and the values they quote as
    the settings file wrote them, not as Python shows them."""
    return [
        "pixel_id is required: the pixel (dataset) ID of Events Manager → your dataset → "
        f"Settings; {_where_to_give('pixel_id')}"
        if error == _PIXEL_ID_MISSING
        else _as_json_words(error)
        for error in errors
    ]


_PIXEL_ID_MISSING = "'pixel_id' is a required property"
# jsonschema quotes a refused value by its repr: a JSON 10.5 is read as Decimal('10.5'), and
# true, false and null as True, False and None (which lead the message, where it names the value)
_DECIMAL_REPR = re.compile(r"Decimal\('([^']*)'\)")
_LEADING_CONSTANT = re.compile(r"^(True|False|None)\b")
_JSON_CONSTANTS = {"True": "true", "False": "false", "None": "null"}


def _as_json_words(error: str) -> str:
    error = _DECIMAL_REPR.sub(r"\1", error)
    return _LEADING_CONSTANT.sub(lambda match: _JSON_CONSTANTS[match.group()], error)


def run_by_meltano() -> bool:
    """Whether Meltano started the target: it sets MELTANO_PROJECT_ROOT for its plugins."""
    return bool(os.environ.get("MELTANO_PROJECT_ROOT"))


def _where_to_give(setting: str) -> str:
    """Where a required setting the run lacks is given: run by hand, the environment counts
    only with --config ENV; under Meltano, meltano.yml's environment names the variable (this
    project's prod: META_ACCESS_TOKEN), and TARGET_META_CAPI_* would beat every environment's
    value."""
    if run_by_meltano():
        environment = os.environ.get("MELTANO_ENVIRONMENT")
        active, option = (
            (f"environment {environment}", f"--environment={environment} ")
            if environment
            else ("no environment", "")
        )
        return (
            f"Meltano ({active}) passed none: give it where meltano.yml takes it from; "
            f"`meltano {option}config print target-meta-capi` shows what the target gets"
        )
    return (
        f"run by hand, the target reads TARGET_META_CAPI_{setting.upper()} only with "
        "--config ENV (e.g. --config config.json --config ENV)"
    )


#: Text settings sent to Meta as they are, in every request's body.
REQUEST_TEXT_SETTINGS = ("access_token", "app_secret", *OPTIONAL_PARAMETERS)


def _request_text_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """Request parameters with a blank, surrounding whitespace or a control character: a
    token read from a file with its line break fails every request, and a blank
    test_event_code is sent as one. An empty secret is one not given (see access_token)."""
    errors = []
    for name in REQUEST_TEXT_SETTINGS:
        value = config.get(name)
        if not isinstance(value, str) or (name in SECRET_SETTINGS and not value):
            continue
        if not value.strip():
            problem = "is blank: leave it out instead"
        elif value != value.strip():
            problem = "has spaces or a line break before or after it"
        elif any(unicodedata.category(character) == "Cc" for character in value):
            problem = "holds a control character (a line break, a tab …)"
        else:
            continue
        shown = "; its value is not shown" if name in SECRET_SETTINGS else f", got {value!r}"
        errors.append(f"{name} {problem}{shown}")
    return errors


def required_settings_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """A required setting the JSON schema cannot require (pixel_id it does): said also next to
    the schema's errors, so that an empty config names both settings it lacks."""
    if not config.get("dry_run") and not config.get("access_token"):
        return [
            f"access_token is required (unless dry_run is true); {_where_to_give('access_token')}"
        ]
    return []


def settings_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """Rules the JSON schema cannot express clearly."""
    errors = _request_text_errors(config)
    batch_size_rows = config.get("batch_size_rows")
    if isinstance(batch_size_rows, int) and batch_size_rows < 1:
        # the SDK's setting has no minimum; below 1 every event went in a request of its own
        errors.append(f"batch_size_rows must be at least 1, got {batch_size_rows}")
    errors += required_settings_errors(config)
    pixel_id = config.get("pixel_id")
    if isinstance(pixel_id, str) and not is_pixel_id(pixel_id):
        errors.append(f"pixel_id must be a pixel (dataset) ID: digits only, got {pixel_id!r}")
    api_version = config.get("api_version", DEFAULT_API_VERSION)
    if isinstance(api_version, str) and not API_VERSION_PATTERN.fullmatch(api_version):
        errors.append(
            f"api_version must be a Graph API version like {DEFAULT_API_VERSION}, "
            f"got {api_version!r}"
        )
    graph_url = config.get("graph_url", DEFAULT_GRAPH_URL)
    if isinstance(graph_url, str):  # another type is the schema's error
        errors += _graph_url_errors(graph_url)
    errors += output_path_errors(config)
    return errors


def _graph_url_errors(graph_url: str) -> list[str]:
    unusable = graph_url_problem(graph_url)
    if unusable:
        return [
            f"graph_url must be an http:// or https:// URL, got {shown_graph_url(graph_url)!r}: "
            f"{unusable} (default {DEFAULT_GRAPH_URL})"
        ]
    if version := _version_in_path(graph_url):
        # the endpoint's URL pasted whole: every request would go to /v24.0/v24.0/…
        return [
            f"graph_url must be the Graph API's base URL, got {shown_graph_url(graph_url)!r}: "
            f"its path holds a version ({version}), and the target adds "
            f"/<api_version>/<pixel_id>/events itself (default {DEFAULT_GRAPH_URL})"
        ]
    return []


def _version_in_path(url: str) -> str | None:
    """The Graph API version a URL's path names (`…/v24.0/1234/events`), if any."""
    segments = urlsplit(url).path.split("/")
    return next((part for part in segments if API_VERSION_PATTERN.fullmatch(part)), None)


def settings_warnings(config: t.Mapping[str, t.Any], known: t.Collection[str]) -> list[str]:
    """Settings that are accepted but do nothing: probably not what was meant."""
    warnings = []
    for name in sorted(set(config) - set(known)):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        warnings.append(f"Unknown setting {name!r} is ignored{hint}.")
    load_method = config.get("load_method")
    if load_method not in (None, "append-only"):
        warnings.append(
            f"load_method {load_method!r} is ignored: events sent to Meta cannot be updated "
            "or deleted, every run appends."
        )
    graph_url = config.get("graph_url")
    graph_url_parts = urlsplit(graph_url.strip()) if isinstance(graph_url, str) else None
    if (
        graph_url_parts is not None
        and not config.get("dry_run")
        and graph_url_parts.scheme.lower() == "http"
        and not is_loopback_host(graph_url_parts.hostname)
    ):
        warnings.append(
            f"graph_url {shown_graph_url(graph_url)!r} is http://, to another machine: the "
            "access token and the customer data travel unencrypted. Use https:// unless that "
            "host is a gateway of your own network."
        )
    if config.get("faker_config") and not faker_installed():
        # singer-sdk's stream maps have `fake` only with Faker, an extra it does not install
        warnings.append(
            "faker_config is ignored: Faker is not installed, so stream maps have no `fake`. "
            "Install it beside the target (pip install faker) to use it."
        )
    if config.get("dry_run_path") and not config.get("dry_run"):
        # a dry run meant, and the events going to Meta for real: said, as the run sends
        warnings.append("dry_run_path is ignored: dry_run is not true, so events are sent.")
    return warnings


def faker_installed() -> bool:
    """Whether stream maps have `fake`: singer-sdk offers it only with Faker, an extra."""
    return importlib.util.find_spec("faker") is not None
