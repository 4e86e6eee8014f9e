"""The acknowledgement ledger: numbering, settlement, barriers, bounded memory."""

from __future__ import annotations

import random
import threading

from target_meta_capi.state import MAX_PENDING_STATES, AckLedger, SettledRanges


def _ledger_with_records(count: int) -> AckLedger:
    ledger = AckLedger()
    for _ in range(count):
        ledger.issue()
    return ledger


def test_records_are_numbered_from_one_in_arrival_order() -> None:
    ledger = AckLedger()
    assert [ledger.issue() for _ in range(3)] == [1, 2, 3]
    assert ledger.last_issued == 3


def test_state_is_held_until_every_record_before_it_is_settled() -> None:
    ledger = _ledger_with_records(3)
    ledger.register_state({"bookmark": 3})
    ledger.settle([1, 3])
    assert ledger.take_ready_state() == (False, None)
    ledger.settle([2])
    assert ledger.take_ready_state() == (True, {"bookmark": 3})


def test_ready_state_is_released_only_once() -> None:
    ledger = _ledger_with_records(1)
    ledger.register_state({"bookmark": 1})
    ledger.settle([1])
    ledger.take_ready_state()
    assert ledger.take_ready_state() == (False, None)


def test_records_after_a_state_do_not_hold_it_back() -> None:
    ledger = _ledger_with_records(2)
    ledger.register_state({"bookmark": 2})
    ledger.issue()
    ledger.settle([1, 2])
    assert ledger.take_ready_state() == (True, {"bookmark": 2})


def test_newest_of_several_ready_states_is_returned() -> None:
    ledger = AckLedger()
    ledger.issue()
    ledger.register_state({"bookmark": 1})
    ledger.issue()
    ledger.register_state({"bookmark": 2})
    ledger.issue()
    ledger.register_state({"bookmark": 3})
    ledger.settle([1, 2])
    assert ledger.take_ready_state() == (True, {"bookmark": 2})
    assert ledger.pending_state_count == 1


def test_state_before_any_record_is_ready_at_once() -> None:
    ledger = AckLedger()
    ledger.register_state({"bookmark": 0})
    assert ledger.take_ready_state() == (True, {"bookmark": 0})


def test_state_with_the_same_barrier_replaces_the_previous_one() -> None:
    ledger = _ledger_with_records(1)
    ledger.register_state({"bookmark": "a"})
    ledger.register_state({"bookmark": "b"})
    assert ledger.pending_state_count == 1


def test_poisoned_ledger_releases_no_state() -> None:
    ledger = _ledger_with_records(1)
    ledger.register_state({"bookmark": 1})
    ledger.poison()
    ledger.settle([1])
    assert ledger.take_ready_state() == (False, None)


def test_poisoned_ledger_releases_no_state_received_after_the_failure() -> None:
    ledger = _ledger_with_records(1)
    ledger.poison()
    ledger.settle([1])
    ledger.register_state({"bookmark": 1})
    assert ledger.take_ready_state() == (False, None)


def test_a_preassigned_number_is_given_to_the_next_record_instead_of_a_new_one() -> None:
    # a line a record worker gave back keeps the number it got when read: a state read
    # after it must wait for it
    ledger = _ledger_with_records(3)
    ledger.preassign(2)
    assert ledger.issue() == 2
    assert ledger.take_back_preassigned() is None
    assert ledger.issue() == 4


def test_unsettled_count_counts_records_in_flight() -> None:
    ledger = _ledger_with_records(10)
    ledger.settle([1, 2, 5, 9])
    assert ledger.unsettled_count == 6


def test_settling_records_again_moves_the_watermark_no_further() -> None:
    ledger = _ledger_with_records(3)
    ledger.settle([1, 2])
    ledger.settle([2, 1])
    assert ledger.watermark == 2
    assert not ledger.is_settled(3)


def test_settling_no_numbers_settles_nothing() -> None:
    ledger = _ledger_with_records(3)
    ledger.settle([])
    assert ledger.unsettled_count == 3


def test_out_of_order_settlement_advances_the_watermark_when_the_gap_closes() -> None:
    ranges = SettledRanges()
    ranges.add_range(5, 9)
    ranges.add_range(2, 3)
    assert ranges.watermark == 0
    ranges.add_range(1, 1)
    assert ranges.watermark == 3
    ranges.add_range(4, 4)
    assert ranges.watermark == 9
    assert ranges.fragment_count == 0


