"""Write examples/orders.singer: a small, realistic `public-orders` stream for the demo.

Meta rejects events older than 7 days, so a committed file with fixed times would go stale:
run this script first, it stamps the orders within the last 24 hours.

    python examples/make_orders.py            # → examples/orders.singer (50 orders)
    cat examples/*.singer | target-meta-capi --config config.sample.json

The customer data is deliberately messy (case, spaces, punctuation, phone formats, a few
unusable values) to show the normalization; all of it is made up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from pathlib import Path

STREAM = "public-orders"
SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "email": {"type": ["string", "null"]},
        "phone": {"type": ["string", "null"]},
        "first_name": {"type": ["string", "null"]},
        "last_name": {"type": ["string", "null"]},
        "city": {"type": ["string", "null"]},
        "state": {"type": ["string", "null"]},
        "zip": {"type": ["string", "null"]},
        "country": {"type": ["string", "null"]},
        "client_ip": {"type": ["string", "null"]},
        "user_agent": {"type": ["string", "null"]},
        "page_url": {"type": ["string", "null"]},
        "total": {"type": "number"},
        "currency": {"type": "string"},
    },
    "required": ["order_id", "created_at", "total", "currency"],
}
CUSTOMERS = [
    (
        " Mary.Smith@Example.COM ",
        "+1 (616) 954-7888",
        "Mary",
        "Smith",
        "Menlo Park",
        "California",
        "94035-1234",
        "US",
    ),
    (
        "jose.garcia@example.org",
        "001 212 555 0101",
        "José",
        "García",
        "New York",
        "NY",
        "10001",
        "United States",
    ),
    ("LI.WEI@EXAMPLE.NET", "+44 844 412 4653", "Wei", "Li", "London", "", "SW1A 1AA", "GB"),
    (
        "o'brien@example.ie",
        "+353 1 555 0199",
        "Siobhán",
        "O'Brien",
        "Dublin",
        None,
        None,
        "Ireland",
    ),
    ("anna.mueller@example.de", "+49 30 1234567", "Anna", "Müller", "Berlin", None, "10115", "DEU"),
    ("not-an-email", "12", "Sam", "Lee", "Austin", "Texas", "73301", "us"),
]
USER_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile",
]


def make_lines(count: int, now: dt.datetime, seed: int = 42) -> list[str]:
    rng = random.Random(seed)
    lines = [
        json.dumps(
            {"type": "SCHEMA", "stream": STREAM, "schema": SCHEMA, "key_properties": ["order_id"]}
        )
    ]
    for index in range(count):
        email, phone, first, last, city, state, zip_code, country = CUSTOMERS[
            index % len(CUSTOMERS)
        ]
        created = now - dt.timedelta(hours=24) + dt.timedelta(seconds=index * 86_000 // count)
        order_id = 100_001 + index
        record = {
            "order_id": order_id,
            "created_at": created.isoformat(timespec="seconds"),
            "email": email,
            "phone": phone,
            "first_name": first,
            "last_name": last,
            "city": city,
            "state": state,
            "zip": zip_code,
            "country": country,
            "client_ip": f"203.0.113.{rng.randint(1, 254)}",
            "user_agent": rng.choice(USER_AGENTS),
            "page_url": f"https://shop.example.com/checkout/thank-you?order={order_id}",
            "total": round(rng.uniform(9.5, 450), 2),
            "currency": "USD" if country in ("US", "us", "United States") else "EUR",
        }
        lines.append(json.dumps({"type": "RECORD", "stream": STREAM, "record": record}))
        if (index + 1) % 20 == 0 or index + 1 == count:
            bookmark = {
                "replication_key": "created_at",
                "replication_key_value": record["created_at"],
            }
            lines.append(json.dumps({"type": "STATE", "value": {"bookmarks": {STREAM: bookmark}}}))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="number of orders (default 50)")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).with_name("orders.singer"),
        help="where to write (default examples/orders.singer)",
    )
    args = parser.parse_args()
    lines = make_lines(args.count, dt.datetime.now(dt.timezone.utc))
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.count} orders to {args.output}")


if __name__ == "__main__":
    main()
