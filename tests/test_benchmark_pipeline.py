"""The pipeline benchmark runs whole: PostgreSQL -> tap-postgres -> each target, every row in.

benchmarks/pipeline.py is a documented command; this runs it on a small table, with the real
PostgreSQL server, the tap-postgres it installs in .venv-tap, Meltano and the sandbox, so that
it keeps working. Its figures are not checked: they are the benchmark's to print.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests._e2e import find_meltano, skip_or_fail
from tests._target_support import wait_until
from tools.private_postgres import missing_postgres_reason

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
ROWS = 500


def test_pipeline_benchmark_sends_every_row_through_tap_postgres_and_prints_each_cost(
    tmp_path: Path,
) -> None:
    reason = missing_postgres_reason()
    if reason is not None:
        skip_or_fail(reason)
    meltano = find_meltano()
    if meltano is None:
        skip_or_fail("meltano not found; `make test` installs it in .venv-meltano")
    command = [sys.executable, "benchmarks/pipeline.py", "--rows", str(ROWS), "--latency-ms", "10"]
    finished = subprocess.run(
        [*command, "--meltano", meltano, "--workdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = finished.stdout
    # a run that failed (exit code, or fewer events at the sandbox than rows) says FAILED
    assert finished.returncode == 0, report + finished.stderr[-3000:]
    assert "FAILED" not in report
    for label in (
        "(t) tap-postgres alone (> /dev/null)",
        "(b) tap-postgres | do-nothing singer-sdk target",
        "(p) tap-postgres | target-meta-capi",
        "(m) meltano run tap-postgres target-meta-capi",
    ):
        assert re.search(re.escape(label) + r" +\d+\.\d\d s", report), label
    for ratio in ("(b)/t", "(p)/t", "(m)/t"):
        assert re.search(re.escape(ratio) + r" = +\d+\.\d\d", report), ratio
    # the target's own account of who set the pace, after (p) and after (m)
    assert len(re.findall(r"the target's summary: Pace: .* set the pace", report)) == 2
    for log in ("target-pipeline.stderr", "meltano-run.stderr"):
        assert f"{ROWS} read, {ROWS} mapped, {ROWS} sent" in (tmp_path / log).read_text(), log


def _running_postgres_data_dirs() -> set[bytes]:
    """The data directory of every PostgreSQL server running on this machine."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if args[0].endswith(b"/postgres") and b"-D" in args[:-1]:
            found.add(args[args.index(b"-D") + 1])
    return found


def test_pipeline_benchmark_stopped_with_sigterm_stops_the_postgresql_server_it_started(
    tmp_path: Path,
) -> None:
    reason = missing_postgres_reason()
    if reason is not None:
        skip_or_fail(reason)
    discovering = tmp_path / "discovering"
    tap = tmp_path / "tap-that-never-answers"
    tap.write_text(f"#!/bin/sh\ntouch {discovering}\nexec sleep 120\n")
    tap.chmod(0o755)
    servers_before = _running_postgres_data_dirs()
    command = [sys.executable, "benchmarks/pipeline.py", "--rows", "50", "--tap-postgres", str(tap)]
    process = subprocess.Popen(
        [*command, "--meltano", str(tmp_path / "no-meltano"), "--workdir", str(tmp_path / "work")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # the table is loaded, its server up; or the benchmark ended early: said at once, with
        # its own words, not after the whole wait
        wait_until(lambda: discovering.exists() or process.poll() is not None, timeout=120)
        if not discovering.exists():
            _, stderr = process.communicate(timeout=60)
            pytest.fail(f"the benchmark ended (exit code {process.returncode}): {stderr.decode()}")
        assert _running_postgres_data_dirs() - servers_before
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    assert not _running_postgres_data_dirs() - servers_before
