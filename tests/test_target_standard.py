"""singer-sdk's standard target tests, run against the sandbox.

The standard streams carry no customer data and no event name, so the target skips them with
a warning; the suite checks that every kind of Singer input is read without crashing (and that
the ones that must fail do). What arrives at the sandbox is tested in test_target_delivery.py.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from singer_sdk.testing import get_target_test_class

from target_meta_capi.sandbox import SandboxConfig, SandboxServer
from target_meta_capi.target import TargetMetaCapi

from ._target_support import ACCESS_TOKEN, PIXEL_ID

# Filled in by the class-scoped fixture below once the sandbox listens: the runners read
# this same dict when each test starts.
SUITE_CONFIG: dict = {
    "pixel_id": PIXEL_ID,
    "access_token": ACCESS_TOKEN,
    "progress_interval": 0,
}

StandardTargetTests = get_target_test_class(
    TargetMetaCapi, config=SUITE_CONFIG, parse_env_config=False
)


class TestTargetMetaCapiStandard(StandardTargetTests):  # type: ignore[misc, valid-type]
    @pytest.fixture(scope="class")
    @classmethod
    def resource(cls) -> Iterator[SandboxServer]:
        with (
            SandboxServer(SandboxConfig()) as sandbox,
            tempfile.TemporaryDirectory() as directory,
        ):
            SUITE_CONFIG["graph_url"] = sandbox.url
            SUITE_CONFIG["dead_letter_path"] = str(Path(directory) / "dead_letters.jsonl")
            yield sandbox

    def test_standard_streams_are_skipped_not_sent(self, resource: SandboxServer) -> None:
        assert SUITE_CONFIG["graph_url"] == resource.url
        assert resource.stats()["requests"] == 0
