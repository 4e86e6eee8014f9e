"""The benchmark repeats its commands in rounds and keeps each command's fastest run."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from run import Measurement, measure_in_rounds


def measurement(
    label: str, seconds: float, peak_pss_mb: float = 100.0, problem: str | None = None
) -> Measurement:
    return Measurement(
        label=label,
        events=50_000,
        seconds=seconds,
        cpu_seconds=seconds,
        peak_rss_mb=peak_pss_mb / 2,
        problem=problem,
        peak_tree_rss_mb=peak_pss_mb * 2,
        peak_tree_pss_mb=peak_pss_mb,
        peak_processes=3,
    )


def runs_of(label: str, runs: list[Measurement], calls: list[str]) -> Callable[[], Measurement]:
    """A command whose successive runs give `runs`, noting each call in `calls`."""
    remaining: Iterator[Measurement] = iter(runs)

    def measure_once() -> Measurement:
        calls.append(label)
        return next(remaining)

    return measure_once


def test_each_round_runs_every_command_once_before_any_runs_again() -> None:
    calls: list[str] = []
    measures = {
        name: runs_of(name, [measurement(name, 1.0) for _ in range(3)], calls)
        for name in ("b", "c", "a")
    }
    measure_in_rounds(3, measures)
    assert calls == ["b", "c", "a"] * 3


def test_the_fastest_run_is_kept_with_the_highest_memory_any_run_reached() -> None:
    runs = [
        measurement("(a)", 5.0, peak_pss_mb=110.0),
        measurement("(a)", 4.0, peak_pss_mb=105.0),
        measurement("(a)", 6.0, peak_pss_mb=118.0),
    ]
    best = measure_in_rounds(3, {"a": runs_of("a", runs, [])})["a"]
    assert best.seconds == 4.0
    assert best.peak_tree_pss_mb == 118.0
    assert best.peak_tree_rss_mb == 236.0
    assert best.peak_rss_mb == 59.0


def test_a_command_whose_run_failed_is_not_run_again_and_that_run_is_its_result() -> None:
    calls: list[str] = []
    lost = measurement("(a)", 1.0, problem="the sandbox received 49000 distinct of 50000 events")
    measures = {
        "b": runs_of("b", [measurement("(b)", 10.0), measurement("(b)", 9.0)], calls),
        "a": runs_of("a", [lost, measurement("(a)", 0.5)], calls),
    }
    best = measure_in_rounds(2, measures)
    assert calls == ["b", "a", "b"]
    assert best["a"] is lost
    assert best["b"].seconds == 9.0
