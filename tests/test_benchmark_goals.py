"""The benchmark's goal lines: a failed run makes no goal look met."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from run import Measurement, print_goals


def measurement(label: str, seconds: float, problem: str | None = None) -> Measurement:
    return Measurement(
        label=label,
        events=50_000,
        seconds=seconds,
        cpu_seconds=seconds,
        peak_rss_mb=60.0,
        problem=problem,
        peak_tree_rss_mb=180.0,
        peak_tree_pss_mb=100.0,
        peak_processes=3,
    )


def test_goals_are_met_by_runs_that_reach_them(capsys: pytest.CaptureFixture[str]) -> None:
    fast, slow = measurement("(a)", 1.0), measurement("(b)", 10.0)
    assert print_goals(fast, slow, None, None) is True
    assert "a/b = 10.00   goal >= 3.5   met" in capsys.readouterr().out


def test_a_failed_run_makes_the_goals_invalid_even_where_the_figures_pass(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lost = measurement("(a)", 1.0, problem="the sandbox received 49000 distinct of 50000 events")
    assert print_goals(lost, measurement("(b)", 10.0), None, None) is False
    assert "goals (issue 7):  INVALID: a run above FAILED" in capsys.readouterr().out


def test_memory_goal_lines_give_the_rss_figures_next_to_the_pss_they_judge(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_goals(measurement("(a)", 1.0), None, None, None)
    assert (
        "peak memory (PSS, all processes) at 50,000 records = 100.0 MB   goal <= 120 MB   met"
        "   (RSS: largest process 60.0 MB, sum of 3 processes 180.0 MB)"
    ) in capsys.readouterr().out
