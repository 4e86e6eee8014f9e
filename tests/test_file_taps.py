"""Taps reading files piped into the target: what they write for a value a file lacks.

Recorded from tap-jsonl 0.3.1 (tests/recorded/) over a JSONL file of three leads whose second
has `"created_at": ""`. The tap infers `format: date-time` for the column from its dates and
passes the empty text on, as CSV- and spreadsheet-reading taps do for an empty cell. Only the
dates are moved to an hour ago, so Meta's 7-day window keeps them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from target_meta_capi.sandbox import SandboxServer

from ._target_support import orders_config, read_dead_letters, run_in_process

RECORDING = Path(__file__).parent / "recorded" / "tap-jsonl-0.3.1.singer"
STREAM = "blank"
MAPPING = {
    "event_name": "Lead",
    "action_source": "system_generated",
    "fields": {"event_time": "created_at", "event_id": "id", "user_data.em": "email"},
}


def recorded_lines() -> list[str]:
    created = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat()
    lines = []
    for line in RECORDING.read_text(encoding="utf-8").splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD" and message["record"]["created_at"]:
            message["record"]["created_at"] = created
            line = json.dumps(message)
        lines.append(line)
    return lines


def run(sandbox: SandboxServer, tmp_path: Path) -> Any:
    return run_in_process(
        orders_config(sandbox.url, tmp_path, streams={STREAM: MAPPING}), recorded_lines()
    )


def test_an_empty_date_dead_letters_its_row_and_the_others_are_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = run(sandbox, tmp_path)

    assert result.exit_code == 0
    assert sorted(item["event"]["event_id"] for item in sandbox.accepted_events()) == ["1", "3"]
    [letter] = read_dead_letters(tmp_path)
    assert (letter["stream"], letter["key"], letter["field"]) == (STREAM, {"id": 2}, "event_time")


def test_the_taps_last_state_comes_back_after_an_empty_date(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = run(sandbox, tmp_path)

    assert result.states[-1] == json.loads(recorded_lines()[-1])["value"]
