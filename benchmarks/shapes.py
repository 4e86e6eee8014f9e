"""Input shapes other than the benchmark's: the target and the floor target on each.

    .venv/bin/python benchmarks/shapes.py --records 50000 --shapes unique,narrow,wide

benchmarks/run.py measures one shape: 26-column orders from 5,000 customers who come back. A
production table can look very different, and a shape the design was not tuned for may hit a
slow path or hold memory per record. For each shape named in --shapes this writes N records
(M with --larger, for memory growth), then measures, over the same file:
  the target, end to end against the sandbox (as run.py's (a): default settings, wall time until
      every event is acknowledged or dead-lettered, CPU of its process tree, peak PSS of it);
  the floor target (benchmarks/floor_target.py): the SDK's cost of reading and validating the
      same records, which no target can go below;
and prints per record the CPU of each and their ratio. A shape is pathological when that ratio
is well above the benchmark shape's (`benchmark`, measured the same way), or when memory grows
with N.

Shapes:
  benchmark  generate.py's orders, 5,000 customers: the reference ratio
  unique     every order from a different customer (a day of one-off buyers): the memo is off
  narrow     4 columns: event_name, event_time, id, email (customers repeat)
  wide       the benchmark's 26 columns and 130 more that nothing maps
  contents   custom_data.contents of 20-50 items and a 5-15 KB text column sent as
             custom_data.description: rows of 8-20 KB
  streams50  50 streams interleaved, each with its own `streams` entry
  pattern    the same 50 streams matched by one pattern entry (`public-orders-*`)
  deadletter the benchmark's orders, 10% breaking Meta's rules (5% older than 7 days, 5% a
             Purchase without value): dead-lettered locally
  sparse     the wide shape as a document store writes it: columns that are null left out of
             the record, so records come with many different sets of columns
  sparsecd   the same with unmapped_columns_to_custom_data: the 130 columns go to custom_data

The sandbox runs on --port (default 8850) with --latency-ms (100); the figures are best of
--repeat runs, target and floor alternating.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from generate import SCHEMA, STREAM, make_customers, order_record, orders, state_message
from run import (
    ORDERS_MAPPING,
    Measurement,
    SandboxProcess,
    compile_bytecode,
    in_workdir,
    machine_description,
    measure_sending,
    run_noop,
    sandbox,
    target_command,
)

STATE_EVERY = 10_000
EXTRA_COLUMNS = 130
STREAMS = 50

Record = tuple[str, dict]  # stream, record
Shape = Callable[[int, random.Random, datetime], Iterator[Record]]


@dataclasses.dataclass
class ShapeSpec:
    """How to write a shape: its SCHEMA messages, records, and the `streams` setting."""

    schemas: dict[str, dict]  # stream -> JSON schema
    records: Shape
    streams_setting: dict
    key: str = "order_id"


# --- the shapes --------------------------------------------------------------------------------


def _benchmark(n: int, rng: random.Random, now: datetime) -> Iterator[Record]:
    for record in orders(n, seed=rng.randint(0, 1 << 30), now=now):
        yield STREAM, record


def _unique(n: int, rng: random.Random, now: datetime) -> Iterator[Record]:
    # one new customer per order, made as they are needed: a pool of N would hold them all
    for order_id in range(1, n + 1):
        customer = make_customers(1, rng)[0]
        customer = dataclasses.replace(customer, customer_id=f"CUST-{order_id:08d}")
        yield STREAM, order_record(order_id, customer, rng, now)


NARROW_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": ["integer"]},
        "event_name": {"type": ["string"]},
        "event_time": {"type": ["string"], "format": "date-time"},
        "email": {"type": ["string", "null"]},
    },
}


def _narrow(n: int, rng: random.Random, now: datetime) -> Iterator[Record]:
    for record in orders(n, seed=rng.randint(0, 1 << 30), now=now):
        yield (
            STREAM,
            {
                "id": record["order_id"],
                "event_name": "Lead",
                "event_time": record["created_at"],
                "email": record["email"],
            },
        )


def _extra_column_schema(index: int) -> dict:
    kinds = [
        {"type": ["string", "null"]},
        {"type": ["integer", "null"]},
        {"type": ["number", "null"]},
        {"type": ["boolean", "null"]},
        {"type": ["string", "null"], "format": "date-time"},
    ]
    return kinds[index % len(kinds)]


WIDE_SCHEMA = {
    "type": "object",
    "properties": {
        **SCHEMA["properties"],
        **{f"attr_{i:03d}": _extra_column_schema(i) for i in range(EXTRA_COLUMNS)},
    },
}


def _extra_value(index: int, rng: random.Random, now: datetime) -> object:
    if rng.random() < 0.3:
        return None
    kind = index % 5
    if kind == 0:
        return f"value-{rng.randint(0, 10_000)}"
    if kind == 1:
        return rng.randint(0, 1_000_000)
    if kind == 2:
        return round(rng.uniform(0, 1000), 3)
    if kind == 3:
        return rng.random() < 0.5
    return (now - timedelta(seconds=rng.randint(0, 10_000_000))).isoformat()


def _wide(n: int, rng: random.Random, now: datetime) -> Iterator[Record]:
    for stream, record in _benchmark(n, rng, now):
        for index in range(EXTRA_COLUMNS):
            record[f"attr_{index:03d}"] = _extra_value(index, rng, now)
        yield stream, record


def _sparse(n: int, rng: random.Random, now: datetime) -> Iterator[Record]:
    for stream, record in _wide(n, rng, now):
        yield stream, {column: value for column, value in record.items() if value is not None}


CONTENTS_SCHEMA = {
    "type": "object",
    "properties": {
        **SCHEMA["properties"],
        "contents": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "quantity": {"type": "integer"},
                    "item_price": {"type": "number"},
                    "title": {"type": "string"},
                },
            },
        },
        "description": {"type": ["string", "null"]},
    },
}
WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
]


def _contents(n: int, rng: random.Random, now: datetime) -> Iterator[Record]:
    for stream, record in _benchmark(n, rng, now):
        record["contents"] = [
            {
                "id": f"SKU-{rng.randint(1000, 9999)}",
                "quantity": rng.randint(1, 4),
                "item_price": round(rng.uniform(1, 200), 2),
                "title": " ".join(rng.choices(WORDS, k=6)),
            }
            for _ in range(rng.randint(20, 50))
        ]
        words = rng.randint(800, 2400)  # ~6 bytes each: 5-15 KB
        record["description"] = " ".join(rng.choices(WORDS, k=words))
        yield stream, record


def _many_streams(n: int, rng: random.Random, now: datetime) -> Iterator[Record]:
    for stream, record in _benchmark(n, rng, now):
        yield f"{stream}-{record['order_id'] % STREAMS:02d}", record


def _dead_letters(n: int, rng: random.Random, now: datetime) -> Iterator[Record]:
    for stream, record in _benchmark(n, rng, now):
        roll = rng.random()
        if roll < 0.05:
            record["created_at"] = (now - timedelta(days=10)).isoformat()
        elif roll < 0.10:
            record["total"] = None
        yield stream, record


def _orders_entry(**changes: object) -> dict:
    return {**ORDERS_MAPPING[STREAM], **changes}


SHAPES: dict[str, ShapeSpec] = {
    "benchmark": ShapeSpec({STREAM: SCHEMA}, _benchmark, ORDERS_MAPPING),
    "unique": ShapeSpec({STREAM: SCHEMA}, _unique, ORDERS_MAPPING),
    "narrow": ShapeSpec(
        {STREAM: NARROW_SCHEMA},
        _narrow,
        {STREAM: {"action_source": "system_generated", "fields": {"event_id": "id"}}},
        key="id",
    ),
    "wide": ShapeSpec({STREAM: WIDE_SCHEMA}, _wide, ORDERS_MAPPING),
    "sparse": ShapeSpec({STREAM: WIDE_SCHEMA}, _sparse, ORDERS_MAPPING),
    "sparsecd": ShapeSpec(
        {STREAM: WIDE_SCHEMA},
        _sparse,
        {STREAM: _orders_entry(unmapped_columns_to_custom_data=True)},
    ),
    "contents": ShapeSpec(
        {STREAM: CONTENTS_SCHEMA},
        _contents,
        {
            STREAM: _orders_entry(
                fields={
                    **ORDERS_MAPPING[STREAM]["fields"],
                    "custom_data.contents": "contents",
                    "custom_data.description": "description",
                }
            )
        },
    ),
    "streams50": ShapeSpec(
        {f"{STREAM}-{i:02d}": SCHEMA for i in range(STREAMS)},
        _many_streams,
        {f"{STREAM}-{i:02d}": _orders_entry() for i in range(STREAMS)},
    ),
    "pattern": ShapeSpec(
        {f"{STREAM}-{i:02d}": SCHEMA for i in range(STREAMS)},
        _many_streams,
        {f"{STREAM}-*": _orders_entry()},
    ),
    "deadletter": ShapeSpec({STREAM: SCHEMA}, _dead_letters, ORDERS_MAPPING),
}


def write_shape(path: Path, shape: ShapeSpec, records: int, seed: int = 7) -> Path:
    """SCHEMA of each stream, `records` RECORDs, a STATE every 10,000 and at the end."""
    now = datetime.now(timezone.utc)
    rng = random.Random(seed)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    stamp = now.isoformat().replace("+00:00", "Z")
    with path.open("w", encoding="utf-8") as out:
        for stream, schema in shape.schemas.items():
            message = {"type": "SCHEMA", "stream": stream, "schema": schema}
            out.write(dumps({**message, "key_properties": [shape.key]}) + "\n")
        count = 0
        for count, (stream, record) in enumerate(shape.records(records, rng, now), start=1):
            message = {"type": "RECORD", "stream": stream, "record": record}
            out.write(dumps({**message, "time_extracted": stamp}) + "\n")
            if count % STATE_EVERY == 0:
                out.write(dumps(state_message(count)) + "\n")
        if count % STATE_EVERY:
            out.write(dumps(state_message(count)) + "\n")
    return path


# --- measuring ---------------------------------------------------------------------------------


def run_shape_target(
    name: str,
    shape: ShapeSpec,
    path: Path,
    records: int,
    box: SandboxProcess,
    workdir: Path,
    settings: dict[str, object],
) -> Measurement:
    command = target_command(box, workdir, name, streams=shape.streams_setting, **settings)
    result = measure_sending(f"{name}: target", command, path, records, box, workdir, name)
    if result.problem and "distinct of" in result.problem:
        # dead-lettered events never reach the sandbox: count them in
        letters = workdir / f"{name}.dead-letters.jsonl"
        dead = sum(1 for _ in letters.open()) if letters.exists() else 0
        stats = box.stats()
        delivered = stats.get("events_received", 0) - stats.get("duplicate_events", 0)
        result.problem = (
            None
            if delivered + dead == records
            else f"{delivered} delivered + {dead} dead-lettered of {records}"
        )
        if letters.exists():
            letters.unlink()  # appended to: the next run counts its own
    return result


def _mb(run: Measurement) -> float:
    return run.peak_tree_pss_mb or run.peak_rss_mb


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--larger", type=int, help="also run the target on this many (memory)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--port", type=int, default=8850)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--no-floor", action="store_true", help="measure the target only")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SETTING=JSON",
        help="a target setting other than its default, e.g. --set batch_size=250",
    )
    args = parser.parse_args()
    names = args.shapes.split(",")
    unknown = [name for name in names if name not in SHAPES]
    if unknown:
        parser.error(f"unknown shapes: {', '.join(unknown)}")
    args.settings = {
        setting: json.loads(value) for setting, value in (item.split("=", 1) for item in args.set)
    }
    return in_workdir(args.workdir, "capi-shapes-", lambda workdir: _run(args, names, workdir))


def _run(args: argparse.Namespace, names: list[str], workdir: Path) -> int:
    print(f"machine: {machine_description()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    if args.settings:
        print(f"target settings other than the defaults: {args.settings}", flush=True)
    compile_bytecode()
    failed = False
    header = (
        f"{'shape':<11} {'records':>9} {'events/s':>9} {'target µs/rec':>13} "
        f"{'floor µs/rec':>12} {'ratio':>6} {'peak MB':>8}"
    )
    rows = []
    with sandbox(args.latency_ms, workdir, None, port=args.port) as box:
        for name in names:
            shape = SHAPES[name]
            sizes = [args.records] + ([args.larger] if args.larger else [])
            for size in sizes:
                started = time.perf_counter()
                path = write_shape(workdir / f"{name}-{size}.singer", shape, size)
                print(
                    f"{name}: {size:,} records, {path.stat().st_size / 1e6:.0f} MB written in "
                    f"{time.perf_counter() - started:.1f} s",
                    flush=True,
                )
                target_runs: list[Measurement] = []
                floor_runs: list[Measurement] = []
                for _ in range(args.repeat):  # alternating, so both see the same load
                    run = run_shape_target(name, shape, path, size, box, workdir, args.settings)
                    target_runs.append(run)
                    if run.problem:
                        break
                    if not args.no_floor and size == args.records:
                        floor_runs.append(run_noop(path, size, workdir, floor=True))
                # the least CPU (other load on the machine only ever adds to it), a failure first
                target = min(target_runs, key=lambda run: (run.problem is None, run.cpu_seconds))
                target.peak_tree_pss_mb = max(_mb(run) for run in target_runs)
                floor = min(floor_runs, key=lambda run: run.cpu_seconds, default=None)
                path.unlink()
                if target.problem:
                    print(f"  FAILED: {target.problem}", flush=True)
                    failed = True
                    continue
                target_us = target.cpu_seconds / size * 1e6
                floor_us = floor.cpu_seconds / size * 1e6 if floor else float("nan")
                row = (
                    f"{name:<11} {size:>9,} {target.events_per_second:>9,.0f} "
                    f"{target_us:>13.1f} {floor_us:>12.1f} {target_us / floor_us:>6.2f} "
                    f"{_mb(target):>8.1f}"
                )
                rows.append(row)
                print(row, flush=True)
    print("\n" + header)
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
