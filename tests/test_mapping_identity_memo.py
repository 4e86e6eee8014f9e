"""EventMapper memoizes a customer's hashed user_data on the raw values of its columns.

Every event must still get exactly what the general path (normalize_user_data over the event's
whole user_data) gives: same keys, same order, same dropped values, and a dict of its own.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

import pytest

import target_meta_capi.mapping.mapper as mapper_module
from target_meta_capi.capi.normalize import DroppedValue, normalize_user_data, sha256_hex
from target_meta_capi.mapping import EventMapper, MappedEvent, build_event_mapper

CONFIG = {
    "streams": {
        "orders": {
            "event_name": "Purchase",
            "action_source": "website",
            "fields": {
                "event_time": "created_at",
                "user_data.em": "email",
                "user_data.ph": "phone",
                "user_data.fn": "first_name",
                "user_data.zp": "zip",
                "user_data.client_ip_address": "ip",
            },
        }
    }
}
ORDER = {
    "created_at": 1_795_773_600,
    "email": " Mary@Example.com ",
    "phone": "12",  # too short: dropped
    "first_name": "Mary",
    "zip": "94035",
    "ip": "203.0.113.7",
}
# external_id comes from `fields`, after the aliased columns (ip among them): a hashed key
# placed after an unhashed one, as in the benchmark's orders.
LATE_HASHED_CONFIG = json.loads(json.dumps(CONFIG))
LATE_HASHED_CONFIG["streams"]["orders"]["fields"]["user_data.external_id"] = "customer_id"
LATE_ORDER = {**ORDER, "date_of_birth": dt.date(1990, 5, 17), "customer_id": "CUST-7"}


@pytest.fixture(autouse=True)
def memo_room(monkeypatch: pytest.MonkeyPatch) -> mapper_module._MemoRoom:
    """An empty room for the memos of each test's mappers, as in a process of its own."""
    room = mapper_module._MemoRoom()
    monkeypatch.setattr(mapper_module, "_MEMO_ROOM", room)
    return room


def orders_mapper(config=CONFIG, columns=tuple(ORDER)) -> EventMapper:
    """A mapper whose memo is on, as once customers were seen coming back (tested below)."""
    mapper = build_event_mapper("orders", [], config, list(columns))
    assert mapper is not None
    mapper._memoizing = True
    return mapper


def memo_size(mapper: EventMapper) -> int:
    return sum(len(plan.identities) for plan in mapper._plans.values())


def map_without_memo(config, record) -> MappedEvent:
    """The general path: the same mapping with the memo switched off."""
    reference = orders_mapper(config, tuple(record))
    reference._identity = lambda plan, values: None  # type: ignore[method-assign]
    return reference.map(dict(record))


def assert_same_as_general_path(mapper, config, record):
    mapped = mapper.map(dict(record))
    expected = map_without_memo(config, record)
    assert json.dumps(mapped.event, default=str) == json.dumps(expected.event, default=str)
    assert mapped.dropped == expected.dropped


def test_general_path_gives_normalize_user_data_of_the_mapped_values():
    mapped = map_without_memo(CONFIG, ORDER)
    raw = {
        "em": ORDER["email"],
        "ph": "12",
        "fn": "Mary",
        "zp": "94035",
        "client_ip_address": ORDER["ip"],
    }
    expected = normalize_user_data(raw)
    assert json.dumps(mapped.event["user_data"]) == json.dumps(expected.user_data)
    assert mapped.dropped == expected.dropped


def test_repeated_customer_gets_what_the_general_path_gives_in_the_same_order():
    mapper = orders_mapper()
    for ip in ("203.0.113.7", "198.51.100.9", "203.0.113.7"):
        assert_same_as_general_path(mapper, CONFIG, {**ORDER, "ip": ip})


def test_dropped_values_are_reported_for_every_event_of_a_repeated_customer():
    mapper = orders_mapper()
    for _ in range(3):
        assert mapper.map(dict(ORDER)).dropped == [DroppedValue("ph", "invalid")]


def test_each_event_of_a_repeated_customer_has_its_own_user_data_and_dropped_list():
    mapper = orders_mapper()
    first = mapper.map(dict(ORDER))
    first.event["user_data"]["em"] = "changed by a caller"
    first.dropped.clear()
    second = mapper.map(dict(ORDER))
    assert second.event["user_data"] == map_without_memo(CONFIG, ORDER).event["user_data"]
    assert second.dropped == [DroppedValue("ph", "invalid")]


