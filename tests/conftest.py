"""Shared fixtures: a local Conversions API sandbox on 127.0.0.1 (target_meta_capi.sandbox),
and a mypy cache for the tests that type-check a user's program."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from target_meta_capi.sandbox import SandboxConfig, SandboxServer


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A started sandbox with the default config: pixel "1234567890", token "sandbox-token"."""
    with SandboxServer(SandboxConfig()) as server:
        yield server


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxServer]]:
    """Start sandboxes with other settings; all are stopped at teardown.

    ``sandbox_factory(throttle_rate=1.0)`` or ``sandbox_factory(SandboxConfig(...), seed=3)``.
    """
    started: list[SandboxServer] = []

    def start(config: SandboxConfig | None = None, **overrides: Any) -> SandboxServer:
        server = SandboxServer(config, **overrides).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the session: each user's program is checked afresh, the standard
    library and the client library it imports once, not once per test."""
    return tmp_path_factory.mktemp("mypy-cache")
