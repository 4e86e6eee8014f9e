"""Config mistakes stop the run before anything is read, or are warned about: none is silent."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.configuration import _dict_config as sdk_environment_config
from singer_sdk.exceptions import ConfigValidationError

from target_meta_capi.capi.errors import ConfigurationError
from target_meta_capi.mapping import event_name_warnings
from target_meta_capi.sandbox import SandboxServer
from target_meta_capi.settings import unknown_environment_variables
from target_meta_capi.target import TargetMetaCapi

from ._target_support import (
    ORDER_SCHEMA,
    ORDERS_MAPPING,
    PIXEL_ID,
    STREAM,
    RunResult,
    order_stream,
    orders_config,
    run_in_process,
    schema_line,
)

REAL_LOOKING_TOKEN = "EAAGm0PX4ZCpsBAKZBZCtestaccesstoken1234"
TARGET = Path(sys.executable).with_name("target-meta-capi")


def _run_cli(
    tmp_path: Path,
    config: dict[str, Any] | None,
    *,
    with_environment: bool = False,
    env: dict[str, str] | None = None,
    records: int = 2,
) -> subprocess.CompletedProcess[str]:
    """target-meta-capi as a user runs it: `--config config.json` (written from `config`, if
    given), `--config ENV` too `with_environment`, and `records` orders on stdin."""
    arguments = [str(TARGET)]
    if config is not None:
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(config), encoding="utf-8")
        arguments += ["--config", str(config_file)]
    if with_environment:
        arguments += ["--config", "ENV"]
    stdin = "".join(line + "\n" for line in order_stream(records)) if records else ""
    return subprocess.run(
        arguments, input=stdin, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env
    )


def config_errors(config: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigValidationError) as failure:
        TargetMetaCapi(config=config, parse_env_config=False)
    return failure.value.errors


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("access_token", ["EAAsecretTOKEN999"]),
        ("access_token", 987654321987),
        ("app_secret", {"v": "APPSECRETxyz"}),
    ],
)
def test_a_secret_of_the_wrong_type_is_refused_without_showing_its_value(
    tmp_path: Path, setting: str, value: Any
) -> None:
    config = orders_config("http://127.0.0.1:9", tmp_path, **{setting: value})
    with pytest.raises(ConfigValidationError) as failure:
        TargetMetaCapi(config=config, parse_env_config=False)
    said = str(failure.value) + " ".join(failure.value.errors)
    assert f"{setting} must be text" in said
    for secret in ("EAAsecretTOKEN999", "987654321987", "APPSECRETxyz"):
        assert secret not in said


def test_a_secret_of_the_wrong_type_is_named_by_its_json_kind_not_a_python_type(
    tmp_path: Path,
) -> None:
    config = orders_config("http://127.0.0.1:9", tmp_path, app_secret={"v": "APPSECRETxyz"})
    assert config_errors(config) == [
        "app_secret must be text (a JSON string), got a JSON object; its value is not shown"
    ]


def test_a_setting_the_schema_refuses_is_quoted_as_the_config_file_wrote_it(
    tmp_path: Path,
) -> None:
    # read from the file, 10.5 is a Decimal, and jsonschema quotes the values it refuses by
    # their reprs: Decimal('10.5'), True
    config = orders_config("http://127.0.0.1:9", tmp_path, batch_size=10.5, max_retries=True)
    completed = _run_cli(tmp_path, config)
    assert completed.returncode == 1
    assert "10.5 is not of type 'integer', 'null' in config['batch_size']" in completed.stderr
    assert "true is not of type 'integer', 'null' in config['max_retries']" in completed.stderr
    assert "Decimal" not in completed.stderr


@pytest.mark.parametrize("token_as_given", [REAL_LOOKING_TOKEN, [REAL_LOOKING_TOKEN]])
def test_an_access_token_pasted_as_the_pixel_id_is_refused_without_showing_it(
    tmp_path: Path, token_as_given: Any
) -> None:
    # pixel_id and access_token swapped: the token is refused by our check, or in a list by
    # the JSON schema, and both quote the value they refuse
    config = orders_config(
        "http://127.0.0.1:9", tmp_path, pixel_id=token_as_given, access_token="1234567890"
    )
    with pytest.raises(ConfigValidationError) as failure:
        TargetMetaCapi(config=config, parse_env_config=False)
    said = str(failure.value) + " ".join(failure.value.errors)
    assert "pixel_id" in said
    assert REAL_LOOKING_TOKEN not in said


def test_an_access_token_with_its_line_break_is_refused_at_start_without_showing_it(
    tmp_path: Path,
) -> None:
    # a token read from a file or a Kubernetes secret keeps its line break: Meta refused
    # every request, after the run had read its input
    config = orders_config("http://127.0.0.1:9", tmp_path, access_token=REAL_LOOKING_TOKEN + "\n")
    errors = config_errors(config)
    assert errors == [
        "access_token has spaces or a line break before or after it; its value is not shown"
    ]
    assert REAL_LOOKING_TOKEN not in " ".join(errors)


@pytest.mark.parametrize("test_event_code", ["", "   "])
def test_a_blank_test_event_code_is_refused_at_start_not_sent(
    tmp_path: Path, test_event_code: str
) -> None:
    config = orders_config("http://127.0.0.1:9", tmp_path, test_event_code=test_event_code)
    assert config_errors(config) == [
        f"test_event_code is blank: leave it out instead, got {test_event_code!r}"
    ]


def test_a_request_parameter_with_a_control_character_is_refused_at_start(
    tmp_path: Path,
) -> None:
    config = orders_config("http://127.0.0.1:9", tmp_path, partner_agent="acme\nX-Injected: 1")
    assert config_errors(config) == [
        "partner_agent holds a control character (a line break, a tab …), "
        "got 'acme\\nX-Injected: 1'"
    ]


@pytest.mark.parametrize("pixel_id", ["my-pixel", "12 34", "١٢٣"])
def test_a_pixel_id_that_is_not_digits_is_refused_at_start(tmp_path: Path, pixel_id: str) -> None:
    errors = config_errors(orders_config("http://127.0.0.1:9", tmp_path, pixel_id=pixel_id))
    assert errors == [f"pixel_id must be a pixel (dataset) ID: digits only, got {pixel_id!r}"]


def test_a_pixel_id_given_as_a_json_number_is_sent_as_its_digits(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = orders_config(sandbox.url, tmp_path, pixel_id=int(PIXEL_ID))
    result = run_in_process(config, order_stream(1))
    assert result.exit_code == 0
    assert [event["params"]["pixel_id"] for event in sandbox.accepted_events()] == [PIXEL_ID]


def test_a_missing_pixel_id_says_where_it_comes_from_and_how_the_cli_reads_it(
    tmp_path: Path,
) -> None:
    config = orders_config("http://127.0.0.1:9", tmp_path)
    del config["pixel_id"]
    [error] = config_errors(config)
    assert error.startswith("pixel_id is required: the pixel (dataset) ID of Events Manager")
    assert "TARGET_META_CAPI_PIXEL_ID only with --config ENV" in error


def test_an_empty_config_names_both_settings_it_lacks_at_once() -> None:
    pixel_id_error, access_token_error = config_errors({})
    assert pixel_id_error.startswith("pixel_id is required: ")
    assert access_token_error.startswith("access_token is required (unless dry_run is true); ")


def test_a_missing_access_token_is_named_next_to_another_settings_wrong_type(
    tmp_path: Path,
) -> None:
    config = orders_config("http://127.0.0.1:9", tmp_path, max_retries="three")
    del config["access_token"]
    errors = config_errors(config)
    assert len(errors) == 2
    assert "'three' is not of type 'integer'" in errors[0]
    assert errors[1].startswith("access_token is required (unless dry_run is true)")


def test_a_graph_url_with_its_scheme_in_capitals_reaches_graph(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # schemes are case-insensitive (RFC 3986); a URL pasted from a document may shout
    graph_url = sandbox.url.replace("http://", "HTTP://")
    assert graph_url != sandbox.url
    result = run_in_process(orders_config(graph_url, tmp_path), order_stream(2))
    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 2


@pytest.mark.parametrize(
    "graph_url",
    ["https://graph.facebook.com/v24.0", "https://graph.facebook.com/v24.0/1234567890/events"],
)
def test_a_graph_url_holding_the_api_version_is_refused_at_start(
    tmp_path: Path, graph_url: str
) -> None:
    # sent as it was, every request went to /v24.0/v24.0/…, which Graph answers with code 2500
    [error] = config_errors(orders_config(graph_url, tmp_path))
    assert error == (
        f"graph_url must be the Graph API's base URL, got {graph_url!r}: its path holds a "
        "version (v24.0), and the target adds /<api_version>/<pixel_id>/events itself "
        "(default https://graph.facebook.com)"
    )


@pytest.mark.parametrize("api_version", ["24", "v24", "24.0", "latest", "v٢٤.0"])
def test_an_api_version_not_named_as_meta_names_them_is_refused_at_start(
    tmp_path: Path, api_version: str
) -> None:
    errors = config_errors(orders_config("http://127.0.0.1:9", tmp_path, api_version=api_version))
    assert errors == [f"api_version must be a Graph API version like v24.0, got {api_version!r}"]


def test_an_action_source_meta_refuses_is_refused_at_start_not_for_every_event(
    tmp_path: Path,
) -> None:
    mapping = {**ORDERS_MAPPING, "action_source": "web"}
    config = orders_config("http://127.0.0.1:9", tmp_path, streams={STREAM: mapping})
    assert config_errors(config) == [
        f"streams.{STREAM}.action_source must be one of app, business_messaging, chat, email, "
        "other, phone_call, physical_store, system_generated, website; got 'web'"
    ]


def test_an_action_source_given_as_a_constant_is_checked_too(tmp_path: Path) -> None:
    mapping = {**ORDERS_MAPPING, "action_source": None, "constants": {"action_source": "Web"}}
    config = orders_config("http://127.0.0.1:9", tmp_path, streams={STREAM: mapping})
    [error] = config_errors(config)
    assert error.startswith(f"streams.{STREAM}.constants.action_source must be one of")


def test_constants_that_could_never_be_sent_are_refused_at_start(tmp_path: Path) -> None:
    constants = {"custom_data.currency": "EUR", "custom_data.value": "12,50", "opt_out": "maybe"}
    mapping = {**ORDERS_MAPPING, "constants": constants}
    config = orders_config("http://127.0.0.1:9", tmp_path, streams={STREAM: mapping})
    assert config_errors(config) == [
        f"streams.{STREAM}.constants.custom_data.value: the text is not a number",
        f"streams.{STREAM}.constants.opt_out: the text is not a boolean",
    ]


def test_an_action_source_that_is_not_text_is_refused_at_start(tmp_path: Path) -> None:
    mapping = {**ORDERS_MAPPING, "action_source": None, "constants": {"action_source": ["web"]}}
    config = orders_config("http://127.0.0.1:9", tmp_path, streams={STREAM: mapping})
    [error] = config_errors(config)
    assert error.endswith('got ["web"]')  # as the settings' JSON wrote it


def test_a_default_action_source_meta_refuses_is_refused_at_start(tmp_path: Path) -> None:
    config = orders_config("http://127.0.0.1:9", tmp_path, default_action_source="online")
    [error] = config_errors(config)
    assert error.startswith("default_action_source must be one of")


@pytest.mark.parametrize("default_event_name", ["", "   "])
def test_a_blank_default_event_name_is_refused_at_start(
    tmp_path: Path, default_event_name: str
) -> None:
    # it dead-lettered every event of a stream without an event name, and state went past them
    config = orders_config("http://127.0.0.1:9", tmp_path, default_event_name=default_event_name)
    assert config_errors(config) == ["default_event_name must be a non-empty text"]


def test_an_event_name_with_a_line_break_is_refused_at_start(tmp_path: Path) -> None:
    # "Purchase\n" reached Meta as a custom event, not as a Purchase
    mapping = {**ORDERS_MAPPING, "event_name": "Purchase\n"}
    config = orders_config("http://127.0.0.1:9", tmp_path, streams={STREAM: mapping})
    assert config_errors(config) == [
        f"streams.{STREAM}.event_name has spaces or a line break before or after it, "
        "got 'Purchase\\n'"
    ]


def test_a_wrong_entry_for_a_stream_not_in_the_input_is_still_refused_at_start(
    tmp_path: Path,
) -> None:
    streams = {STREAM: ORDERS_MAPPING, "public-refunds": {"fields": {"price": "amount"}}}
    config = orders_config("http://127.0.0.1:9", tmp_path, streams=streams)
    [error] = config_errors(config)
    assert "streams.public-refunds: field 'price' is not a Conversions API event parameter" in error


@pytest.mark.parametrize(
    ("field", "meant"),
    [
        ("user_data.email", "user_data.em"),  # a column's name for it (the alias table)
        ("user_data.Phone", "user_data.ph"),
        ("user_data.emm", "user_data.em"),  # a typo
        ("event_tme", "event_time"),
        ("user_dat.em", "user_data.em"),
    ],
)
def test_a_field_that_is_none_names_the_field_probably_meant(
    tmp_path: Path, field: str, meant: str
) -> None:
    mapping = {**ORDERS_MAPPING, "fields": {**ORDERS_MAPPING["fields"], field: "email"}}
    config = orders_config("http://127.0.0.1:9", tmp_path, streams={STREAM: mapping})
    [error] = config_errors(config)
    assert error.startswith(f"streams.{STREAM}: field {field!r} is not a ")
    assert error.endswith(f" (did you mean {meant!r}?)")


def test_streams_given_as_json_text_are_checked_at_start_too(tmp_path: Path) -> None:
    streams = json.dumps({STREAM: {**ORDERS_MAPPING, "action_source": "web"}})
    config = orders_config("http://127.0.0.1:9", tmp_path, streams=streams)
    [error] = config_errors(config)
    assert error.startswith(f"streams.{STREAM}.action_source must be one of")


def test_a_missing_access_token_says_how_the_cli_reads_it_from_the_environment(
    tmp_path: Path,
) -> None:
    config = orders_config("http://127.0.0.1:9", tmp_path)
    del config["access_token"]
    [error] = config_errors(config)
    assert "TARGET_META_CAPI_ACCESS_TOKEN only with --config ENV" in error


@pytest.mark.parametrize("setting", ["pixel_id", "access_token"])
def test_a_required_setting_meltano_did_not_pass_says_where_meltano_takes_it_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    # what Meltano sets for its plugins; prod's pixel and token come from variables of its own
    monkeypatch.setenv("MELTANO_PROJECT_ROOT", str(tmp_path))
    monkeypatch.setenv("MELTANO_ENVIRONMENT", "prod")
    config = orders_config("http://127.0.0.1:9", tmp_path)
    del config[setting]
    [error] = config_errors(config)
    assert error.startswith(f"{setting} is required")
    assert error.endswith(
        "Meltano (environment prod) passed none: give it where meltano.yml takes it from; "
        "`meltano --environment=prod config print target-meta-capi` shows what the target gets"
    )
    assert "--config ENV" not in error


def test_an_unknown_setting_is_warned_about_with_the_setting_probably_meant(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(sandbox.url, tmp_path, acess_token="x", unmapped_columns=True)
    run_in_process(config, order_stream(1))
    warnings = warnings_of(caplog)
    assert "Unknown setting 'acess_token' is ignored (did you mean 'access_token'?)." in warnings
    assert "Unknown setting 'unmapped_columns' is ignored." in warnings


def test_a_load_method_other_than_append_only_is_warned_about(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_in_process(orders_config(sandbox.url, tmp_path, load_method="overwrite"), order_stream(1))
    assert any(
        warning.startswith("load_method 'overwrite' is ignored") for warning in warnings_of(caplog)
    )


@pytest.mark.skipif(importlib.util.find_spec("faker") is not None, reason="Faker is installed")
def test_a_faker_config_without_faker_installed_is_warned_about(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(sandbox.url, tmp_path, faker_config={"seed": 1})
    run_in_process(config, order_stream(1))
    assert (
        "faker_config is ignored: Faker is not installed, so stream maps have no `fake`. "
        "Install it beside the target (pip install faker) to use it."
    ) in warnings_of(caplog)


@pytest.mark.parametrize(
    ("graph_url", "warned"),
    [
        ("http://graph.facebook.com", True),
        ("http://10.0.0.5:8080", True),
        ("https://graph.facebook.com", False),
        ("http://127.0.0.1:8787", False),
        ("http://localhost:8787", False),
        ("http://[::1]:8787", False),
    ],
)
def test_a_graph_url_in_clear_text_to_another_machine_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, graph_url: str, warned: bool
) -> None:
    # the configuration is checked at start: the run's requests go nowhere (a dry run's do
    # not, and it is not warned about: nothing is sent)
    config = orders_config(graph_url, tmp_path)
    with caplog.at_level(logging.WARNING):
        TargetMetaCapi(config=config, validate_config=True)
    unencrypted = [w for w in warnings_of(caplog) if "travel unencrypted" in w]
    assert bool(unencrypted) is warned


def test_a_dry_run_path_without_dry_run_is_warned_about(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(sandbox.url, tmp_path, dry_run_path=str(tmp_path / "dry.jsonl"))
    run_in_process(config, order_stream(1))
    assert "dry_run_path is ignored: dry_run is not true, so events are sent." in warnings_of(
        caplog
    )


def test_a_streams_entry_that_matches_no_stream_is_in_the_summary_warnings(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    streams = {"public-order": ORDERS_MAPPING}  # one letter short of the input's stream
    config = orders_config(sandbox.url, tmp_path, streams=streams)
    result = run_in_process(config, order_stream(2))
    warnings = result.target.stats.snapshot()["warnings"]
    assert (
        "`streams` entry 'public-order' matched no stream of this run "
        f"(streams seen: {STREAM!r})." in warnings
    )


# the input's stream is public-orders, as tap-postgres names the table orders of schema public
@pytest.mark.parametrize(
    "entry", ["public-order", "orders"], ids=["one letter short", "the table name alone"]
)
def test_a_skipped_stream_names_the_streams_entry_probably_meant_for_it(
    sandbox: SandboxServer, tmp_path: Path, entry: str
) -> None:
    config = orders_config(sandbox.url, tmp_path, streams={entry: ORDERS_MAPPING})
    result = run_in_process(config, order_stream(2))
    summary = result.target.stats.snapshot()
    assert summary["totals"]["events_skipped"] == 2
    assert (
        f"whose entry {entry!r} may be meant for it" in summary["streams"][STREAM]["skipped_reason"]
    )


def test_a_pattern_entry_that_matches_a_stream_is_not_warned_about(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = orders_config(sandbox.url, tmp_path, streams={"public-*": ORDERS_MAPPING})
    result = run_in_process(config, order_stream(2))
    assert result.exit_code == 0
    assert not any("matched no stream" in w for w in result.target.stats.snapshot()["warnings"])


def test_a_stream_several_patterns_match_is_sent_by_the_first_and_warned_about(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    streams = {"public-*": ORDERS_MAPPING, "*-orders": {**ORDERS_MAPPING, "event_name": "Lead"}}
    config = orders_config(sandbox.url, tmp_path, streams=streams)
    result = run_in_process(config, order_stream(2))
    assert [item["event"]["event_name"] for item in sandbox.accepted_events()] == ["Purchase"] * 2
    warnings = result.target.stats.snapshot()["warnings"]
    assert (
        f"Stream {STREAM!r} matches several `streams` patterns ('public-*', '*-orders'): only "
        "the first, 'public-*', applies (its pixel_id, event_name and fields). Give the stream "
        "an entry of its own name, or make the patterns exclusive."
    ) in warnings


def test_a_stream_with_an_entry_of_its_own_name_is_not_warned_about_patterns_matching_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    streams = {"public-*": ORDERS_MAPPING, "*-orders": ORDERS_MAPPING, STREAM: ORDERS_MAPPING}
    config = orders_config(sandbox.url, tmp_path, streams=streams)
    result = run_in_process(config, order_stream(2))
    assert not any("several" in w for w in result.target.stats.snapshot()["warnings"])


def test_a_stream_removed_by_stream_maps_is_not_warned_about_patterns_matching_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    streams = {"public-*": ORDERS_MAPPING, "*-orders": ORDERS_MAPPING}
    config = orders_config(sandbox.url, tmp_path, streams=streams, stream_maps={STREAM: None})
    result = run_in_process(config, order_stream(2))
    assert not any("several" in w for w in result.target.stats.snapshot()["warnings"])


def test_unmapped_columns_to_custom_data_names_the_columns_it_sends_unhashed(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    schema = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"], "full_name": {}}}
    mapping = {**ORDERS_MAPPING, "unmapped_columns_to_custom_data": True}
    config = orders_config(sandbox.url, tmp_path, streams={STREAM: mapping})
    run_in_process(config, [schema_line(schema=schema)])
    assert (
        f"Stream {STREAM!r}: unmapped_columns_to_custom_data sends these columns to Meta as "
        "custom_data, unhashed: full_name. Meta forbids personal data there"
    ) in " ".join(warnings_of(caplog))


def test_unmapped_columns_to_custom_data_is_not_warned_about_when_every_column_is_mapped(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mapping = {**ORDERS_MAPPING, "unmapped_columns_to_custom_data": True}
    config = orders_config(sandbox.url, tmp_path, streams={STREAM: mapping})
    run_in_process(config, [schema_line()])
    assert "unmapped_columns_to_custom_data" not in " ".join(warnings_of(caplog))


def _run_with_city_mapped_to(sandbox: SandboxServer, tmp_path: Path, *paths: str) -> RunResult:
    """An orders run whose `fields` map `city`, which ORDER_SCHEMA lacks (renamed, say)."""
    fields = {**ORDERS_MAPPING["fields"], **dict.fromkeys(paths, "city")}
    config = orders_config(
        sandbox.url, tmp_path, streams={STREAM: {**ORDERS_MAPPING, "fields": fields}}
    )
    return run_in_process(config, order_stream(1))


def test_a_mapped_column_the_schema_lacks_is_named_with_the_fields_it_feeds(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _run_with_city_mapped_to(sandbox, tmp_path, "user_data.ct", "custom_data.city")
    assert (
        f"Stream {STREAM!r}: `streams` maps columns its schema does not have: city "
        "(user_data.ct, custom_data.city)"
    ) in " ".join(warnings_of(caplog))


def test_a_mapped_column_the_schema_lacks_is_in_the_summary_warnings(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = _run_with_city_mapped_to(sandbox, tmp_path, "user_data.ct")
    assert any(
        "maps columns its schema does not have: city" in warning
        for warning in result.target.stats.snapshot()["warnings"]
    )


def test_a_mapped_column_the_schema_lacks_names_the_column_probably_meant(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    fields = {**ORDERS_MAPPING["fields"], "user_data.em": "emial"}
    config = orders_config(
        sandbox.url, tmp_path, streams={STREAM: {**ORDERS_MAPPING, "fields": fields}}
    )
    result = run_in_process(config, order_stream(1))
    assert (
        f"Stream {STREAM!r}: `streams` maps columns its schema does not have: "
        "emial (user_data.em; did you mean 'email'?)"
    ) in result.target.stats.snapshot()["warnings"]


def _run_keyless_orders(
    sandbox: SandboxServer, tmp_path: Path, mapping: dict[str, Any], key_properties: list[str]
) -> None:
    schema = json.dumps(
        {
            "type": "SCHEMA",
            "stream": STREAM,
            "schema": ORDER_SCHEMA,
            "key_properties": key_properties,
        }
    )
    run_in_process(orders_config(sandbox.url, tmp_path, streams={STREAM: mapping}), [schema])


ORDERS_MAPPING_WITHOUT_EVENT_ID = {
    **ORDERS_MAPPING,
    "fields": {
        path: column for path, column in ORDERS_MAPPING["fields"].items() if path != "event_id"
    },
}
ROW_IDENTITY_WARNING = "event_id is derived from the whole row"


def test_a_stream_without_key_properties_or_event_id_column_is_warned_its_ids_follow_every_column(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _run_keyless_orders(sandbox, tmp_path, ORDERS_MAPPING_WITHOUT_EVENT_ID, [])
    assert (
        f"Stream {STREAM!r} has no key properties and no event_id column: each "
        f"{ROW_IDENTITY_WARNING}, so a row changed in any column, or one whose table gained, "
        "lost or retyped a column, gets a new event_id, and Meta counts it again"
    ) in " ".join(warnings_of(caplog))


@pytest.mark.parametrize(
    ("mapping", "key_properties"),
    [(ORDERS_MAPPING, []), (ORDERS_MAPPING_WITHOUT_EVENT_ID, ["order_id"])],
    ids=["event-id-mapped", "key-properties"],
)
def test_a_stream_whose_rows_have_an_identity_is_not_warned_about_derived_ids(
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    mapping: dict[str, Any],
    key_properties: list[str],
) -> None:
    _run_keyless_orders(sandbox, tmp_path, mapping, key_properties)
    assert ROW_IDENTITY_WARNING not in " ".join(warnings_of(caplog))


POS_STREAM = "public-pos_orders"


def _run_orders_and_pos_orders(
    sandbox: SandboxServer, tmp_path: Path, pos_schema: dict, **pos_entry: Any
) -> RunResult:
    """Web orders and store orders, each a Purchase with event_id from its own order_id."""
    streams = {STREAM: ORDERS_MAPPING, POS_STREAM: {**ORDERS_MAPPING, **pos_entry}}
    lines = [schema_line(), schema_line(POS_STREAM, pos_schema)]
    return run_in_process(orders_config(sandbox.url, tmp_path, streams=streams), lines)


SHARED_IDS_WARNING = (
    f"Streams {STREAM!r} and {POS_STREAM!r} both send Purchase events to pixel "
    "'1234567890' with event_id from a number column (order_id, order_id): Meta takes events "
    "with the same event_name and event_id as one, so two rows numbered alike count once. "
    "Make their ids distinct (map event_id to a column or stream map prefixing the table)."
)


def test_two_streams_numbering_the_same_events_alike_are_warned_about(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = _run_orders_and_pos_orders(sandbox, tmp_path, ORDER_SCHEMA)
    assert SHARED_IDS_WARNING in result.target.stats.snapshot()["warnings"]


def test_a_stream_whose_schema_changes_is_not_warned_about_as_sharing_its_own_ids(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # as a tap sends it after the table gained a column
    altered = {
        **ORDER_SCHEMA,
        "properties": {**ORDER_SCHEMA["properties"], "note": {"type": ["string", "null"]}},
    }
    config = orders_config(sandbox.url, tmp_path, streams={STREAM: ORDERS_MAPPING})
    result = run_in_process(config, [schema_line(), schema_line(STREAM, altered)])
    assert not any("both send" in w for w in result.target.stats.snapshot()["warnings"])


def test_a_stream_joining_many_numbering_alike_is_warned_about_once(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    names = [f"public-orders_{n}" for n in range(6)]
    streams = {name: ORDERS_MAPPING for name in names}
    config = orders_config(sandbox.url, tmp_path, streams=streams)
    result = run_in_process(config, [schema_line(name) for name in names])
    warnings = [w for w in result.target.stats.snapshot()["warnings"] if "number column" in w]
    assert len(warnings) == len(names) - 1
    assert warnings[-1].startswith(
        "Stream 'public-orders_5' sends Purchase events to pixel '1234567890' with event_id "
        "from a number column (order_id), as 5 other streams of this run do ('public-orders_0', "
        "'public-orders_1', 'public-orders_2', ...): Meta takes events"
    )


TEXT_ORDER_ID_SCHEMA = {
    **ORDER_SCHEMA,
    "properties": {**ORDER_SCHEMA["properties"], "order_id": {"type": "string"}},
}


@pytest.mark.parametrize(
    ("pos_schema", "pos_entry"),
    [
        (TEXT_ORDER_ID_SCHEMA, {}),
        (ORDER_SCHEMA, {"event_name": "InStorePurchase"}),
        (ORDER_SCHEMA, {"pixel_id": "2233445566"}),
    ],
    ids=["text-ids", "other-event-name", "other-pixel"],
)
def test_streams_whose_event_ids_cannot_meet_are_not_warned_about(
    sandbox: SandboxServer, tmp_path: Path, pos_schema: dict, pos_entry: dict
) -> None:
    result = _run_orders_and_pos_orders(sandbox, tmp_path, pos_schema, **pos_entry)
    assert not any("both send" in w for w in result.target.stats.snapshot()["warnings"])
    assert result.exit_code == 0  # not for want of a run


def _run_schema_with_zip(
    sandbox: SandboxServer, tmp_path: Path, zip_schema: dict, **fields: str
) -> None:
    schema = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"], **zip_schema}}
    mapping = {**ORDERS_MAPPING, "fields": {**ORDERS_MAPPING["fields"], **fields}}
    config = orders_config(sandbox.url, tmp_path, streams={STREAM: mapping})
    run_in_process(config, [schema_line(schema=schema)])


NUMERIC_ZIP_WARNING = "typed as a number in the SCHEMA: a postal code kept as a number"


def test_a_zip_alias_column_typed_as_a_number_is_warned_about_at_its_schema(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _run_schema_with_zip(sandbox, tmp_path, {"zip": {"type": ["integer", "null"]}})
    assert (
        f"Stream {STREAM!r}: column 'zip', sent as user_data.zp, {NUMERIC_ZIP_WARNING} has lost "
        "its leading zeros (02134 became 2134)"
    ) in " ".join(warnings_of(caplog))


def test_a_column_mapped_to_zp_typed_as_a_number_is_warned_about_at_its_schema(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _run_schema_with_zip(
        sandbox, tmp_path, {"billing_code": {"type": "number"}}, **{"user_data.zp": "billing_code"}
    )
    assert "column 'billing_code', sent as user_data.zp" in " ".join(warnings_of(caplog))


@pytest.mark.parametrize(
    "zip_schema",
    [{"type": ["string", "null"]}, {"type": ["string", "integer"]}, {}],
    ids=["text", "text-or-number", "untyped"],
)
def test_a_zip_column_that_may_hold_text_is_not_warned_about(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, zip_schema: dict
) -> None:
    _run_schema_with_zip(sandbox, tmp_path, {"postal_code": zip_schema})
    assert NUMERIC_ZIP_WARNING not in " ".join(warnings_of(caplog))


def test_a_zip_named_column_mapped_elsewhere_is_not_warned_about(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _run_schema_with_zip(
        sandbox, tmp_path, {"zip": {"type": "integer"}}, **{"custom_data.store_zip": "zip"}
    )
    assert NUMERIC_ZIP_WARNING not in " ".join(warnings_of(caplog))


def test_unmapped_columns_to_custom_data_given_as_text_is_refused_at_start(
    tmp_path: Path,
) -> None:
    # the text "false" was taken for true, and every unmapped column went to Meta unhashed
    mapping = {**ORDERS_MAPPING, "unmapped_columns_to_custom_data": "false"}
    config = orders_config("http://127.0.0.1:9", tmp_path, streams={STREAM: mapping})
    assert config_errors(config) == [
        f"streams.{STREAM}.unmapped_columns_to_custom_data must be true or false "
        "(a JSON boolean), got 'false'"
    ]


def test_a_run_that_stopped_early_does_not_call_later_streams_entries_unmatched(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    streams = {STREAM: ORDERS_MAPPING, "public-refunds": ORDERS_MAPPING}
    lines = [*order_stream(1), "not json"]  # stops before any refund came
    result = run_in_process(orders_config(sandbox.url, tmp_path, streams=streams), lines)
    assert result.exit_code == 1
    assert not any("matched no stream" in w for w in result.target.stats.snapshot()["warnings"])


def test_an_event_name_differing_from_a_standard_one_in_case_is_in_the_summary_warnings(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    streams = {STREAM: {**ORDERS_MAPPING, "event_name": "purchase"}}
    result = run_in_process(orders_config(sandbox.url, tmp_path, streams=streams), order_stream(1))
    assert (
        f"streams.{STREAM}.event_name 'purchase' is not one of Meta's standard events; did you "
        "mean 'Purchase'? Event names are case-sensitive: Meta counts 'purchase' as a custom "
        "event, not as the standard 'Purchase'." in result.target.stats.snapshot()["warnings"]
    )


@pytest.mark.parametrize(
    ("name", "meant"),
    [("Purchse", "Purchase"), ("add_to_cart", "AddToCart"), ("Page View", "PageView")],
)
def test_a_default_event_name_like_a_standard_one_names_the_one_probably_meant(
    name: str, meant: str
) -> None:
    [warning] = event_name_warnings({"default_event_name": name})
    assert warning.startswith(
        f"default_event_name {name!r} is not one of Meta's standard events; did you mean {meant!r}?"
    )


def test_an_event_name_constant_like_a_standard_one_is_warned_about() -> None:
    config = {"streams": {STREAM: {"constants": {"event_name": "purchase"}}}}
    [warning] = event_name_warnings(config)
    assert warning.startswith(
        f"streams.{STREAM}.constants.event_name 'purchase' is not one of Meta's standard events"
    )


@pytest.mark.parametrize("name", ["Purchase", "Lead", "OrderShipped", "Unsubscribe", "Contacted"])
def test_a_standard_event_name_or_a_custom_one_unlike_any_is_not_warned_about(name: str) -> None:
    config = {"default_event_name": name, "streams": {STREAM: {"event_name": name}}}
    assert event_name_warnings(config) == []


def test_unknown_settings_are_in_the_summary_warnings_too(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = run_in_process(orders_config(sandbox.url, tmp_path, acess_token="x"), order_stream(1))
    assert (
        "Unknown setting 'acess_token' is ignored (did you mean 'access_token'?)."
        in result.target.stats.snapshot()["warnings"]
    )


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("TARGET_META_CAPI_STREAMS", '{"public-orders": ', "is not valid JSON (Expecting value"),
        ("TARGET_META_CAPI_BATCH_SIZE", "five hundred", "is not a whole number"),
        ("TARGET_META_CAPI_REQUEST_TIMEOUT", "thirty", "is not a number"),
        ("TARGET_META_CAPI_REQUEST_TIMEOUT", "NaN", "is not a number"),
        # the SDK's own settings, which it adds to the schema only as it reads them
        ("TARGET_META_CAPI_BATCH_SIZE_ROWS", "lots", "is not a whole number"),
        ("TARGET_META_CAPI_VALIDATE_RECORDS", "nope", "is not a boolean"),
    ],
)
def test_a_setting_in_the_environment_that_cannot_be_read_is_one_error_naming_the_variable(
    tmp_path: Path, variable: str, value: str, problem: str
) -> None:
    environment = {
        **os.environ,
        "TARGET_META_CAPI_PIXEL_ID": "1234567890",
        "TARGET_META_CAPI_ACCESS_TOKEN": "EAAsecretfromtheenvironment",
        variable: value,
    }
    completed = _run_cli(tmp_path, None, with_environment=True, env=environment, records=0)
    assert completed.returncode == 1
    assert f"Configuration error: environment variable {variable} {problem}" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert value not in completed.stderr
    assert "EAAsecretfromtheenvironment" not in completed.stderr


def test_numbers_in_the_environment_that_can_be_read_are_used(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    environment = {
        **{name: value for name, value in os.environ.items() if "DRY_RUN" not in name},
        "TARGET_META_CAPI_BATCH_SIZE": "2",
        "TARGET_META_CAPI_REQUEST_TIMEOUT": "30.5",  # a number with a fraction, read as one
    }
    completed = _run_cli(
        tmp_path,
        orders_config(sandbox.url, tmp_path),
        with_environment=True,
        env=environment,
        records=4,
    )
    assert completed.returncode == 0, completed.stderr
    assert sandbox.stats()["requests"] == 2  # batches of BATCH_SIZE


@pytest.mark.parametrize(("value", "read"), [("GB", "GB"), ("44", 44), ("+44", 44)])
def test_phone_country_code_in_the_environment_is_a_country_code_or_an_iso_code(
    sandbox: SandboxServer, tmp_path: Path, value: str, read: str | int
) -> None:
    # a setting taking text or a whole number: GB stays text, a whole number's text is one
    environment = {
        **{name: text for name, text in os.environ.items() if "DRY_RUN" not in name},
        "TARGET_META_CAPI_PHONE_COUNTRY_CODE": value,
    }
    completed = _run_cli(
        tmp_path, orders_config(sandbox.url, tmp_path), with_environment=True, env=environment
    )
    assert completed.returncode == 0, completed.stderr
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TARGET_META_CAPI_PHONE_COUNTRY_CODE", value)
        target = TargetMetaCapi(config=orders_config(sandbox.url, tmp_path), parse_env_config=True)
    assert target.config["phone_country_code"] == read


@pytest.mark.parametrize("value", ["ture", " true", "enabled"])
def test_a_boolean_in_the_environment_that_is_no_boolean_word_stops_the_run_before_sending(
    sandbox: SandboxServer, tmp_path: Path, value: str
) -> None:
    # singer-sdk reads any text but true/1/yes/on as false: a mistyped DRY_RUN sent for real
    completed = _run_cli(
        tmp_path,
        orders_config(sandbox.url, tmp_path),
        with_environment=True,
        env={**os.environ, "TARGET_META_CAPI_DRY_RUN": value},
    )
    assert completed.returncode == 1
    assert (
        "Configuration error: environment variable TARGET_META_CAPI_DRY_RUN is not a boolean"
        in completed.stderr
    )
    assert "Traceback" not in completed.stderr
    assert sandbox.accepted_events() == []


def _run_with_config_env(
    sandbox: SandboxServer, tmp_path: Path, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The target run with `--config ENV` in `tmp_path`, its working directory; by default
    in this process's environment without a dry run setting."""
    if environment is None:
        environment = {name: value for name, value in os.environ.items() if "DRY_RUN" not in name}
    return _run_cli(
        tmp_path, orders_config(sandbox.url, tmp_path), with_environment=True, env=environment
    )


