"""The client's types as a user's type checker sees them: mypy --strict on a user's program
finds no error. Events typed with the TypedDicts of capi/shapes.py go to every way of sending
them; a copy of an EventRequestAsync is one, whose execute() returns a future. An observer
subclassing RequestObserver overrides only the hooks it needs, and a BatchProcessor's subclass
keeps its class in a `with` statement."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests._user_mypy import mypy_strict


def assert_passes_mypy_strict(program: Path, source: str, cache: Path) -> None:
    """The user's program, written to `program`, type-checks under mypy --strict."""
    program.write_text(textwrap.dedent(source))
    checked = mypy_strict(program, cache)
    assert checked.returncode == 0, checked.stdout


USERS_PROGRAM = """
from collections.abc import Iterator

from target_meta_capi.capi import BatchProcessor, Event, EventRequest, EventResponse


def order(number: int) -> Event:
    return {
        "event_name": "Purchase",
        "event_time": 1795773600,
        "event_id": f"order-{number}",
        "action_source": "website",
        "user_data": {"em": ["a" * 64], "client_user_agent": "Mozilla/5.0"},
        "custom_data": {"value": 49.9, "currency": "EUR"},
    }


def orders() -> Iterator[Event]:
    yield from (order(number) for number in range(10))


template = EventRequest(pixel_id="1234567890", access_token="sandbox-token")
with BatchProcessor() as processor:
    responses: list[EventResponse] = processor.process_events(template, [order(1), order(2)])
    for wave in processor.process_events_generator(template, orders()):
        responses = [future.result() for future in wave]
"""


def test_typed_events_go_to_the_batch_processor_under_mypy_strict(
    tmp_path: Path, mypy_cache: Path
) -> None:
    assert_passes_mypy_strict(tmp_path / "send_orders.py", USERS_PROGRAM, mypy_cache)


ASYNC_USERS_PROGRAM = """
import asyncio

from target_meta_capi.capi import EventRequestAsync, EventResponse

template = EventRequestAsync(pixel_id="1234567890", access_token="sandbox-token")


async def send(events: list[dict[str, object]]) -> EventResponse:
    return await asyncio.wrap_future(template.copy_with(events).execute())


async def send_encoded(events: list[dict[str, object]]) -> EventResponse:
    request = template.copy_with(events).with_encoded_body()
    return await asyncio.wrap_future(request.execute())
"""


def test_copies_of_an_async_request_return_futures_under_mypy_strict(
    tmp_path: Path, mypy_cache: Path
) -> None:
    assert_passes_mypy_strict(tmp_path / "send_async.py", ASYNC_USERS_PROGRAM, mypy_cache)


PARTIAL_OBSERVER_PROGRAM = """
from target_meta_capi.capi import EventRequest, RequestObserver


class RetryLog(RequestObserver):
    def on_retry(self, error: Exception, attempt: int, delay: float) -> None:
        print(f"attempt {attempt} failed; retrying in {delay:.1f} s")
        super().on_retry(error, attempt, delay)


def send(request: EventRequest) -> int:
    return request.execute(observer=RetryLog()).events_received
"""


def test_an_observer_overriding_one_hook_inherits_the_others_under_mypy_strict(
    tmp_path: Path, mypy_cache: Path
) -> None:
    # "Subclass it to inherit no-op defaults and override what you need": hooks whose body
    # was only a docstring were abstract to mypy, which refused to make such a subclass
    assert_passes_mypy_strict(tmp_path / "retry_log.py", PARTIAL_OBSERVER_PROGRAM, mypy_cache)


VIOLATION_SUBCODE_PROGRAM = """
from target_meta_capi.capi import Event, validate_event

TO_FIX: dict[int, str] = {2804012: "give the order's total", 2804013: "give its currency"}


def advice(event: Event) -> list[str]:
    return [TO_FIX.get(violation.subcode, violation.message) for violation in validate_event(event)]
"""


def test_a_rule_violations_subcode_is_an_int_under_mypy_strict(
    tmp_path: Path, mypy_cache: Path
) -> None:
    # every rule has Graph's subcode (RULES): typed int | None, it had to be narrowed first
    assert_passes_mypy_strict(tmp_path / "advice.py", VIOLATION_SUBCODE_PROGRAM, mypy_cache)


DECIMAL_AMOUNTS_PROGRAM = """
from decimal import Decimal

from target_meta_capi.capi import Content, CustomData

price = Decimal("24.95")  # a NUMERIC column, as the application's ORM gives it
item: Content = {"id": "sku-1", "quantity": 2, "item_price": price}
order: CustomData = {"value": price * 2, "net_revenue": Decimal("40.00"), "currency": "EUR",
                     "predicted_ltv": Decimal("120"), "contents": [item]}
"""


def test_amounts_of_money_may_be_decimals_under_mypy_strict(
    tmp_path: Path, mypy_cache: Path
) -> None:
    # the body holds a Decimal as the JSON number it is (and validate_event takes one as a
    # Purchase's value): typed float alone, an application's money had to be converted
    assert_passes_mypy_strict(tmp_path / "decimal_amounts.py", DECIMAL_AMOUNTS_PROGRAM, mypy_cache)


PROCESSOR_SUBCLASS_PROGRAM = """
from target_meta_capi.capi import BatchProcessor, EventRequest


class OrdersProcessor(BatchProcessor):
    def send_orders(self, template: EventRequest, orders: list[dict[str, object]]) -> int:
        return sum(response.events_received for response in self.process_events(template, orders))


def send(template: EventRequest, orders: list[dict[str, object]]) -> int:
    with OrdersProcessor(concurrent_requests=2) as processor:
        return processor.send_orders(template, orders)
"""


def test_a_processor_subclass_used_with_with_keeps_its_class_under_mypy_strict(
    tmp_path: Path, mypy_cache: Path
) -> None:
    # __enter__ was typed to return a BatchProcessor: the subclass's own methods were unknown
    assert_passes_mypy_strict(
        tmp_path / "orders_processor.py", PROCESSOR_SUBCLASS_PROGRAM, mypy_cache
    )


GIVE_UP_PROGRAM = """
from target_meta_capi.capi import DeliveryError, RetryPolicy


def asked_to_wait_too_long(error: DeliveryError) -> bool:
    # Meta asks for more than a minute: keep the events for the next run instead
    return error.retry_after is not None and error.retry_after > 60


policy = RetryPolicy(give_up=asked_to_wait_too_long)
"""


def test_give_up_may_take_the_delivery_error_it_is_given_under_mypy_strict(
    tmp_path: Path, mypy_cache: Path
) -> None:
    # only retryable DeliveryErrors reach give_up: typed to take any BaseException, it made
    # an application's veto narrow the error before reading retry_after or attempts
    assert_passes_mypy_strict(tmp_path / "give_up.py", GIVE_UP_PROGRAM, mypy_cache)