@pytest.mark.parametrize(
    "changes",
    [
        {"zip": 94035},  # a number: not a memo key
        {"phone": None, "zip": None, "first_name": None},  # a single hashed value
        {"email": "   ", "phone": None},  # blank and missing values
        {"ip": ["203.0.113.7"]},  # an unhashed value that is not a text
        {"email": ["mary@example.com", "m@example.com"]},  # unhashable: not a memo key
        {"ip": []},  # an empty list: dropped as empty
        {"ip": None},  # no unhashed value at all
        {"first_name": dt.date(1990, 5, 17)},  # a date where a name belongs: dropped
    ],
)
def test_values_outside_the_common_case_give_what_the_general_path_gives(changes):
    mapper = orders_mapper()
    for _ in range(2):  # first sight and repeat
        assert_same_as_general_path(mapper, CONFIG, {**ORDER, **changes})


def test_an_unhashed_list_of_empty_values_is_left_out_of_a_repeated_customers_events():
    mapper = orders_mapper()
    for _ in range(2):  # first sight and repeat
        mapped = mapper.map({**ORDER, "ip": ["", None]})
        assert "client_ip_address" not in mapped.event["user_data"]
        assert mapped.dropped.count(DroppedValue("client_ip_address", "empty")) == 2


def test_integral_float_columns_are_hashed_like_integers_on_every_path():
    order = {**ORDER, "phone": 16169547888.0, "zip": 94035.0}  # as CSV and pandas give them
    mapper = orders_mapper()
    for _ in range(2):  # first sight and repeat
        user_data = mapper.map(dict(order)).event["user_data"]
        expected = normalize_user_data({"ph": 16169547888, "zp": 94035}).user_data
        assert (user_data["ph"], user_data["zp"]) == (expected["ph"], expected["zp"])
        assert_same_as_general_path(mapper, CONFIG, order)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"customer_id": 7},  # a number after an unhashed key
        {"email": None, "phone": None, "first_name": None, "zip": None},  # one text, one date
        {"email": None, "phone": None, "first_name": None, "zip": None, "date_of_birth": None},
    ],
)
def test_hashed_keys_after_unhashed_ones_keep_the_general_paths_order(changes):
    mapper = orders_mapper(LATE_HASHED_CONFIG, tuple(LATE_ORDER))
    for _ in range(2):
        assert_same_as_general_path(mapper, LATE_HASHED_CONFIG, {**LATE_ORDER, **changes})


@pytest.mark.parametrize("date_of_birth", [dt.date(1800, 1, 1), "1800-01-01"])
def test_an_implausible_date_of_birth_is_dropped_on_every_path(date_of_birth):
    order = {**LATE_ORDER, "date_of_birth": date_of_birth}
    mapper = orders_mapper(LATE_HASHED_CONFIG, tuple(order))
    for _ in range(2):  # first sight and repeat
        mapped = mapper.map(dict(order))
        assert "db" not in mapped.event["user_data"]
        assert DroppedValue("db", "invalid") in mapped.dropped
        assert_same_as_general_path(mapper, LATE_HASHED_CONFIG, order)


def test_a_late_hashed_text_in_a_group_of_texts_is_still_memoized():
    order = {**LATE_ORDER, "date_of_birth": "1990-05-17"}  # every hashed value a text
    mapper = orders_mapper(LATE_HASHED_CONFIG, tuple(order))
    mapper.map(dict(order))
    (plan,) = mapper._plans.values()
    assert list(plan.identities.values()) != [None]
    assert_same_as_general_path(mapper, LATE_HASHED_CONFIG, order)


def test_a_constant_wins_over_an_alias_column_of_the_same_key_as_without_the_memo():
    config = json.loads(json.dumps(CONFIG))
    config["streams"]["orders"]["constants"] = {"user_data.ct": "Paris"}
    record = {**ORDER, "city": "Lyon"}  # `city` is an alias of user_data.ct
    mapper = orders_mapper(config, tuple(record))
    for _ in range(2):
        assert_same_as_general_path(mapper, config, record)
    assert (
        mapper.map(dict(record)).event["user_data"]["ct"]
        == normalize_user_data({"ct": "Paris"}).user_data["ct"]
    )


