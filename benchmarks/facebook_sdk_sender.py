"""Comparison (c): Meta's `facebook-business` SDK sends the benchmark's orders.

Runs in its own venv (`.venv-bench`, made by run.py) because the SDK pins its own dependency
versions. It does what a user of Meta's SDK has to do with the same Singer file: read the
RECORD lines, build `UserData`/`CustomData`/`Event` objects (the SDK normalizes and hashes them
when the request is sent), and send them with `BatchProcessor(batch_size=1000,
concurrent_requests=4).process_events(...)` to the sandbox.

Meta's SDK raises on values it cannot normalize (and then drops the whole request), so the
script does the minimum a user must do first: country names to ISO codes, phones reduced to
`+` and digits, unusable e-mails left out. Nothing else is cleaned: the SDK's own normalization
runs on the rest.

The graph URL is a class constant in Meta's SDK (`FacebookSession.GRAPH`); it is pointed at the
sandbox in this process only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import datetime

from facebook_business.adobjects.serverside.action_source import ActionSource
from facebook_business.adobjects.serverside.batch_processor import BatchProcessor
from facebook_business.adobjects.serverside.custom_data import CustomData
from facebook_business.adobjects.serverside.event import Event
from facebook_business.adobjects.serverside.event_request_async import EventRequestAsync
from facebook_business.adobjects.serverside.gender import Gender
from facebook_business.adobjects.serverside.normalize import email_pattern
from facebook_business.adobjects.serverside.user_data import UserData
from facebook_business.api import FacebookAdsApi
from facebook_business.session import FacebookSession

COUNTRY_CODES = {
    "united states": "us",
    "us": "us",
    "usa": "us",
    "united states of america": "us",
    "u.s.": "us",
    "canada": "ca",
    "ca": "ca",
    "united kingdom": "gb",
    "germany": "de",
    "france": "fr",
    "mexico": "mx",
}
GENDERS = {"f": Gender.FEMALE, "female": Gender.FEMALE, "m": Gender.MALE, "male": Gender.MALE}
NOT_PHONE_CHARACTERS = re.compile(r"[^\d+]")


def _listed(value: str | None) -> list[str] | None:
    return [value] if value else None


def build_event(record: dict) -> Event:
    email = record.get("email")
    if email and not email_pattern.match(email.strip().lower()):
        email = None
    phone = record.get("phone")
    gender = GENDERS.get((record.get("gender") or "").strip().lower())
    birth = record.get("date_of_birth")
    country = COUNTRY_CODES.get((record.get("country") or "").strip().lower())
    user_data = UserData(
        emails=_listed(email),
        phones=_listed(NOT_PHONE_CHARACTERS.sub("", phone) if phone else None),
        first_names=_listed(record.get("first_name")),
        last_names=_listed(record.get("last_name")),
        genders=[gender] if gender else None,
        dates_of_birth=_listed(birth.replace("-", "") if birth else None),
        cities=_listed(record.get("city")),
        states=_listed(record.get("state")),
        zip_codes=_listed(record.get("zip")),
        country_codes=_listed(country),
        external_ids=_listed(record.get("customer_id")),
        client_ip_address=record.get("client_ip"),
        client_user_agent=record.get("user_agent"),
        fbc=record.get("fbc"),
        fbp=record.get("fbp"),
    )
    custom_data = CustomData(
        value=float(record["total"]),
        currency=record["currency"].lower(),
        order_id=str(record["order_id"]),
        content_ids=record.get("product_ids"),
        num_items=record.get("num_items"),
    )
    return Event(
        event_name="Purchase",
        event_time=int(datetime.fromisoformat(record["created_at"]).timestamp()),
        event_id=str(record["order_id"]),
        event_source_url=record.get("page_url"),
        action_source=ActionSource.WEBSITE,
        user_data=user_data,
        custom_data=custom_data,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="Singer stream file")
    parser.add_argument("--graph-url", required=True, help="the sandbox's address")
    parser.add_argument("--pixel-id", default="1234567890")
    parser.add_argument("--access-token", default="sandbox-token")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrent-requests", type=int, default=4)
    args = parser.parse_args()

    FacebookSession.GRAPH = args.graph_url.rstrip("/")
    FacebookAdsApi.init(access_token=args.access_token)

    started = time.perf_counter()
    events = []
    with open(args.input, encoding="utf-8") as lines:
        for line in lines:
            message = json.loads(line)
            if message["type"] == "RECORD":
                events.append(build_event(message["record"]))
    built = time.perf_counter()
    processor = BatchProcessor(args.batch_size, args.concurrent_requests)
    processor.process_events(EventRequestAsync(pixel_id=args.pixel_id, events=[]), events)
    sent = time.perf_counter()
    json.dump(
        {"events": len(events), "build_seconds": built - started, "send_seconds": sent - built},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
