"""A record worker's MappingTally adds up to exactly what RunStats counts event by event."""

from __future__ import annotations

from target_meta_capi.capi.normalize import DroppedValue
from target_meta_capi.summary import MappingTally, RunStats

EVENTS = [
    ({"user_data": {"em": "e" * 64, "client_ip_address": "203.0.113.7"}}, []),
    ({"user_data": {"em": "e" * 64, "fbp": "fb.1.1.1"}}, [DroppedValue("ph", "invalid")]),
    ({"user_data": {"ph": "p" * 64, "fbc": ""}}, [DroppedValue("em", "invalid")]),  # one empty
    ({"user_data": {"external_id": ["x" * 64]}}, []),
    ({}, [DroppedValue("em", "empty")]),  # no user_data at all
]


def test_a_tally_adds_up_to_what_run_stats_counts_one_event_at_a_time() -> None:
    one_by_one, tallied = RunStats(), RunStats()
    tally = MappingTally()
    for index, (event, dropped) in enumerate(EVENTS):
        one_by_one.record_read("orders")
        one_by_one.event_mapped("orders", event, dropped)
        if index % 2 == 0:
            one_by_one.near_cutoff_event("orders")
        tally.event_mapped(event, dropped, near_cutoff=index % 2 == 0)
    tallied.records_converted("orders", tally)
    expected = one_by_one.snapshot()["streams"]["orders"]
    assert tallied.snapshot()["streams"]["orders"] == expected
    assert expected["match_key_coverage"]["em"] == 40.0  # 2 of 5 events
    assert expected["match_key_coverage"]["fbc"] == 0.0  # present but empty
    assert expected["events_near_cutoff"] == 3
    assert expected["dropped_values"] == {"em": {"empty": 1, "invalid": 1}, "ph": {"invalid": 1}}
