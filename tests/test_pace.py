"""Who set a run's pace: the main thread's waits for input and for Meta, and the verdict."""

from __future__ import annotations

import pytest

from target_meta_capi.pace import PaceClock, pace


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("input_wait", "answer_wait", "set_by"),
    [(8.0, 1.0, "tap"), (1.0, 8.0, "meta"), (3.0, 3.0, "target")],
)
def test_pace_is_set_by_whatever_the_main_thread_spent_most_of_the_run_on(
    input_wait: float, answer_wait: float, set_by: str
) -> None:
    run_pace = pace(10.0, input_wait, answer_wait)
    assert run_pace["set_by"] == set_by
    assert run_pace["working_seconds"] == round(10.0 - input_wait - answer_wait, 3)


def test_pace_never_reports_negative_work_or_waits() -> None:
    # waits read while one ends, and the run's own clock, may disagree by a hair
    assert pace(1.0, 0.6, 0.45)["working_seconds"] == 0.0
    assert pace(1.0, -0.01, 0.2)["waiting_for_input_seconds"] == 0.0


def test_waits_are_added_up_by_what_was_waited_for() -> None:
    clock = FakeClock()
    pace_clock = PaceClock(clock)
    for what, seconds in (("input", 2.0), ("meta", 0.5), ("input", 1.0)):
        with pace_clock.waiting_for(what):
            clock.now += seconds
        clock.now += 10.0  # working in between
    assert pace_clock.waits() == (3.0, 0.5)


def test_a_wait_for_meta_while_waiting_for_input_counts_as_waiting_for_input() -> None:
    # stdin is dry, and meanwhile the target sends what it holds into a full window
    clock = FakeClock()
    pace_clock = PaceClock(clock)
    with pace_clock.waiting_for("input"):
        clock.now += 1.0
        with pace_clock.waiting_for("meta"):
            clock.now += 4.0
    assert pace_clock.waits() == (5.0, 0.0)


def test_waits_include_the_one_still_going_on() -> None:
    clock = FakeClock()
    pace_clock = PaceClock(clock)
    with pace_clock.waiting_for("meta"):
        clock.now += 30.0  # throttled: a progress line comes meanwhile
        assert pace_clock.waits() == (0.0, 30.0)


def test_a_wait_ended_by_an_exception_is_still_counted() -> None:
    clock = FakeClock()
    pace_clock = PaceClock(clock)
    with pytest.raises(KeyboardInterrupt), pace_clock.waiting_for("input"):
        clock.now += 2.0
        raise KeyboardInterrupt
    assert pace_clock.waits() == (2.0, 0.0)


def test_pace_gives_seconds_to_the_millisecond() -> None:
    assert pace(10.0, 1.23456, 2.34567) == {
        "waiting_for_input_seconds": 1.235,
        "waiting_for_meta_seconds": 2.346,
        "working_seconds": 6.42,
        "set_by": "target",
    }