def test_an_empty_constant_leaves_the_key_to_its_alias_column_as_without_the_memo():
    config = json.loads(json.dumps(CONFIG))
    config["streams"]["orders"]["constants"] = {"user_data.ct": " "}
    record = {**ORDER, "city": "Lyon"}  # `city` is an alias of user_data.ct
    mapper = orders_mapper(config, tuple(record))
    for city in ("Lyon", "Paris", "Lyon"):
        assert_same_as_general_path(mapper, config, {**record, "city": city})


@pytest.mark.parametrize("first", ["Paris", " ", None])
def test_alias_columns_differing_only_in_case_give_what_the_general_path_gives(first):
    record = {**ORDER, "City": first, "city": "Lyon"}  # both named like user_data.ct's alias
    mapper = orders_mapper(CONFIG, tuple(record))
    for _ in range(2):  # first sight and repeat
        assert_same_as_general_path(mapper, CONFIG, record)
    (plan,) = mapper._plans.values()
    assert plan.identity_columns is not None and "city" in plan.identity_columns


def test_values_inside_other_objects_are_converted_as_on_the_general_path():
    config = json.loads(json.dumps(CONFIG))
    config["streams"]["orders"]["fields"]["original_event_data.event_time"] = "ordered_at"
    config["streams"]["orders"]["fields"]["app_data.advertiser_tracking_enabled"] = "tracking"
    record = {**ORDER, "ordered_at": dt.datetime(2026, 11, 27, 10), "tracking": "yes"}
    mapper = orders_mapper(config, tuple(record))
    for _ in range(2):  # first sight and repeat
        assert_same_as_general_path(mapper, config, record)
    event = mapper.map(dict(record)).event
    assert event["original_event_data"] == {"event_time": 1_795_773_600}
    assert event["app_data"] == {"advertiser_tracking_enabled": True}


@pytest.mark.parametrize("order", [{"ref": "A-1"}, '{"ref": "A-1"}', "A-1"])
def test_fields_read_in_a_json_or_object_column_give_what_the_general_path_gives(order):
    config = json.loads(json.dumps(CONFIG))
    config["streams"]["orders"]["fields"]["custom_data.order_id"] = "order.ref"
    record = {**ORDER, "order": order}
    mapper = orders_mapper(config, tuple(record))
    for _ in range(2):  # first sight and repeat
        assert_same_as_general_path(mapper, config, record)
    mapped = mapper.map(dict(record))
    assert mapped.event.get("custom_data") == (None if order == "A-1" else {"order_id": "A-1"})


def test_a_number_and_a_boolean_that_compare_equal_are_not_mixed_up():
    mapper = orders_mapper()
    with_number = mapper.map({**ORDER, "phone": 1, "zip": 1}).event["user_data"]
    with_boolean = mapper.map({**ORDER, "phone": True, "zip": True}).event["user_data"]
    assert "zp" in with_number
    assert "zp" not in with_boolean


@pytest.mark.parametrize(
    ("config", "order"),
    [(CONFIG, ORDER), (LATE_HASHED_CONFIG, LATE_ORDER)],
    ids=["texts", "with-a-date-of-birth"],  # a date: the SDK's parsing of a `format: date`
)
def test_a_repeated_customer_is_found_in_the_memo_without_keeping_the_records_strings(
    config, order
):
    mapper = orders_mapper(config, tuple(order))
    first_name = "".join(["Ma", "ry"])  # a string of its own, as JSON decoding gives
    references_before = sys.getrefcount(first_name)
    mapper.map({**order, "first_name": first_name})
    assert sys.getrefcount(first_name) == references_before
    mapper.map({**order, "first_name": "".join(["Ma", "ry"])})
    assert (memo_size(mapper), mapper._identity_hits) == (1, 1)


def test_a_repeated_customer_with_a_date_is_found_in_the_memo():
    mapper = orders_mapper(LATE_HASHED_CONFIG, tuple(LATE_ORDER))  # date_of_birth: a date
    for _ in range(3):
        assert_same_as_general_path(mapper, LATE_HASHED_CONFIG, LATE_ORDER)
    assert (memo_size(mapper), mapper._identity_hits) == (1, 2)