def test_adjacent_ranges_are_merged_into_one() -> None:
    ranges = SettledRanges()
    ranges.add_range(10, 19)
    ranges.add_range(30, 39)
    ranges.add_range(20, 29)
    assert ranges.fragment_count == 1
    assert 25 in ranges
    assert 9 not in ranges


def test_interleaved_streams_fragment_only_while_a_gap_is_open() -> None:
    # Stream A holds the odd numbers and is slow; stream B's even numbers settle first.
    ranges = SettledRanges()
    ranges.add_numbers(range(2, 2001, 2))
    assert ranges.fragment_count == 1000
    ranges.add_numbers(range(1, 2000, 2))
    assert ranges.watermark == 2000
    assert ranges.fragment_count == 0


def test_memory_stays_flat_when_one_old_record_is_outstanding() -> None:
    ranges = SettledRanges()
    for start in range(2, 1_000_002, 1000):
        ranges.add_range(start, start + 999)
    assert ranges.fragment_count == 1
    assert ranges.watermark == 0


def test_random_settlement_order_matches_a_plain_set() -> None:
    rng = random.Random(7)
    numbers = list(range(1, 501))
    rng.shuffle(numbers)
    ranges = SettledRanges()
    settled: set[int] = set()
    for chunk_start in range(0, 500, 17):
        chunk = numbers[chunk_start : chunk_start + 17]
        ranges.add_numbers(chunk)
        settled.update(chunk)
        expected_watermark = 0
        while expected_watermark + 1 in settled:
            expected_watermark += 1
        assert ranges.watermark == expected_watermark
        assert all((n in ranges) == (n in settled) for n in range(1, 502))


def test_concurrent_settlement_from_many_threads_settles_everything() -> None:
    ledger = _ledger_with_records(8000)
    ledger.register_state({"done": True})

    def settle_slice(offset: int) -> None:
        for number in range(offset + 1, 8001, 8):
            ledger.settle([number])

    threads = [threading.Thread(target=settle_slice, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.watermark == 8000
    assert ledger.take_ready_state() == (True, {"done": True})


def test_settling_numbers_again_after_the_watermark_passed_them_keeps_the_watermark() -> None:
    # a number settled again once the watermark is past it must not pull the watermark back:
    # every state after it would wait for records already settled, and never be written
    ledger = _ledger_with_records(3)
    ledger.settle([1, 2, 3])
    ledger.settle([1])
    assert ledger.watermark == 3
    ledger.issue()
    ledger.register_state({"bookmark": 4})
    ledger.settle([4])
    assert ledger.take_ready_state() == (True, {"bookmark": 4})


def test_settling_numbers_of_which_some_are_settled_already_advances_the_watermark() -> None:
    ledger = _ledger_with_records(3)
    ledger.register_state({"bookmark": 3})
    ledger.settle([1, 2])
    ledger.settle([2, 3])
    assert ledger.watermark == 3
    assert ledger.take_ready_state() == (True, {"bookmark": 3})


def test_a_state_repeated_while_an_older_one_waits_is_held_once() -> None:
    # a tap repeating its state (a heartbeat) while a record before an older state is still
    # in flight: each repeat supersedes the last, so memory does not grow with the repeats
    ledger = _ledger_with_records(1)
    ledger.register_state({"bookmark": 1})
    ledger.issue()
    for beat in range(3):
        ledger.register_state({"bookmark": 2, "beat": beat})
    assert ledger.pending_state_count == 2
    ledger.settle([1, 2])
    assert ledger.take_ready_state() == (True, {"bookmark": 2, "beat": 2})


def test_a_state_after_every_record_holds_a_bounded_number_of_states() -> None:
    ledger = AckLedger()
    for number in range(1, 10_001):
        ledger.issue()
        ledger.register_state({"bookmark": number})
    assert ledger.pending_state_count <= MAX_PENDING_STATES
    ledger.settle(range(1, 10_001))
    assert ledger.take_ready_state() == (True, {"bookmark": 10_000})


def test_a_state_let_go_for_memory_is_replaced_by_an_older_one_never_a_newer() -> None:
    ledger = AckLedger()
    for number in range(1, 10_001):
        ledger.issue()
        ledger.register_state({"bookmark": number})
    ledger.settle(range(1, 5_001))
    found, state = ledger.take_ready_state()
    # the states held are spread evenly over the records in flight
    assert found and 5_000 - 4 * 10_000 // MAX_PENDING_STATES < state["bookmark"] <= 5_000
