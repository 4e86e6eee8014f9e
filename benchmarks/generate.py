"""Generate a realistic Singer stream of web-shop orders for the throughput benchmark.

The shape mimics what tap-postgres emits for a wide `public.orders` table: one SCHEMA, RECORDs
with ~26 columns, a STATE every 10,000 records. Customers repeat (orders are drawn from a fixed
pool) and their contact data is as messy as real shop data: mixed-case e-mails with stray
spaces, phones with punctuation, accented names, US states spelled out, ZIP+4 codes, countries
by name, and a small share of values that cannot be normalized at all.

Run as a script to write a file: `python benchmarks/generate.py --records 1000 --output x.singer`.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

STREAM = "public-orders"
STATE_EVERY = 10_000
DEFAULT_CUSTOMERS = 5_000

SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": ["integer"]},
        "customer_id": {"type": ["string", "null"]},
        "email": {"type": ["string", "null"]},
        "phone": {"type": ["string", "null"]},
        "first_name": {"type": ["string", "null"]},
        "last_name": {"type": ["string", "null"]},
        "gender": {"type": ["string", "null"]},
        "date_of_birth": {"type": ["string", "null"], "format": "date"},
        "address_line1": {"type": ["string", "null"]},
        "city": {"type": ["string", "null"]},
        "state": {"type": ["string", "null"]},
        "zip": {"type": ["string", "null"]},
        "country": {"type": ["string", "null"]},
        "client_ip": {"type": ["string", "null"]},
        "user_agent": {"type": ["string", "null"]},
        "page_url": {"type": ["string", "null"]},
        "fbp": {"type": ["string", "null"]},
        "fbc": {"type": ["string", "null"]},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
        "updated_at": {"type": ["string", "null"], "format": "date-time"},
        "total": {"type": ["number", "null"]},
        "currency": {"type": ["string", "null"]},
        "num_items": {"type": ["integer", "null"]},
        "product_ids": {"type": ["array", "null"], "items": {"type": ["string"]}},
        "status": {"type": ["string", "null"]},
        "coupon_code": {"type": ["string", "null"]},
    },
}

FIRST_NAMES = [
    "Mary",
    "José",
    "Zoë",
    "Renée",
    "Chloé",
    "Björn",
    "Ana María",
    "Jean-Luc",
    "Siobhán",
    "Łukasz",
    "James",
    "Olivia",
    "Noah",
    "Emma",
    "Liam",
    "Sophia",
    "Mateo",
    "Amélie",
    "François",
    "Søren",
    "Aiden",
    "Isabella",
    "Lucía",
    "Nguyễn",
    "Priya",
    "Ravi",
    "Mohammed",
    "Fatima",
    "Hiroshi",
    "Yuki",
]
LAST_NAMES = [
    "Smith",
    "García",
    "O'Brien",
    "Müller",
    "Nuñez",
    "van der Berg",
    "Dupont-Léger",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Rodríguez",
    "Martínez",
    "Hernández",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Pérez",
    "Thompson",
    "White",
    "Harris",
    "Sánchez",
    "Clark",
    "Ramírez",
    "Lewis",
    "Robinson",
]
US_PLACES = [  # (city, state as a shop form lets people type it, zip prefix)
    ("Menlo Park", "California", "940"),
    ("San José", "california", "951"),
    ("Los Angeles", "CA", "900"),
    ("New York", "New York", "100"),
    ("Brooklyn", "new york", "112"),
    ("St. Louis", "Missouri", "631"),
    ("Austin", "Texas", "787"),
    ("Houston", "TX", "770"),
    ("Miami", "Florida", "331"),
    ("Chicago", "Illinois", "606"),
    ("Seattle", "Washington", "981"),
    ("Portland", "Oregon", "972"),
    ("Boston", "Massachusetts", "021"),
    ("Denver", "Colorado", "802"),
    ("Coeur d'Alene", "Idaho", "838"),
    ("Winston-Salem", "North Carolina", "271"),
    ("Washington", "District of Columbia", "200"),
    ("Phoenix", "Arizona", "850"),
    ("Ann Arbor", "Michigan", "481"),
    ("Grand Rapids", "michigan", "495"),
]
US_COUNTRY_SPELLINGS = ["United States", "US", "USA", "United States of America", "us", "U.S."]
FOREIGN_PLACES = [  # (city, region, postal code, country, phone prefix)
    ("Toronto", "Ontario", "M5V 2T6", "Canada", "+1 416"),
    ("Montréal", "Québec", "H2X 1Y4", "CA", "+1 514"),
    ("London", "England", "SW1A 1AA", "United Kingdom", "+44 20"),
    ("München", "Bayern", "80331", "Germany", "0049 89"),
    ("Paris", "Île-de-France", "75001", "France", "+33 1"),
    ("Ciudad de México", "CDMX", "06600", "Mexico", "+52 55"),
]
EMAIL_DOMAINS = ["Gmail.com", "gmail.com", "Yahoo.com", "outlook.com", "Hotmail.COM", "icloud.com"]
UNUSABLE_EMAILS = ["n/a", "none", "mary at gmail dot com", "-"]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
]
GENDER_SPELLINGS = ["Female", "F", "female", "Male", "M", "male", None, None]
CURRENCIES = ["USD"] * 8 + ["usd", "EUR", "CAD", "GBP"]
STATUSES = ["completed", "completed", "completed", "shipped", "paid"]
COUPONS = [None] * 6 + ["WELCOME10", "SPRING-SALE", "FREESHIP"]


@dataclass(frozen=True)
class Customer:
    customer_id: str
    email: str | None
    phone: str | None
    first_name: str
    last_name: str
    gender: str | None
    date_of_birth: str | None
    address_line1: str
    city: str
    state: str
    zip: str
    country: str
    client_ip: str
    user_agent: str
    fbp: str | None


def _messy_email(rng: random.Random, first: str, last: str) -> str | None:
    roll = rng.random()
    if roll < 0.05:
        return None
    if roll < 0.06:
        return rng.choice(UNUSABLE_EMAILS)
    local = f"{first}.{last}".replace(" ", "").replace("'", "")
    if rng.random() < 0.5:
        local = local.lower()
    address = f"{local}{rng.randint(1, 999)}@{rng.choice(EMAIL_DOMAINS)}"
    return rng.choice(["", " ", "  "]) + address + rng.choice(["", " ", "\t"])


def _messy_us_phone(rng: random.Random) -> str | None:
    if rng.random() < 0.08:
        return None
    area, exchange, line = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    pattern = rng.choice(
        [
            "+1 ({a}) {e}-{l:04d}",
            "1-{a}-{e}-{l:04d}",
            "+1.{a}.{e}.{l:04d}",
            "001 {a} {e} {l:04d}",
            "+1{a}{e}{l:04d}",
            "({a}) {e} {l:04d}",  # the last one lacks the country code
        ]
    )
    return pattern.format(a=area, e=exchange, l=line)


def make_customers(count: int, rng: random.Random) -> list[Customer]:
    customers = []
    for number in range(1, count + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        if rng.random() < 0.85:
            city, state, zip_prefix = rng.choice(US_PLACES)
            postal = f"{zip_prefix}{rng.randint(0, 99):02d}"
            if rng.random() < 0.4:
                postal += f"-{rng.randint(0, 9999):04d}"
            country, phone = rng.choice(US_COUNTRY_SPELLINGS), _messy_us_phone(rng)
        else:
            city, state, postal, country, prefix = rng.choice(FOREIGN_PLACES)
            phone = f"{prefix} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
        if rng.random() < 0.3:
            first, last = first.upper(), last.upper()
        birth = None
        if rng.random() < 0.6:
            birth = f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        fbp = None
        if rng.random() < 0.7:
            first_visit_ms = rng.randint(1_690_000_000_000, 1_730_000_000_000)
            fbp = f"fb.1.{first_visit_ms}.{rng.randint(1, 2**31)}"
        customers.append(
            Customer(
                customer_id=f"CUST-{number:06d}",
                email=_messy_email(rng, first, last),
                phone=phone,
                first_name=rng.choice(["", " "]) + first,
                last_name=last + rng.choice(["", " ", "."]),
                gender=rng.choice(GENDER_SPELLINGS),
                date_of_birth=birth,
                address_line1=f"{rng.randint(1, 9999)} {rng.choice(LAST_NAMES)} St.",
                city=city if rng.random() < 0.8 else city.upper(),
                state=state,
                zip=postal,
                country=country,
                client_ip=(
                    f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
                    f"{rng.randint(1, 254)}"
                    if rng.random() < 0.9
                    else f"2001:db8:{rng.randint(0, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"
                ),
                user_agent=rng.choice(USER_AGENTS),
                fbp=fbp,
            )
        )
    return customers


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def order_record(order_id: int, customer: Customer, rng: random.Random, now: datetime) -> dict:
    created = now - timedelta(seconds=rng.uniform(120, 86_000))
    items = rng.randint(1, 5)
    fbc = None
    if rng.random() < 0.2:
        click_ms = int(created.timestamp() * 1000) - rng.randint(1_000, 3_600_000)
        fbc = f"fb.1.{click_ms}.IwAR{rng.getrandbits(64):016x}"
    return {
        "order_id": order_id,
        "customer_id": customer.customer_id,
        "email": customer.email,
        "phone": customer.phone,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "gender": customer.gender,
        "date_of_birth": customer.date_of_birth,
        "address_line1": customer.address_line1,
        "city": customer.city,
        "state": customer.state,
        "zip": customer.zip,
        "country": customer.country,
        "client_ip": customer.client_ip,
        "user_agent": customer.user_agent,
        "page_url": f"https://shop.example.com/checkout/thank-you?order={order_id}&utm_source=fb",
        "fbp": customer.fbp,
        "fbc": fbc,
        "created_at": _iso(created),
        "updated_at": _iso(created + timedelta(seconds=rng.randint(1, 90))),
        "total": round(rng.uniform(4.99, 899.99), 2),
        "currency": rng.choice(CURRENCIES),
        "num_items": items,
        "product_ids": [f"SKU-{rng.randint(1000, 9999)}" for _ in range(items)],
        "status": rng.choice(STATUSES),
        "coupon_code": rng.choice(COUPONS),
    }


def orders(
    records: int,
    *,
    customers: int = DEFAULT_CUSTOMERS,
    seed: int = 7,
    now: datetime | None = None,
) -> Iterator[dict]:
    """`records` orders with ids 1..records, each from one of `customers` customers."""
    rng = random.Random(seed)
    now = now or datetime.now(timezone.utc)
    pool = make_customers(customers, rng)
    for order_id in range(1, records + 1):
        yield order_record(order_id, rng.choice(pool), rng, now)


def state_message(last_order_id: int) -> dict:
    return {
        "type": "STATE",
        "value": {
            "bookmarks": {
                STREAM: {"replication_key": "order_id", "replication_key_value": last_order_id}
            }
        },
    }


def write_stream(
    path: Path,
    records: int,
    *,
    customers: int = DEFAULT_CUSTOMERS,
    seed: int = 7,
    now: datetime | None = None,
) -> Path:
    """Write SCHEMA, `records` RECORDs and a STATE every 10,000 records (and at the end)."""
    now = now or datetime.now(timezone.utc)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with path.open("w", encoding="utf-8") as out:
        out.write(
            dumps(
                {
                    "type": "SCHEMA",
                    "stream": STREAM,
                    "schema": SCHEMA,
                    "key_properties": ["order_id"],
                }
            )
            + "\n"
        )
        for order_id, record in enumerate(
            orders(records, customers=customers, seed=seed, now=now), start=1
        ):
            out.write(
                dumps(
                    {
                        "type": "RECORD",
                        "stream": STREAM,
                        "record": record,
                        "time_extracted": _iso(now),
                    }
                )
                + "\n"
            )
            if order_id % STATE_EVERY == 0:
                out.write(dumps(state_message(order_id)) + "\n")
        if records % STATE_EVERY:
            out.write(dumps(state_message(records)) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000)
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    write_stream(args.output, args.records, customers=args.customers, seed=args.seed)


if __name__ == "__main__":
    main()