def test_customers_told_apart_only_by_their_date_of_birth_are_different_customers():
    mapper = orders_mapper(LATE_HASHED_CONFIG, tuple(LATE_ORDER))
    for date_of_birth in (dt.date(1990, 5, 17), dt.date(1990, 5, 18), None, dt.date(1990, 5, 17)):
        record = {**LATE_ORDER, "date_of_birth": date_of_birth}
        assert_same_as_general_path(mapper, LATE_HASHED_CONFIG, record)
    assert (memo_size(mapper), mapper._identity_hits) == (3, 1)


def test_dates_of_birth_of_one_instant_at_other_offsets_hash_as_their_own_days():
    # 23:00 at -05:00 is 04:00Z the next day: equal datetimes, other days of birth
    mapper = orders_mapper(LATE_HASHED_CONFIG, tuple(LATE_ORDER))
    evening = dt.datetime(1990, 5, 17, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    morning = dt.datetime(1990, 5, 18, 4, 0, tzinfo=dt.timezone.utc)
    hashed_days = [
        mapper.map({**LATE_ORDER, "date_of_birth": moment}).event["user_data"]["db"]
        for moment in (evening, morning, evening)
    ]
    assert hashed_days == [sha256_hex("19900517"), sha256_hex("19900518"), sha256_hex("19900517")]


def test_a_date_of_birth_the_first_customers_lacked_keeps_the_memo_keyed_without_them():
    mapper = orders_mapper(LATE_HASHED_CONFIG, tuple(LATE_ORDER))
    without_date = {**LATE_ORDER, "date_of_birth": None}
    for record in (without_date, LATE_ORDER, without_date, LATE_ORDER):
        assert_same_as_general_path(mapper, LATE_HASHED_CONFIG, record)
    plan = next(iter(mapper._plans.values()))
    assert all(isinstance(key, bytes) for key in plan.identities)
    # the first customer without a date was kept before the memo knew of dates: met again,
    # it is kept once more under the key that holds dates apart
    assert (memo_size(mapper), mapper._identity_hits) == (3, 1)


def test_values_that_run_together_as_text_are_different_customers():
    mapper = orders_mapper()
    for first_name, zip_code in (("Mary", "94035"), ("Mary9", "4035"), ("Mary\x00", "94035")):
        record = {**ORDER, "first_name": first_name, "zip": zip_code}
        assert_same_as_general_path(mapper, CONFIG, record)
    assert (memo_size(mapper), mapper._identity_hits) == (3, 0)


def test_memo_stays_correct_after_it_is_cleared_when_full(monkeypatch):
    monkeypatch.setattr(mapper_module, "_MAX_CACHED_IDENTITIES", 2)
    mapper = orders_mapper()
    for name in ("Ann", "Bob", "Cy", "Ann", "Bob"):
        assert_same_as_general_path(mapper, CONFIG, {**ORDER, "first_name": name})


def test_user_data_object_column_merges_with_mapped_columns_as_before():
    config = json.loads(json.dumps(CONFIG))
    config["streams"]["orders"]["fields"]["user_data"] = "profile"
    mapper = orders_mapper(config, (*ORDER, "profile"))
    record = {**ORDER, "profile": {"ct": "Paris", "em": "other@example.com"}}
    expected = normalize_user_data(
        {
            "ct": "Paris",
            "em": record["email"],
            "ph": "12",
            "fn": "Mary",
            "zp": "94035",
            "client_ip_address": "203.0.113.7",
        }
    )
    assert mapper.map(record).event["user_data"] == expected.user_data


def test_a_list_constant_for_a_hashed_key_is_not_shared_between_events():
    config = json.loads(json.dumps(CONFIG))
    # the IP from a column that is no alias: its path follows the constant's
    config["streams"]["orders"]["fields"]["user_data.client_ip_address"] = "remote"
    config["streams"]["orders"]["constants"] = {"user_data.ct": ["Paris", "Lyon"]}
    record = {**{k: v for k, v in ORDER.items() if k != "ip"}, "remote": "203.0.113.7"}
    mapper = orders_mapper(config, tuple(record))
    first = mapper.map(dict(record)).event["user_data"]
    first["ct"].append("changed by a caller")
    second = mapper.map(dict(record)).event["user_data"]
    assert len(second["ct"]) == 2
    assert json.dumps(second) == json.dumps(map_without_memo(config, record).event["user_data"])


def test_the_memo_starts_off_and_turns_on_once_customers_come_back(monkeypatch):
    monkeypatch.setattr(mapper_module, "_CUSTOMERS_JUDGED", 10)
    mapper = build_event_mapper("orders", [], CONFIG, list(ORDER))
    assert mapper is not None
    names = ["Ann", "Bob", "Cy"] * 4
    for name in names[:10]:
        mapper.map({**ORDER, "first_name": name})
    assert memo_size(mapper) == 0  # judged over 10 customers, 7 of them returning
    for name in names[10:]:
        assert_same_as_general_path(mapper, CONFIG, {**ORDER, "first_name": name})
    assert memo_size(mapper) == 2


def test_one_off_customers_never_fill_the_memo(monkeypatch, memo_room):
    monkeypatch.setattr(mapper_module, "_CUSTOMERS_JUDGED", 16)
    monkeypatch.setattr(mapper_module, "_MAX_CACHED_IDENTITIES", 64)
    mapper = build_event_mapper("orders", [], CONFIG, list(ORDER))
    assert mapper is not None
    for number in range(500):
        mapper.map({**ORDER, "email": f"customer{number}@example.com"})
        assert memo_size(mapper) == 0
        assert len(memo_room.recent) <= 64


def test_a_full_memo_whose_customers_stopped_coming_back_is_emptied_and_turned_off(monkeypatch):
    monkeypatch.setattr(mapper_module, "_MAX_CACHED_IDENTITIES", 16)
    mapper = orders_mapper()
    for number in range(17):
        mapper.map({**ORDER, "email": f"customer{number}@example.com"})
    assert memo_size(mapper) == 0
    assert not mapper._memoizing


def _map_regulars_then_newcomers(mapper: EventMapper, newcomers: int) -> None:
    """Ten regular customers three times each, then `newcomers` new ones: in a memo with room
    for 16, the 7th newcomer finds it full."""
    regulars = [f"regular{number}@example.com" for number in range(10)]
    for email in regulars * 3 + [f"new{number}@example.com" for number in range(newcomers)]:
        mapper.map({**ORDER, "email": email})


def test_a_full_memo_whose_customers_come_back_is_emptied_and_stays_on(monkeypatch):
    monkeypatch.setattr(mapper_module, "_MAX_CACHED_IDENTITIES", 16)
    mapper = orders_mapper()
    _map_regulars_then_newcomers(mapper, 7)
    assert mapper._memoizing
    assert memo_size(mapper) == 1


def test_a_memo_emptied_when_full_fills_again(monkeypatch):
    monkeypatch.setattr(mapper_module, "_MAX_CACHED_IDENTITIES", 16)
    mapper = orders_mapper()
    _map_regulars_then_newcomers(mapper, 12)
    assert memo_size(mapper) == 6


def test_a_memo_is_judged_by_the_customers_met_since_it_was_last_emptied(monkeypatch):
    monkeypatch.setattr(mapper_module, "_MAX_CACHED_IDENTITIES", 16)
    mapper = orders_mapper()
    regulars = [f"regular{number}@example.com" for number in range(10)]
    newcomers = [f"new{number}@example.com" for number in range(7 + 16)]
    # emptied at the 7th newcomer (its regulars came back: it stays on), then at the 23rd:
    # none of the 16 customers since came back, whatever the regulars did before
    for email in regulars * 3 + newcomers:
        mapper.map({**ORDER, "email": email})
    assert not mapper._memoizing
    assert memo_size(mapper) == 0


def test_the_memos_of_many_streams_hold_no_more_customers_than_one(monkeypatch):
    monkeypatch.setattr(mapper_module, "_MAX_CACHED_IDENTITIES", 16)
    mappers = [orders_mapper() for _ in range(5)]
    regulars = [f"regular{number}@example.com" for number in range(12)]
    for email in regulars * 3:
        for mapper in mappers:
            mapper.map({**ORDER, "email": email})
            assert sum(memo_size(each) for each in mappers) <= 16


def test_events_of_many_streams_stay_correct_as_their_shared_memo_room_is_emptied(monkeypatch):
    monkeypatch.setattr(mapper_module, "_MAX_CACHED_IDENTITIES", 4)
    mappers = [orders_mapper() for _ in range(3)]
    for name in ("Ann", "Bob", "Cy", "Ann", "Bob", "Dee", "Ann"):
        for mapper in mappers:
            assert_same_as_general_path(mapper, CONFIG, {**ORDER, "first_name": name})
