"""A mapper plans once per set of columns that matters: records that differ only in columns
nothing reads (a document store's records leave out their null columns) share a plan.

Sharing must never change an event: each record must map as it does with a plan made from all
of its columns, the reference here (a mapper that plans from all of a record's columns).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

import target_meta_capi.mapping.mapper as mapper_module
from target_meta_capi.mapping import EventMapper, MappingError, build_event_mapper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import generate
from run import ORDERS_MAPPING as BENCHMARK_STREAMS

STREAM = generate.STREAM
EXTRA_COLUMNS = [f"attr_{index}" for index in range(12)]
# "event_time", a copy of created_at, gives the aliases-only config its events' times
SCHEMA_COLUMNS = [
    *generate.SCHEMA["properties"],
    *EXTRA_COLUMNS,
    "Email",
    "customer",
    "event_time",
]

# the benchmark's mapping, with one field reading a value nested in an object column
ORDERS = {
    **BENCHMARK_STREAMS[STREAM],
    "fields": {**BENCHMARK_STREAMS[STREAM]["fields"], "user_data.em": ["email", "customer.email"]},
}
CONFIGS = {
    "mapped fields": {"streams": {STREAM: ORDERS}},
    "aliases only": {"default_event_name": "Purchase", "default_action_source": "website"},
    "unmapped columns to custom_data": {
        "streams": {STREAM: {**ORDERS, "unmapped_columns_to_custom_data": True}}
    },
}


def sparse_records(count: int) -> list[dict[str, Any]]:
    """Orders with random columns left out, mapped and alias-named ones among them, and
    columns only some records have (Singer metadata and a column outside the SCHEMA too)."""
    rng = random.Random(5)
    now = dt.datetime.now(dt.timezone.utc)
    customers = generate.make_customers(20, rng)
    records = []
    for order_id in range(1, count + 1):
        record = generate.order_record(order_id, rng.choice(customers), rng, now)
        record.update({column: rng.randint(0, 9) for column in EXTRA_COLUMNS})
        record["event_time"] = record["created_at"]
        if rng.random() < 0.3:
            record["Email"] = f"Other{order_id}@Example.com"
        if rng.random() < 0.3:
            record["customer"] = {"email": f"nested{order_id}@example.com"}
        if rng.random() < 0.3:
            record["_sdc_batched_at"] = "2026-11-29T10:00:00Z"
        if rng.random() < 0.3:
            record["outside_the_schema"] = order_id
        kept = [column for column in record if column == "order_id" or rng.random() < 0.8]
        if rng.random() < 0.5:
            rng.shuffle(kept)
        records.append({column: record[column] for column in kept})
    return records


def mapper_for(config: dict[str, Any]) -> EventMapper:
    mapper = build_event_mapper(STREAM, ["order_id"], config, SCHEMA_COLUMNS)
    assert mapper is not None
    return mapper


def outcome(mapper: EventMapper, record: dict[str, Any]) -> Any:
    try:
        mapped = mapper.map(dict(record))
    except MappingError as error:
        return "error", error.field, str(error)
    return json.dumps(mapped.event, default=str), mapped.dropped, mapped.event_id


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_records_with_different_columns_map_as_with_a_plan_of_all_their_columns(
    config, monkeypatch
):
    shared = mapper_for(config)
    reference = mapper_for(config)
    monkeypatch.setattr(reference, "_plan_for", reference._plan)

    for record in sparse_records(300):
        assert outcome(shared, record) == outcome(reference, record)


def test_columns_outside_the_schema_are_remembered_up_to_a_bound_and_map_alike(monkeypatch):
    monkeypatch.setattr(mapper_module, "_MAX_KNOWN_COLUMNS", 8)
    config = CONFIGS["mapped fields"]
    shared = mapper_for(config)
    reference = mapper_for(config)
    monkeypatch.setattr(reference, "_plan_for", reference._plan)

    for index, record in enumerate(sparse_records(60)):
        record[f"stray_{index}"] = index  # a new column each time, as a schemaless source
        assert outcome(shared, record) == outcome(reference, record)
        # forgotten when full: at most the bound and this record's columns
        assert len(shared._read_columns) < 8 + len(record)