def test_a_dotenv_file_in_the_working_directory_sets_settings_with_config_env(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("TARGET_META_CAPI_DRY_RUN=true\n", encoding="utf-8")
    completed = _run_with_config_env(sandbox, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "DRY RUN: nothing is sent to Meta" in completed.stderr
    assert sandbox.accepted_events() == []


def test_a_dotenv_file_any_user_may_write_to_is_not_read_and_is_warned_about(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # as one another user could put in a shared directory above the job's (/tmp)
    dotenv = tmp_path / ".env"
    dotenv.write_text("TARGET_META_CAPI_DRY_RUN=true\n", encoding="utf-8")
    dotenv.chmod(0o666)
    completed = _run_with_config_env(sandbox, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "DRY RUN" not in completed.stderr
    assert len(sandbox.accepted_events()) > 0
    assert (
        f"The .env file {dotenv} is not read: any user may write to it, and its variables "
        "would replace the environment's settings (graph_url, say). Make it yours and not "
        "writable by others."
    ) in completed.stderr


def test_a_mistyped_environment_variable_read_with_config_env_is_warned_about(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    environment = {**os.environ, "TARGET_META_CAPI_BATCH_SISE": "10"}
    completed = _run_with_config_env(sandbox, tmp_path, environment)
    assert completed.returncode == 0, completed.stderr
    assert (
        "Environment variable TARGET_META_CAPI_BATCH_SISE is ignored: it names no setting "
        "(did you mean TARGET_META_CAPI_BATCH_SIZE?)." in completed.stderr
    )


@pytest.fixture
def without_target_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No TARGET_META_CAPI_ variable in the environment, and `tmp_path`, without a .env,
    the working directory."""
    monkeypatch.chdir(tmp_path)
    for variable in list(os.environ):
        if variable.startswith("TARGET_META_CAPI_"):
            monkeypatch.delenv(variable)


@pytest.mark.usefixtures("without_target_variables")
def test_settings_and_the_sdks_log_level_in_the_environment_are_not_warned_about(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TARGET_META_CAPI_BATCH_SIZE", "10")
    monkeypatch.setenv("TARGET_META_CAPI_LOGLEVEL", "debug")
    monkeypatch.setenv("TARGET_META_CAPI_STREAM_MAPS", "{}")
    schema = TargetMetaCapi.settings_schema()
    assert unknown_environment_variables(schema, "TARGET_META_CAPI_") == []


@pytest.mark.usefixtures("without_target_variables")
def test_a_dotenv_file_variable_naming_no_setting_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TARGET_META_CAPI_ACESS_TOKEN=x\n", encoding="utf-8")
    schema = TargetMetaCapi.settings_schema()
    assert unknown_environment_variables(schema, "TARGET_META_CAPI_") == [
        "Environment variable TARGET_META_CAPI_ACESS_TOKEN is ignored: it names no setting "
        "(did you mean TARGET_META_CAPI_ACCESS_TOKEN?)."
    ]


def _assert_mistyped_dotenv_dry_run_is_refused(
    sandbox: SandboxServer, tmp_path: Path, environment: dict[str, str] | None = None
) -> None:
    """A run with `--config ENV` and `TARGET_META_CAPI_DRY_RUN=ture` in the working
    directory's .env stops at start naming the variable, and sends nothing."""
    (tmp_path / ".env").write_text("TARGET_META_CAPI_DRY_RUN=ture\n", encoding="utf-8")
    completed = _run_with_config_env(sandbox, tmp_path, environment)
    assert completed.returncode == 1
    assert (
        "Configuration error: environment variable TARGET_META_CAPI_DRY_RUN is not a boolean"
        in completed.stderr
    )
    assert sandbox.accepted_events() == []


def _environment_without_log_levels() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if "DRY_RUN" not in name and not name.endswith("LOGLEVEL")
    }


def test_a_log_level_in_the_dotenv_file_that_is_none_stops_the_run_naming_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("TARGET_META_CAPI_LOGLEVEL=verbose\n", encoding="utf-8")
    completed = _run_with_config_env(sandbox, tmp_path, _environment_without_log_levels())
    assert completed.returncode == 1
    assert completed.stderr == (
        "Configuration error: environment variable TARGET_META_CAPI_LOGLEVEL is 'verbose', "
        "which is no log level: use DEBUG, INFO, WARNING, ERROR or CRITICAL\n"
    )
    assert sandbox.accepted_events() == []


def test_a_log_level_in_the_dotenv_file_replaces_the_environments(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("TARGET_META_CAPI_LOGLEVEL=DEBUG\n", encoding="utf-8")
    environment = {**_environment_without_log_levels(), "TARGET_META_CAPI_LOGLEVEL": "WARNING"}
    completed = _run_with_config_env(sandbox, tmp_path, environment)
    assert completed.returncode == 0, completed.stderr
    assert "| DEBUG    | target-meta-capi " in completed.stderr


def test_a_dotenv_file_in_the_working_directory_is_checked_like_the_environment(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # the SDK sets a .env's variables before reading them, after the target checked the rest
    _assert_mistyped_dotenv_dry_run_is_refused(sandbox, tmp_path)


def test_a_dotenv_file_variable_is_checked_in_place_of_the_environment_one_it_replaces(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # python-dotenv replaces the environment's value with the file's: a mistyped one in the
    # file would turn the environment's dry run into a real one
    _assert_mistyped_dotenv_dry_run_is_refused(
        sandbox, tmp_path, {**os.environ, "TARGET_META_CAPI_DRY_RUN": "true"}
    )


@pytest.fixture
def dotenv_beside_singer_sdk() -> Iterator[Path]:
    """A `.env` where singer-sdk 0.54 looked for one: upwards from its module that loads it."""
    path = Path(sdk_environment_config.__file__).with_name(".env")
    if path.exists():
        pytest.skip(f"{path} exists already")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def test_a_dotenv_file_beside_singer_sdk_is_not_read(
    sandbox: SandboxServer, tmp_path: Path, dotenv_beside_singer_sdk: Path
) -> None:
    # where a run reads its .env from cannot depend on where singer-sdk is installed, nor
    # change with its version (0.55 looks in the working directory)
    dotenv_beside_singer_sdk.write_text("TARGET_META_CAPI_DRY_RUN=true\n", encoding="utf-8")
    completed = _run_with_config_env(sandbox, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "DRY RUN" not in completed.stderr
    assert len(sandbox.accepted_events()) == 2


def test_an_http_service_class_whose_module_fails_to_import_is_one_error_naming_the_setting(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    (tmp_path / "corporate_proxy.py").write_text("raise RuntimeError('no proxy today')\n")
    config = orders_config(sandbox.url, tmp_path, http_service_class="corporate_proxy:Service")
    import_path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    completed = _run_cli(tmp_path, config, env={**os.environ, "PYTHONPATH": import_path})
    assert completed.returncode == 1
    assert (
        "Configuration error: http_service_class: http service 'corporate_proxy:Service': "
        "importing module 'corporate_proxy' failed: RuntimeError: no proxy today"
    ) in completed.stderr
    assert "Traceback" not in completed.stderr
    assert sandbox.accepted_events() == []


def test_a_secret_pasted_as_the_http_service_class_is_not_quoted_in_its_error(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    summary_path = tmp_path / "summary.json"
    config = orders_config(
        sandbox.url, tmp_path, summary_path=str(summary_path), app_secret="pasted-app-secret"
    )
    config["http_service_class"] = "pasted-app-secret"
    completed = _run_cli(tmp_path, config)
    assert completed.returncode == 1
    assert "Configuration error: http_service_class: http service '<redacted>'" in (
        completed.stderr
    )
    assert "pasted-app-secret" not in completed.stderr
    assert "pasted-app-secret" not in summary_path.read_text()


def test_a_dry_run_refuses_an_http_service_class_a_real_run_would_refuse() -> None:
    with pytest.raises(ConfigurationError, match=r"^http_service_class: .*cannot import module"):
        TargetMetaCapi(
            config={
                "pixel_id": "1234567890",
                "dry_run": True,
                "http_service_class": "no_such_module_anywhere:Service",
            },
            parse_env_config=False,
        )


def test_a_number_setting_in_the_environment_is_read_as_a_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # singer-sdk itself leaves numbers from the environment as text, which it then refuses
    monkeypatch.setenv("TARGET_META_CAPI_REQUEST_TIMEOUT", "2.5")
    target = TargetMetaCapi(
        config={"pixel_id": "1234567890", "access_token": "x", "dry_run": True},
        parse_env_config=True,
    )
    assert target.config["request_timeout"] == 2.5


def test_a_number_setting_given_as_text_is_read_as_the_number() -> None:
    # Meltano passes a setting declared without a kind as text (meltano.yml declares no kind
    # for number settings: `kind: decimal` crashes Meltano 4.4 on values from the environment)
    target = TargetMetaCapi(
        config={"pixel_id": "1234567890", "access_token": "x", "request_timeout": " 2.5 "}
    )
    assert target.config["request_timeout"] == 2.5


def test_an_integer_setting_given_as_text_is_read_as_the_whole_number() -> None:
    target = TargetMetaCapi(
        config={"pixel_id": "1234567890", "access_token": "x", "batch_size": " 500 "}
    )
    assert target.config["batch_size"] == 500


def test_an_integer_setting_given_as_text_that_is_no_whole_number_is_refused_by_name() -> None:
    with pytest.raises(ConfigValidationError) as raised:
        TargetMetaCapi(config={"pixel_id": "1234567890", "access_token": "x", "batch_size": "2.5"})
    assert any("config['batch_size']" in error for error in raised.value.errors)


def test_a_number_setting_given_as_text_that_is_no_number_is_refused_by_name() -> None:
    with pytest.raises(ConfigValidationError) as raised:
        TargetMetaCapi(
            config={"pixel_id": "1234567890", "access_token": "x", "request_timeout": "thirty"}
        )
    assert any("config['request_timeout']" in error for error in raised.value.errors)


@pytest.mark.parametrize(
    "setting",
    ["request_timeout", "shutdown_grace_seconds", "progress_interval", "max_retry_seconds"],
)
@pytest.mark.parametrize("value", ["inf", 1e300], ids=["inf-as-text", "huge-number"])
def test_a_wait_longer_than_a_day_is_refused_at_start_by_name(setting: str, value: Any) -> None:
    # such a wait failed in mid-run with OverflowError (beyond the platform's time_t)
    with pytest.raises(ConfigValidationError) as raised:
        TargetMetaCapi(config={"pixel_id": "1234567890", "access_token": "x", setting: value})
    assert any(
        f"config['{setting}']" in error and "maximum of 86400" in error
        for error in raised.value.errors
    )


@pytest.mark.parametrize(
    ("setting", "value", "maximum"),
    [("concurrent_requests", 10**9, 256), ("record_workers", 10**20, 64)],
)
def test_more_requests_or_workers_than_a_process_can_hold_are_refused_at_start_by_name(
    sandbox: SandboxServer, tmp_path: Path, setting: str, value: int, maximum: int
) -> None:
    # a billion requests hung the start (requests sizes its pool up front); workers by the
    # thousand failed mid-run with "Too many open files"
    completed = _run_cli(tmp_path, orders_config(sandbox.url, tmp_path, **{setting: value}))
    assert completed.returncode == 1
    assert f"is greater than the maximum of {maximum} in config['{setting}']" in completed.stderr
    assert sandbox.accepted_events() == []


@pytest.mark.parametrize("batch_size_rows", [0, -5])
def test_a_batch_size_rows_below_one_is_refused_at_start(
    tmp_path: Path, batch_size_rows: int
) -> None:
    # the SDK's setting has no minimum: each event then went to Meta in a request of its own
    config = orders_config("http://127.0.0.1:9", tmp_path, batch_size_rows=batch_size_rows)
    assert config_errors(config) == [f"batch_size_rows must be at least 1, got {batch_size_rows}"]


def test_a_number_setting_given_as_nan_text_is_refused_by_name() -> None:
    # nan passes every minimum and maximum, as no comparison with it is true
    with pytest.raises(ConfigValidationError) as raised:
        TargetMetaCapi(
            config={"pixel_id": "1234567890", "access_token": "x", "request_timeout": "nan"}
        )
    assert any("config['request_timeout']" in error for error in raised.value.errors)


def test_a_setting_given_as_null_is_the_same_as_a_setting_not_given(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    unset = dict.fromkeys(("batch_size", "request_timeout", "max_batch_wait_seconds"))
    result = run_in_process(orders_config(sandbox.url, tmp_path, **unset), order_stream(3))
    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 3
    assert result.target.config["batch_size"] == 1000  # the default, as if not given


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), (" FALSE ", False), ("1", True), ("off", False)]
)
def test_a_boolean_setting_given_as_text_is_read_as_the_boolean(text: str, value: bool) -> None:
    # Meltano passes a setting declared without a kind as text (meltano.yml declares none for
    # booleans: `kind: boolean` makes Meltano read DRY_RUN=ture as false, and send for real)
    target = TargetMetaCapi(config={"pixel_id": "1234567890", "access_token": "x", "dry_run": text})
    assert target.config["dry_run"] is value


def test_a_boolean_setting_given_as_text_that_is_no_boolean_is_refused_by_name() -> None:
    with pytest.raises(ConfigValidationError) as raised:
        TargetMetaCapi(config={"pixel_id": "1234567890", "access_token": "x", "dry_run": "ture"})
    assert any("config['dry_run']" in error for error in raised.value.errors)


def test_the_sdks_own_integer_and_boolean_settings_given_as_text_are_read_as_such() -> None:
    target = TargetMetaCapi(
        config={
            "pixel_id": "1234567890",
            "access_token": "x",
            "validate_records": "false",
            "batch_size_rows": "300",
        }
    )
    assert (target.config["validate_records"], target.config["batch_size_rows"]) == (False, 300)


def test_a_load_method_of_none_of_the_sdks_choices_is_refused_naming_them_as_written() -> None:
    errors = config_errors({"pixel_id": "1234567890", "access_token": "x", "load_method": "append"})
    assert errors == [
        "'append' is not one of ['append-only', 'upsert', 'overwrite'] in config['load_method']"
    ]


SECRET_TOKEN = "sandbox-secret-token-0123456789abcdef"


def _fields_with_value_from(column: str) -> dict[str, Any]:
    return {**ORDERS_MAPPING["fields"], "custom_data.value": column}


@pytest.mark.parametrize(
    "overrides",
    [
        {SECRET_TOKEN: True},  # an unknown setting: the token pasted as a key
        {"streams": {STREAM: {**ORDERS_MAPPING, "fields": _fields_with_value_from(SECRET_TOKEN)}}},
        {"stream_maps": {STREAM: {"total": f"int('{SECRET_TOKEN}')"}}},
    ],
    ids=["unknown-setting", "fields-column", "stream-map-expression"],
)
def test_the_token_quoted_by_a_warning_or_the_failure_is_cut_out_of_the_log_and_summary(
    sandbox_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, overrides: Any
) -> None:
    sandbox = sandbox_factory(access_tokens=(SECRET_TOKEN,))
    summary = tmp_path / "summary.json"
    config = orders_config(
        sandbox.url, tmp_path, access_token=SECRET_TOKEN, summary_path=str(summary), **overrides
    )
    result = run_in_process(config, order_stream(2))
    logged = [record.getMessage() for record in caplog.records]
    assert any(record.levelno >= logging.WARNING for record in caplog.records)
    assert not [line for line in logged if SECRET_TOKEN in line]
    assert SECRET_TOKEN not in summary.read_text()
    assert result.exit_code in (0, 1)
