"""Customer information a stream's `fields` puts outside user_data: Meta gets it as mapped,
unhashed (the user's mapping says so, and is warned about at start), but dead letters and a
dry run's requests mask it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from target_meta_capi.capi.privacy import MASK, mask_fields
from target_meta_capi.capi.rules import RuleViolation
from target_meta_capi.dead_letter import DeadLetter, DeadLetterWriter
from target_meta_capi.mapping import build_event_mapper
from target_meta_capi.sandbox import SandboxServer

from ._http_fixture import (
    FakeGraphServer,
    rejection_echoing_the_request,
)
from ._target_support import (
    ORDERS_MAPPING,
    STREAM,
    order,
    order_stream,
    orders_config,
    read_dead_letters,
    run_in_process,
)

BUYER_EMAIL = "Buyer.Leak@Example.com"


def _mapping_with(**fields: str) -> dict:
    return {**ORDERS_MAPPING, "fields": {**ORDERS_MAPPING["fields"], **fields}}


def _unhashed_customer_fields(fields: dict[str, str]) -> tuple:
    mapper = build_event_mapper(
        STREAM, ["order_id"], {"streams": {STREAM: {"fields": fields}}}, schema_properties=()
    )
    assert mapper is not None
    return mapper.unhashed_customer_fields


def test_a_column_also_mapped_into_user_data_is_customer_information_elsewhere() -> None:
    fields = {"user_data.em": "contact", "custom_data.contact": "contact"}
    assert _unhashed_customer_fields(fields) == ((("custom_data", "contact"), "contact"),)


def test_a_column_named_like_a_user_data_key_is_customer_information_elsewhere() -> None:
    fields = {"custom_data.buyer_phone": "Phone_Number", "custom_data.note": "customer.email"}
    assert _unhashed_customer_fields(fields) == (
        (("custom_data", "buyer_phone"), "Phone_Number"),
        (("custom_data", "note"), "customer.email"),
    )


def test_other_columns_outside_user_data_are_not_customer_information() -> None:
    fields = {"user_data.em": "email", "custom_data.order_id": "order_id", "event_time": "at"}
    assert _unhashed_customer_fields(fields) == ()


def test_a_column_named_like_a_place_is_not_presumed_a_customers() -> None:
    # README's own example: an order's status, not the customer's state
    fields = {"custom_data.status": "state", "custom_data.ship_to": "country"}
    assert _unhashed_customer_fields(fields) == ()


def test_mask_fields_masks_the_values_at_the_paths_the_event_has() -> None:
    event = {"custom_data": {"buyer": "x@y.z", "value": 3}, "event_source_url": "https://s/"}
    masked = mask_fields(event, [("custom_data", "buyer"), ("event_source_url",)])
    assert masked == {"custom_data": {"buyer": MASK, "value": 3}, "event_source_url": MASK}
    assert event["custom_data"]["buyer"] == "x@y.z"  # the event itself is left as it was


def test_mask_fields_leaves_missing_and_null_values_as_they_are() -> None:
    event = {"custom_data": {"buyer": None}, "event_name": "Purchase"}
    paths = [("custom_data", "buyer"), ("custom_data", "phone"), ("app_data", "x")]
    assert mask_fields(event, paths) == {"custom_data": {"buyer": None}, "event_name": "Purchase"}


def test_the_writer_masks_a_streams_fields_in_that_streams_letters_only(tmp_path: Path) -> None:
    # a parameter of Meta's (custom properties are masked in every letter)
    event = {"event_name": "Purchase", "custom_data": {"content_name": BUYER_EMAIL}}
    writer = DeadLetterWriter(tmp_path / "letters.jsonl")
    writer.mask_fields("orders", [("custom_data", "content_name")])
    violation = RuleViolation("purchase_currency_invalid", "custom_data.currency", "bad", 2804013)
    for stream in ("orders", "refunds"):
        writer.write(
            DeadLetter.from_violations(stream=stream, key={}, event=event, violations=[violation])
        )
    writer.close()
    orders, refunds = (json.loads(line) for line in (tmp_path / "letters.jsonl").open())
    assert orders["event"]["custom_data"]["content_name"] == MASK
    assert refunds["event"]["custom_data"]["content_name"] == BUYER_EMAIL


def test_a_run_warns_of_customer_information_outside_user_data_by_field_and_column(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mapping = _mapping_with(**{"custom_data.buyer": "email"})
    config = orders_config(sandbox.url, tmp_path, streams={STREAM: mapping})
    with caplog.at_level(logging.WARNING):
        run_in_process(config, order_stream(1))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        f"Stream {STREAM!r}: `fields` sends customer information to Meta unhashed, outside "
        "user_data: custom_data.buyer (column 'email')."
    ) in " ".join(warnings)


# Mapped to a parameter of Meta's below: a custom property (custom_data.buyer) is masked in
# dead letters and dry runs whatever its column.


def _letter_of_an_order_with_a_bad_currency(
    sandbox: SandboxServer, tmp_path: Path, fields: dict[str, str], **columns: str
) -> tuple[dict, str]:
    """The dead letter of one order Meta's rules refuse (its currency), mapped with `fields`
    besides the orders mapping, and the text of the dead-letter file."""
    config = orders_config(sandbox.url, tmp_path, streams={STREAM: _mapping_with(**fields)})
    bad_currency = order(1, currency="dollars", **columns)
    result = run_in_process(config, order_stream(1, records=[bad_currency]))
    assert result.exit_code == 0
    [letter] = read_dead_letters(tmp_path)
    assert letter["rule"] == "purchase_currency_invalid"
    return letter, (tmp_path / "dead_letters.jsonl").read_text()


def test_a_dead_letter_masks_customer_information_mapped_outside_user_data(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    letter, letters = _letter_of_an_order_with_a_bad_currency(
        sandbox, tmp_path, {"custom_data.content_name": "email"}, email=BUYER_EMAIL
    )
    assert letter["event"]["custom_data"]["content_name"] == MASK
    assert BUYER_EMAIL not in letters


def test_a_dead_letter_masks_custom_properties_whatever_their_columns_names(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    note = "call Jane Doe at 616 954 7888, 1 Main St"
    letter, letters = _letter_of_an_order_with_a_bad_currency(
        sandbox, tmp_path, {"custom_data.note": "note"}, note=note
    )
    assert letter["event"]["custom_data"]["note"] == MASK
    assert letter["event"]["custom_data"]["order_id"] == "1"  # Meta's own parameters shown
    assert note not in letters


def test_a_dry_run_masks_customer_information_mapped_outside_user_data(tmp_path: Path) -> None:
    mapping = _mapping_with(**{"custom_data.content_name": "email"})
    dry_run_path = tmp_path / "dry_run.jsonl"
    config = orders_config(
        "http://127.0.0.1:9",  # never asked: nothing is sent
        tmp_path,
        streams={STREAM: mapping},
        dry_run=True,
        dry_run_path=str(dry_run_path),
    )
    result = run_in_process(config, order_stream(1, records=[order(1, email=BUYER_EMAIL)]))
    assert result.exit_code == 0
    [request] = [json.loads(line) for line in dry_run_path.read_text().splitlines()]
    assert request["payload"]["data"][0]["custom_data"]["content_name"] == MASK
    assert BUYER_EMAIL not in dry_run_path.read_text()


def test_metas_error_quoting_the_request_loses_the_masked_values_in_the_dead_letter(
    tmp_path: Path,
) -> None:
    mapping = _mapping_with(**{"custom_data.buyer": "email"})
    with FakeGraphServer(rejection_echoing_the_request) as server:
        config = orders_config(server.url, tmp_path, streams={STREAM: mapping})
        run_in_process(config, order_stream(1, records=[order(1, email=BUYER_EMAIL)]))
    [letter] = read_dead_letters(tmp_path)
    assert letter["meta_error"]["error_subcode"] == 2804050
    assert "Invalid parameter: " in letter["message"]
    assert BUYER_EMAIL not in (tmp_path / "dead_letters.jsonl").read_text()


def test_metas_error_quoting_the_request_loses_the_masked_values_in_the_failed_runs_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mapping = _mapping_with(**{"custom_data.buyer": "email"})
    with FakeGraphServer(rejection_echoing_the_request) as server:
        config = orders_config(
            server.url, tmp_path, streams={STREAM: mapping}, on_invalid_event="fail"
        )
        result = run_in_process(config, order_stream(1, records=[order(1, email=BUYER_EMAIL)]))
    assert result.exit_code == 1
    [failure] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "Meta rejected an event of stream" in failure
    assert "Invalid parameter: " in failure
    assert BUYER_EMAIL not in caplog.text


@pytest.mark.parametrize("field", ["event_id", "event_name"])
def test_a_dead_letter_masks_customer_information_repeated_at_its_top_level(
    tmp_path: Path, field: str
) -> None:
    event = {"event_name": "Purchase", "event_id": "evt-1", field: BUYER_EMAIL}
    writer = DeadLetterWriter(tmp_path / "letters.jsonl")
    writer.mask_fields("orders", [(field,)])
    violation = RuleViolation("purchase_currency_invalid", "custom_data.currency", "bad", 2804013)
    writer.write(
        DeadLetter.from_violations(stream="orders", key={}, event=event, violations=[violation])
    )
    writer.close()
    [letter] = [json.loads(line) for line in (tmp_path / "letters.jsonl").open()]
    assert letter[field] == MASK
    assert letter["event"][field] == MASK
    assert BUYER_EMAIL not in (tmp_path / "letters.jsonl").read_text()


def test_a_run_dead_letters_an_event_id_mapped_from_a_customer_column_masked(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    mapping = _mapping_with(event_id="email")
    config = orders_config(sandbox.url, tmp_path, streams={STREAM: mapping})
    bad_currency = order(1, email=BUYER_EMAIL, currency="dollars")
    result = run_in_process(config, order_stream(1, records=[bad_currency]))
    assert result.exit_code == 0
    [letter] = read_dead_letters(tmp_path)
    assert letter["event_id"] == MASK
    assert BUYER_EMAIL not in (tmp_path / "dead_letters.jsonl").read_text()
