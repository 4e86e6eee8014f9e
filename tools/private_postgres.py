"""A throwaway PostgreSQL server, for the end-to-end tests and the pipeline benchmark.

`initdb` in a fresh temporary directory, listening on a free loopback port, stopped and deleted
at the end. PostgreSQL refuses to run as root, so when run as root (as CI does) the server runs
as the `postgres` system user and owns its directory.

SQL is run through the `psql` binary that ships next to the server, so neither the tests nor
the benchmark need a Python database driver.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Debian/Ubuntu layout; POSTGRES_BIN_DIR overrides it (e.g. a Homebrew or source build).
_CANDIDATE_BIN_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)
_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres", "psql")
_SUPERUSER = "postgres"
_START_TIMEOUT_SECONDS = 60


def find_postgres_bin_dir() -> Path | None:
    """The directory holding initdb/pg_ctl/postgres/psql, or None if PostgreSQL is missing."""
    override = os.environ.get("POSTGRES_BIN_DIR")
    candidates = [override] if override else list(_CANDIDATE_BIN_DIRS)
    for candidate in candidates:
        directory = Path(candidate)
        if all((directory / name).is_file() for name in _REQUIRED_BINARIES):
            return directory
    return None


def missing_postgres_reason() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None if it can."""
    if find_postgres_bin_dir() is None:
        where = os.environ.get("POSTGRES_BIN_DIR") or ", ".join(_CANDIDATE_BIN_DIRS)
        return f"PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) not found in {where}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_SUPERUSER)
        except KeyError:
            return "running as root but there is no 'postgres' system user to run the server as"
    return None


@dataclass(frozen=True)
class PostgresServer:
    """A running server plus one application user and database."""

    bin_dir: Path
    host: str
    port: int
    socket_dir: Path
    user: str
    password: str
    database: str

    def psql(self, sql: str, *, stdin: str | None = None, database: str | None = None) -> str:
        """Run SQL as the superuser over the Unix socket; return unaligned, tuple-only output.

        `stdin` feeds `COPY ... FROM STDIN` statements.
        """
        command = [
            str(self.bin_dir / "psql"),
            "--no-psqlrc",
            "--quiet",
            "--tuples-only",
            "--no-align",
            "--set",
            "ON_ERROR_STOP=1",
            "--host",
            str(self.socket_dir),
            "--port",
            str(self.port),
            "--username",
            _SUPERUSER,
            "--dbname",
            database or self.database,
            "--command",
            sql,
        ]
        completed = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        )
        if completed.returncode != 0:
            raise RuntimeError(f"psql failed ({completed.returncode}): {completed.stderr.strip()}")
        return completed.stdout

    def copy_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> None:
        """Bulk-load rows with COPY (CSV); None becomes SQL NULL."""
        lines = []
        for row in rows:
            cells = ["" if value is None else _csv_quote(str(value)) for value in row]
            lines.append(",".join(cells))
        column_list = ", ".join(columns)
        self.psql(
            f"COPY {table} ({column_list}) FROM STDIN WITH (FORMAT csv)",
            stdin="\n".join(lines) + "\n",
        )


def _csv_quote(text: str) -> str:
    # Always quoted, so an empty string stays distinct from NULL (an unquoted empty cell).
    return '"' + text.replace('"', '""') + '"'


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", _SUPERUSER, "--", *command]
    return ["su", "-s", "/bin/sh", _SUPERUSER, "-c", shlex.join(command)]


def _run(command: list[str], *, what: str, log_file: Path | None = None) -> None:
    completed = subprocess.run(
        _as_server_user(command),
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if completed.returncode != 0:
        log = ""
        if log_file is not None and log_file.exists():
            log = "\n--- server log ---\n" + log_file.read_text(errors="replace")[-4000:]
        raise RuntimeError(
            f"{what} failed ({completed.returncode}): {completed.stderr.strip()}"
            f"{completed.stdout.strip()}{log}"
        )


@contextmanager
def running_postgres(
    *, user: str = "meltano", password: str = "meltano-e2e", database: str = "shop"
) -> Iterator[PostgresServer]:
    """Start a private server, create `user` (password auth over TCP) owning `database`."""
    reason = missing_postgres_reason()
    if reason is not None:
        raise RuntimeError(reason)
    bin_dir = find_postgres_bin_dir()
    assert bin_dir is not None

    # Directly under the system temp dir: pytest's tmp_path lives under a 0700 root-owned
    # directory the `postgres` user could not enter.
    base_dir = Path(tempfile.mkdtemp(prefix="tmc-pg-"))
    data_dir = base_dir / "data"
    socket_dir = base_dir / "sock"
    socket_dir.mkdir()
    log_file = base_dir / "server.log"
    superuser_password_file = base_dir / "superuser-password"
    superuser_password_file.write_text("superuser-e2e\n")
    if os.geteuid() == 0:
        server_user = pwd.getpwnam(_SUPERUSER)
        for path in (base_dir, socket_dir, superuser_password_file):
            os.chown(path, server_user.pw_uid, server_user.pw_gid)

    started = False
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(data_dir),
                "--username",
                _SUPERUSER,
                "--pwfile",
                str(superuser_password_file),
                "--auth-local",
                "trust",
                "--auth-host",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            what="initdb",
        )
        port = _start_on_free_port(bin_dir, data_dir, socket_dir, log_file)
        started = True
        server = PostgresServer(
            bin_dir=bin_dir,
            host="127.0.0.1",
            port=port,
            socket_dir=socket_dir,
            user=user,
            password=password,
            database=database,
        )
        server.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'", database="postgres")
        server.psql(f"CREATE DATABASE {database} OWNER {user}", database="postgres")
        yield server
    finally:
        try:
            if started:
                _run(
                    [
                        str(bin_dir / "pg_ctl"),
                        "stop",
                        "--pgdata",
                        str(data_dir),
                        "--mode",
                        "fast",
                        "--wait",
                    ],
                    what="pg_ctl stop",
                )
        finally:
            shutil.rmtree(base_dir, ignore_errors=True)


def _start_on_free_port(bin_dir: Path, data_dir: Path, socket_dir: Path, log_file: Path) -> int:
    # The probed port can be taken by someone else before the server binds it: try again.
    last_error: Exception | None = None
    for _attempt in range(3):
        port = _free_loopback_port()
        server_options = (
            f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1"
            # Durability is worthless for a throwaway test database; speed is not.
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        try:
            _run(
                [
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "--pgdata",
                    str(data_dir),
                    "--wait",
                    "--timeout",
                    str(_START_TIMEOUT_SECONDS),
                    "--log",
                    str(log_file),
                    "--options",
                    server_options,
                ],
                what="pg_ctl start",
                log_file=log_file,
            )
            return port
        except RuntimeError as error:
            last_error = error
            time.sleep(0.5)
    raise RuntimeError(f"PostgreSQL did not start: {last_error}")
