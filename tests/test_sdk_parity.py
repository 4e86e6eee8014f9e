"""What a user of Meta's business SDK (facebook_business.adobjects.serverside) reaches for,
sent through this client to the local sandbox."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from target_meta_capi.capi import EventRequest, InvalidRequestError, normalize_user_data
from target_meta_capi.capi.retry import RetryPolicy

TOKEN = "sandbox-token"
PIXEL = "1234567890"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def app_event(user_data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "event_name": "Lead",
        "event_time": int(time.time()) - 60,
        "event_id": "lead-1",
        "action_source": "app",
        "user_data": user_data,
        **fields,
    }


def send(sandbox, *events: dict[str, Any]) -> None:
    EventRequest(
        pixel_id=PIXEL,
        events=list(events),
        access_token=TOKEN,
        graph_url=sandbox.url,
        retry_policy=RetryPolicy(max_retries=0),
    ).execute()


def test_partial_names_and_birth_parts_are_sent_hashed_as_metas_sdk_sends_them(sandbox):
    normalized = normalize_user_data(
        {
            "f5first": "Maryann",
            "f5last": "Smithson",
            "fi": "M",
            "dobd": "7",
            "dobm": 2,
            "doby": "1997",
        }
    )
    assert normalized.dropped == []

    send(sandbox, app_event(normalized.user_data))

    assert sandbox.accepted_events()[0]["event"]["user_data"] == {
        "f5first": sha("marya"),
        "f5last": sha("smith"),
        "fi": sha("m"),
        "dobd": sha("07"),
        "dobm": sha("02"),
        "doby": sha("1997"),
    }


@pytest.mark.parametrize("key", ["f5first", "f5last", "fi", "dobd", "dobm", "doby"])
def test_a_partial_name_or_birth_part_sent_unhashed_is_refused(sandbox, key):
    with pytest.raises(InvalidRequestError) as caught:
        send(sandbox, app_event({"em": sha("a@b.co"), key: "07"}))

    assert caught.value.subcode == 2804011  # the sandbox's user_data_not_hashed
    assert sandbox.accepted_events() == []
