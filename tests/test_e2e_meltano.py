"""End to end: PostgreSQL -> `meltano run tap-postgres target-meta-capi` -> sandbox.

Everything is real: a PostgreSQL 15 server started for this module, Meltano (from the
separate `.venv-meltano`) driving the project's own `meltano.yml`, tap-postgres from the
package index, the target installed editable by `meltano install`, and the sandbox Graph API.
Only the connection details and the sandbox's port are overridden, through the environment
variables Meltano maps onto settings; pixel id, token and test_event_code come from the
`dev` environment of meltano.yml.

Six runs share one database, one sandbox and one Meltano system database:
1. the full load: every row arrives once, hashed as Meta normalizes it;
2. after inserting and updating rows: only those rows are sent;
3. with a token the sandbox refuses: the run fails and the bookmark does not move;
4. with settings in the environment their setting cannot take: the run stops at start;
5. after ALTER TABLE renamed a mapped column: the run sees it, and sends the waiting rows;
6. with the tap's `batch_config`: its BATCH messages' rows arrive once, and the state is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from target_meta_capi.sandbox import SandboxConfig, SandboxServer
from target_meta_capi.target import TargetMetaCapi
from tests._e2e import find_meltano, skip_or_fail
from tools.private_postgres import PostgresServer, missing_postgres_reason, running_postgres

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE_ID = "dev:tap-postgres-to-target-meta-capi"
STREAM = "public-orders"
# Values of meltano.yml's `dev` environment, which the sandbox's defaults match.
TEST_EVENT_CODE = "TEST12345"
PIXEL_ID = "1234567890"

INITIAL_ROWS = 3000
UPDATED_ORDER_IDS = (17, 250, 1234, 2222)
INSERTED_ROWS = 25
ROWS_INSERTED_BEFORE_FAILING_RUN = 5
MELTANO_TIMEOUT_SECONDS = 600
REFUSED_TOKEN = "not-the-sandbox-token"

ORDER_COLUMNS = (
    "order_id",
    "customer_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "city",
    "state",
    "zip",
    "country",
    "client_ip",
    "user_agent",
    "page_url",
    "total",
    "currency",
    "created_at",
    "updated_at",
)

# Messy inputs as shops store them. None is NULL; an entry may be invalid on purpose
# ("not-an-email", a 5-digit phone) and must then be left out of the event.
EMAIL_PATTERNS = (
    " {first}.{last}{n}@Example.COM ",
    "{FIRST}_{n}@MAIL.example.org",
    "\t{first}{n}@shop.example\t",
    None,
    "not-an-email",
)
PHONE_PATTERNS = (
    "+1 (616) 954-{n4}",
    "001 616 954 {n4}",
    "+44 20 7946 {n4}",
    "(+33) 6-12-34-{n2}-{n2}",
    None,
    "12-345",
)
FIRST_NAMES = ("  MARY ", "José", "Zoë", "renée", "BJÖRN", "Ana-Lucía", None)
LAST_NAMES = ("O'Brien", " Müller ", "SMITH", "García", "Nguyễn", None)
CITIES = ("Menlo Park", " SÃO PAULO ", "St. Louis", "Zürich", "new york", None)
STATES = ("CA", " ny ", "California", "Tx", None)
ZIPS = ("94035-1234", " 10001 ", "SW1A 1AA", None)
COUNTRIES = ("US", " us ", "Gb", "fr", None)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
)
CURRENCIES = ("USD", "EUR", "GBP")


# --- expected normalization, written from Meta's rules independently of the target's code ---


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _letters_and_digits(text: str) -> str:
    folded = unicodedata.normalize("NFC", text.strip().lower())
    return "".join(char for char in folded if char.isalnum())


def _expected_email(raw: str) -> str | None:
    text = raw.strip().lower()
    return text if re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", text) else None


def _expected_phone(raw: str) -> str | None:
    digits = re.sub(r"\D", "", raw).lstrip("0")
    return digits if len(digits) >= 7 else None


def _expected_state(raw: str) -> str:
    text = _letters_and_digits(raw)
    return {"california": "ca"}.get(text, text)


def _expected_zip(raw: str) -> str:
    text = raw.strip().lower()
    if re.fullmatch(r"\d{5}-\d{4}", text):
        return text[:5]
    return text.replace(" ", "").replace("-", "")


EXPECTED_NORMALIZERS = {
    "em": _expected_email,
    "ph": _expected_phone,
    "fn": _letters_and_digits,
    "ln": _letters_and_digits,
    "ct": _letters_and_digits,
    "st": _expected_state,
    "zp": _expected_zip,
    "country": lambda raw: raw.strip().lower(),
    "external_id": lambda raw: raw.strip().lower(),
}
# The mapping in meltano.yml: CAPI user_data key -> orders column.
HASHED_COLUMNS = {
    "em": "email",
    "ph": "phone",
    "fn": "first_name",
    "ln": "last_name",
    "ct": "city",
    "st": "state",
    "zp": "zip",
    "country": "country",
    "external_id": "customer_id",
}


def expected_user_data(order: Mapping[str, Any]) -> dict[str, Any]:
    user_data: dict[str, Any] = {
        "client_ip_address": order["client_ip"],
        "client_user_agent": order["user_agent"],
    }
    for key, column in HASHED_COLUMNS.items():
        raw = order[column]
        normalized = None if raw is None else EXPECTED_NORMALIZERS[key](raw)
        if normalized:
            user_data[key] = _sha256(normalized)
    return user_data


# --- the orders table ---------------------------------------------------------------------


def _pick(options: tuple[Any, ...], rng: random.Random) -> Any:
    return options[rng.randrange(len(options))]


def make_order(order_id: int, updated_at: dt.datetime, rng: random.Random) -> dict[str, Any]:
    first = _pick(("mary", "jose", "zoe", "li", "ahmed"), rng)
    last = _pick(("smith", "obrien", "muller", "garcia"), rng)
    n = order_id
    email_pattern = _pick(EMAIL_PATTERNS, rng)
    phone_pattern = _pick(PHONE_PATTERNS, rng)
    # Whole seconds, so the expected event_time is exact whatever rounding the target does.
    updated_at = updated_at.replace(microsecond=0)
    created_at = updated_at - dt.timedelta(seconds=rng.randrange(0, 1800))
    return {
        "order_id": order_id,
        "customer_id": None if order_id % 11 == 0 else f"  Cust-{order_id:05d} ",
        "email": None
        if email_pattern is None
        else email_pattern.format(first=first, last=last, FIRST=first.upper(), n=n),
        "phone": None
        if phone_pattern is None
        else phone_pattern.format(n4=f"{n % 10000:04d}", n2=f"{n % 100:02d}"),
        "first_name": _pick(FIRST_NAMES, rng),
        "last_name": _pick(LAST_NAMES, rng),
        "city": _pick(CITIES, rng),
        "state": _pick(STATES, rng),
        "zip": _pick(ZIPS, rng),
        "country": _pick(COUNTRIES, rng),
        "client_ip": f"203.0.113.{order_id % 250 + 1}" if order_id % 7 else "2001:db8::7",
        "user_agent": _pick(USER_AGENTS, rng),
        "page_url": f"https://shop.example.com/checkout/{order_id}",
        "total": Decimal(rng.randrange(100, 500_000)) / 100,
        "currency": _pick(CURRENCIES, rng),
        "created_at": created_at,
        "updated_at": updated_at,
    }


def _whole_seconds_ago(now: dt.datetime, seconds: float) -> dt.datetime:
    return (now - dt.timedelta(seconds=seconds)).replace(microsecond=0)


class OrdersTable:
    """The orders table and our own copy of every row, by order_id."""

    def __init__(self, postgres: PostgresServer) -> None:
        self.postgres = postgres
        self.rows: dict[int, dict[str, Any]] = {}
        self.rng = random.Random(20261128)

    def create(self) -> None:
        self.postgres.psql(
            """
            CREATE TABLE public.orders (
                order_id    bigint PRIMARY KEY,
                customer_id text,
                email       text,
                phone       text,
                first_name  text,
                last_name   text,
                city        text,
                state       text,
                zip         text,
                country     text,
                client_ip   text,
                user_agent  text NOT NULL,
                page_url    text NOT NULL,
                total       numeric(12, 2) NOT NULL,
                currency    char(3) NOT NULL,
                created_at  timestamptz NOT NULL,
                updated_at  timestamptz NOT NULL
            );
            ALTER TABLE public.orders OWNER TO meltano;
            """
        )

    def insert(self, orders: list[dict[str, Any]]) -> None:
        self.postgres.copy_rows(
            "public.orders",
            ORDER_COLUMNS,
            [[_sql_text(order[column]) for column in ORDER_COLUMNS] for order in orders],
        )
        self.rows.update({order["order_id"]: order for order in orders})

    def insert_recent(self, count: int, *, since: dt.datetime | None = None) -> list[int]:
        """Insert `count` new orders, updated evenly from `since` (default: after every row
        already there, so an incremental read must pick them up) until a second ago."""
        end = _whole_seconds_ago(dt.datetime.now(dt.timezone.utc), 1)
        start = since or self._next_updated_at()
        end = max(start, end)
        first_id = max(self.rows, default=0) + 1
        orders = [
            make_order(
                first_id + index, start + (end - start) * index / max(count - 1, 1), self.rng
            )
            for index in range(count)
        ]
        self.insert(orders)
        return [order["order_id"] for order in orders]

    def update(self, order_id: int, *, email: str, total: Decimal) -> None:
        updated_at = max(
            self._next_updated_at(), _whole_seconds_ago(dt.datetime.now(dt.timezone.utc), 1)
        )
        self.postgres.psql(
            f"UPDATE public.orders SET email = '{email}', total = {total},"
            f" updated_at = '{updated_at.isoformat()}' WHERE order_id = {order_id}"
        )
        self.rows[order_id].update(email=email, total=total, updated_at=updated_at)

    def _next_updated_at(self) -> dt.datetime:
        latest = max(row["updated_at"] for row in self.rows.values())
        return latest + dt.timedelta(seconds=1)

    def max_updated_at(self) -> dt.datetime:
        epoch = self.postgres.psql("SELECT extract(epoch FROM max(updated_at)) FROM public.orders")
        return dt.datetime.fromtimestamp(float(epoch), dt.timezone.utc)

    def ids_updated_at(self, moment: dt.datetime) -> set[int]:
        return {order_id for order_id, row in self.rows.items() if row["updated_at"] == moment}


def _sql_text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


# --- Meltano --------------------------------------------------------------------------------


@dataclass
class MeltanoResult:
    returncode: int
    stdout: str
    stderr: str  # Meltano's and the plugins' logs

    def tail(self, lines: int = 60) -> str:
        return "\n".join((self.stderr + self.stdout).splitlines()[-lines:])

    def json(self) -> Any:
        return json.loads(self.stdout)


class MeltanoProject:
    """The repository's own Meltano project with a private system database and `.meltano`.

    A private `.meltano` (MELTANO_SYS_DIR_ROOT) keeps two test sessions, or a test session and
    someone's own `meltano run`, from overwriting each other's generated config and catalog in
    `.meltano/run`. Installing the plugins into it takes seconds: Meltano installs with uv,
    whose download cache is what makes a second install cheap.
    """

    def __init__(self, executable: str, work_dir: Path, settings_env: Mapping[str, str]) -> None:
        self.executable = executable
        # Settings from the caller's shell (or an earlier export) must not leak in.
        base_env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("TAP_POSTGRES_", "TARGET_META_CAPI_", "MELTANO_"))
        }
        self.env = {
            **base_env,
            "MELTANO_DATABASE_URI": f"sqlite:///{work_dir / 'meltano.db'}",
            "MELTANO_SYS_DIR_ROOT": str(work_dir / "meltano-sys"),
            "MELTANO_ENVIRONMENT": "dev",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            **settings_env,
        }

    def meltano(self, *args: str, env: Mapping[str, str] | None = None) -> MeltanoResult:
        completed = subprocess.run(
            [self.executable, *args],
            cwd=REPO_ROOT,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MELTANO_TIMEOUT_SECONDS,
            check=False,
        )
        return MeltanoResult(completed.returncode, completed.stdout, completed.stderr)

    def install(self) -> None:
        result = self.meltano("install")
        assert result.returncode == 0, f"meltano install failed:\n{result.tail()}"

    def run_pipeline(self, env: Mapping[str, str] | None = None) -> MeltanoResult:
        return self.meltano("run", "tap-postgres", "target-meta-capi", env=env)

    def state(self) -> dict[str, Any]:
        result = self.meltano("state", "get", STATE_ID)
        assert result.returncode == 0, f"meltano state get failed:\n{result.tail()}"
        return result.json()


def _bookmark(state: Mapping[str, Any]) -> dt.datetime:
    bookmark = state["singer_state"]["bookmarks"][STREAM]
    assert bookmark["replication_key"] == "updated_at"
    return dt.datetime.fromisoformat(bookmark["replication_key_value"])


def _events_by_id(sandbox: SandboxServer) -> dict[str, list[dict[str, Any]]]:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for accepted in sandbox.accepted_events():
        by_id.setdefault(str(accepted["event"].get("event_id")), []).append(accepted)
    return by_id


def _single_hash(value: Any) -> Any:
    # Meta takes a hash or a list of hashes; one value either way is the same match key.
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


@dataclass
class RunOutcome:
    result: MeltanoResult
    events_by_id: dict[str, list[dict[str, Any]]]
    state: dict[str, Any]


@dataclass
class Pipeline:
    orders: OrdersTable
    sandbox: SandboxServer
    meltano: MeltanoProject
    dead_letter_path: Path

    def run(self, env: Mapping[str, str] | None = None) -> RunOutcome:
        self.sandbox.reset()
        result = self.meltano.run_pipeline(env)
        return RunOutcome(result, _events_by_id(self.sandbox), self.meltano.state())


# --- fixtures: one database, sandbox and Meltano project for the six runs -----------------


@pytest.fixture(scope="module")
def meltano_executable() -> str:
    executable = find_meltano()
    if executable is None:
        skip_or_fail(
            "meltano not found (.venv-meltano/bin/meltano, MELTANO_BIN or PATH); `make test` "
            "installs it in .venv-meltano"
        )
    return executable


@pytest.fixture(scope="module")
def pipeline(meltano_executable: str) -> Iterator[Pipeline]:
    reason = missing_postgres_reason()
    if reason is not None:
        skip_or_fail(reason)
    work_dir = Path(tempfile.mkdtemp(prefix="tmc-e2e-"))
    try:
        with running_postgres() as postgres, SandboxServer(SandboxConfig(port=0)) as sandbox:
            dead_letter_path = work_dir / "dead_letters.jsonl"
            meltano = MeltanoProject(
                meltano_executable,
                work_dir,
                {
                    "TAP_POSTGRES_HOST": postgres.host,
                    "TAP_POSTGRES_PORT": str(postgres.port),
                    "TAP_POSTGRES_USER": postgres.user,
                    "TAP_POSTGRES_PASSWORD": postgres.password,
                    "TAP_POSTGRES_DATABASE": postgres.database,
                    "TARGET_META_CAPI_GRAPH_URL": sandbox.url,
                    "TARGET_META_CAPI_DEAD_LETTER_PATH": str(dead_letter_path),
                },
            )
            meltano.install()
            orders = OrdersTable(postgres)
            orders.create()
            yield Pipeline(orders, sandbox, meltano, dead_letter_path)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def first_run(pipeline: Pipeline) -> RunOutcome:
    pipeline.orders.insert_recent(
        INITIAL_ROWS, since=_whole_seconds_ago(dt.datetime.now(dt.timezone.utc), 20 * 3600)
    )
    outcome = pipeline.run()
    assert outcome.result.returncode == 0, f"meltano run failed:\n{outcome.result.tail()}"
    return outcome


@dataclass
class IncrementalRun:
    outcome: RunOutcome
    inserted_ids: list[int]
    previous_bookmark_ids: set[int]


@pytest.fixture(scope="module")
def incremental_run(pipeline: Pipeline, first_run: RunOutcome) -> IncrementalRun:
    previous_bookmark_ids = pipeline.orders.ids_updated_at(_bookmark(first_run.state))
    for order_id in UPDATED_ORDER_IDS:
        pipeline.orders.update(
            order_id, email=f" Changed.{order_id}@Example.NET ", total=Decimal("99.99")
        )
    inserted_ids = pipeline.orders.insert_recent(INSERTED_ROWS)
    # number settings from the environment, which Meltano passes on as text
    outcome = pipeline.run(
        {"TARGET_META_CAPI_REQUEST_TIMEOUT": "30", "TARGET_META_CAPI_MAX_BATCH_WAIT_SECONDS": "0.5"}
    )
    assert outcome.result.returncode == 0, f"meltano run failed:\n{outcome.result.tail()}"
    return IncrementalRun(outcome, inserted_ids, previous_bookmark_ids)


@dataclass
class FailedRun:
    outcome: RunOutcome
    state_before: dict[str, Any]


@pytest.fixture(scope="module")
def auth_rejected_run(pipeline: Pipeline, incremental_run: IncrementalRun) -> FailedRun:
    pipeline.orders.insert_recent(ROWS_INSERTED_BEFORE_FAILING_RUN)
    outcome = pipeline.run({"TARGET_META_CAPI_ACCESS_TOKEN": REFUSED_TOKEN})
    return FailedRun(outcome, incremental_run.outcome.state)


# --- meltano.yml itself ----------------------------------------------------------------------

# SQL targets only; meaningless for an API target.
SETTINGS_NOT_FOR_MELTANO = {"load_method"}


def _meltano_loader() -> dict[str, Any]:
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text(encoding="utf-8"))
    (loader,) = [
        plugin for plugin in project["plugins"]["loaders"] if plugin["name"] == "target-meta-capi"
    ]
    return loader


def _target_settings() -> dict[str, Any]:
    """The settings `target-meta-capi --about` lists: the target's own and the SDK's."""
    return TargetMetaCapi.settings_schema()["properties"]


def test_meltano_yml_declares_every_setting_of_the_target():
    declared = {setting["name"] for setting in _meltano_loader()["settings"]}
    assert declared == set(_target_settings()) - SETTINGS_NOT_FOR_MELTANO


# Meltano's kind for each JSON Schema type; a string setting has no kind (string is the default),
# and neither has a number, integer or boolean setting: Meltano 4.4 reads those kinds itself,
# crashing on a `kind: decimal` value from the environment, failing on a `kind: integer` one
# that is no whole number without naming the setting, and reading a `kind: boolean` one that is
# no true word as false; without a kind it passes the text on, which the target reads or
# refuses by name.
MELTANO_KIND_OF_TYPE = {
    "integer": None,
    "number": None,
    "boolean": None,
    "object": "object",
    "array": "array",
    "string": None,
}


def _meltano_kind(schema: Mapping[str, Any]) -> str | None:
    if "enum" in schema:
        return "options"
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return MELTANO_KIND_OF_TYPE[next(kind for kind in types if kind != "null")]


def test_meltano_yml_settings_have_the_kind_of_the_targets_setting_type():
    declared = {setting["name"]: setting.get("kind") for setting in _meltano_loader()["settings"]}
    expected = {
        name: _meltano_kind(schema)
        for name, schema in _target_settings().items()
        if name not in SETTINGS_NOT_FOR_MELTANO
    }
    assert declared == expected


def test_meltano_passes_number_integer_and_boolean_settings_from_the_environment_as_text(
    pipeline: Pipeline,
) -> None:
    result = pipeline.meltano.meltano(
        "config",
        "print",
        "target-meta-capi",
        env={
            "TARGET_META_CAPI_REQUEST_TIMEOUT": "2.5",
            "TARGET_META_CAPI_BATCH_SIZE": "abc",
            "TARGET_META_CAPI_DRY_RUN": "ture",
        },
    )
    assert result.returncode == 0, f"meltano config print failed:\n{result.tail()}"
    config = result.json()
    # the text as given: with a kind, Meltano 4.4 would fail on "abc" and read "ture" as false
    assert (config["request_timeout"], config["batch_size"], config["dry_run"]) == (
        "2.5",
        "abc",
        "ture",
    )


def _streams_from_the_environment(pipeline: Pipeline, streams: Mapping[str, Any]) -> Any:
    result = pipeline.meltano.meltano(
        "config",
        "print",
        "target-meta-capi",
        env={"TARGET_META_CAPI_STREAMS": json.dumps(streams)},
    )
    assert result.returncode == 0, f"meltano config print failed:\n{result.tail()}"
    return result.json()["streams"]


def test_meltano_drops_dotted_keys_of_a_streams_entry_given_in_the_environment(
    pipeline: Pipeline,
) -> None:
    fields = {"event_time": "created_at", "user_data.em": "email", "custom_data.value": "score"}
    streams = _streams_from_the_environment(pipeline, {"public-leads": {"fields": fields}})
    # Meltano 4.4 loses them without a word: docs/meltano.md says to nest them there
    assert streams["public-leads"]["fields"] == {"event_time": "created_at"}


def test_meltano_merges_a_streams_setting_from_the_environment_into_meltano_yml_s(
    pipeline: Pipeline,
) -> None:
    fields = {"user_data": {"em": "email_address"}}
    streams = _streams_from_the_environment(pipeline, {STREAM: {"fields": fields}})
    user_data = streams[STREAM]["fields"]["user_data"]
    # the environment's key wins, and meltano.yml's others stay: none can be taken away there
    assert (user_data["em"], user_data["ph"]) == ("email_address", "phone")


def test_meltano_yml_declares_the_capabilities_the_target_reports():
    reported = {str(capability) for capability in TargetMetaCapi.capabilities}
    assert set(_meltano_loader()["capabilities"]) == reported


def test_meltano_yml_marks_exactly_the_secret_settings_sensitive():
    sensitive = {
        setting["name"] for setting in _meltano_loader()["settings"] if setting.get("sensitive")
    }
    secret = {name for name, schema in _target_settings().items() if schema.get("secret")}
    assert sensitive == secret


def _sample_orders_columns() -> set[str]:
    """The columns examples/orders.sql gives public.orders."""
    sql = (REPO_ROOT / "examples" / "orders.sql").read_text(encoding="utf-8")
    table = re.search(r"CREATE TABLE IF NOT EXISTS public\.orders \((.*?)\n\);", sql, re.DOTALL)
    assert table is not None, "examples/orders.sql creates no public.orders"
    return {line.split()[0] for line in table[1].strip().splitlines()}


def test_sample_orders_table_has_the_columns_of_the_end_to_end_tests_table():
    assert _sample_orders_columns() == set(ORDER_COLUMNS)


def test_sample_orders_table_has_every_column_meltano_yml_reads():
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text(encoding="utf-8"))
    (extractor,) = project["plugins"]["extractors"]
    fields = _meltano_loader()["config"]["streams"][STREAM]["fields"]
    read = {*fields.values(), extractor["metadata"][STREAM]["replication-key"]}
    assert read <= _sample_orders_columns()


def test_meltano_prod_environment_sends_real_events_to_meta(
    meltano_executable: str, tmp_path: Path
):
    meltano = MeltanoProject(
        meltano_executable,
        tmp_path,
        {
            "META_PIXEL_ID": "424242",
            "META_ACCESS_TOKEN": "live-token",
        },
    )
    result = meltano.meltano(
        "--environment=prod", "config", "--unsafe", "print", "target-meta-capi"
    )
    assert result.returncode == 0, result.tail()
    config = result.json()
    assert config["graph_url"] == "https://graph.facebook.com"
    assert (config["pixel_id"], config["access_token"]) == ("424242", "live-token")
    assert "test_event_code" not in config


# --- run 1: full load ------------------------------------------------------------------------


def test_full_load_delivers_every_row_exactly_once(pipeline: Pipeline, first_run: RunOutcome):
    counts = {event_id: len(events) for event_id, events in first_run.events_by_id.items()}
    assert set(counts) == {str(order_id) for order_id in pipeline.orders.rows}
    assert {event_id: n for event_id, n in counts.items() if n != 1} == {}


def test_full_load_hashes_user_data_as_meta_normalizes_it(
    pipeline: Pipeline, first_run: RunOutcome
):
    mismatches = {}
    for order_id, order in pipeline.orders.rows.items():
        sent = first_run.events_by_id[str(order_id)][0]["event"]["user_data"]
        sent = {key: _single_hash(value) for key, value in sent.items()}
        expected = expected_user_data(order)
        if sent != expected:
            mismatches[order_id] = {
                key: (sent.get(key), expected.get(key))
                for key in sent.keys() | expected.keys()
                if sent.get(key) != expected.get(key)
            }
    assert not mismatches, f"{len(mismatches)} events differ, e.g. {list(mismatches.items())[:3]}"


def test_full_load_maps_the_order_columns(pipeline: Pipeline, first_run: RunOutcome):
    mismatches = []
    for order_id, order in pipeline.orders.rows.items():
        event = first_run.events_by_id[str(order_id)][0]["event"]
        custom_data = event.get("custom_data", {})
        observed = (
            event["event_name"],
            event["action_source"],
            event["event_time"],
            event["event_source_url"],
            custom_data.get("value"),
            custom_data.get("currency"),
            str(custom_data.get("order_id")),
        )
        expected = (
            "Purchase",
            "website",
            int(order["created_at"].timestamp()),
            order["page_url"],
            float(order["total"]),
            order["currency"],
            str(order_id),
        )
        if observed != expected:
            mismatches.append((order_id, observed, expected))
    assert not mismatches, f"{len(mismatches)} events differ, e.g. {mismatches[:3]}"


def test_full_load_sends_every_event_as_a_test_event_to_the_dev_pixel(first_run: RunOutcome):
    params = [
        accepted["params"] for events in first_run.events_by_id.values() for accepted in events
    ]
    assert {(p["test_event_code"], p["pixel_id"]) for p in params} == {(TEST_EVENT_CODE, PIXEL_ID)}


def test_full_load_dead_letters_nothing(pipeline: Pipeline, first_run: RunOutcome):
    dead_letters = (
        pipeline.dead_letter_path.read_text().splitlines()
        if pipeline.dead_letter_path.exists()
        else []
    )
    assert dead_letters == []


def test_full_load_state_holds_the_latest_updated_at(pipeline: Pipeline, first_run: RunOutcome):
    assert _bookmark(first_run.state) == pipeline.orders.max_updated_at()


# --- run 2: incremental ----------------------------------------------------------------------


def test_incremental_run_sends_only_inserted_and_updated_rows(incremental_run: IncrementalRun):
    # tap-postgres reads `updated_at >= bookmark`, so the row(s) at the old bookmark come
    # again; they keep their event_id, so Meta deduplicates them.
    expected_ids = (
        set(UPDATED_ORDER_IDS)
        | set(incremental_run.inserted_ids)
        | incremental_run.previous_bookmark_ids
    )
    events_by_id = incremental_run.outcome.events_by_id
    assert set(events_by_id) == {str(order_id) for order_id in expected_ids}
    assert all(len(events) == 1 for events in events_by_id.values())


def test_incremental_run_sends_the_updated_values(
    pipeline: Pipeline, incremental_run: IncrementalRun
):
    for order_id in UPDATED_ORDER_IDS:
        event = incremental_run.outcome.events_by_id[str(order_id)][0]["event"]
        assert _single_hash(event["user_data"]["em"]) == _sha256(f"changed.{order_id}@example.net")
        assert event["custom_data"]["value"] == pytest.approx(99.99)


def test_incremental_run_advances_the_bookmark(pipeline: Pipeline, incremental_run: IncrementalRun):
    assert _bookmark(incremental_run.outcome.state) == pipeline.orders.max_updated_at()


# --- run 3: the sandbox rejects the access token -------------------------------------------


def test_rejected_access_token_fails_the_run(auth_rejected_run: FailedRun):
    assert auth_rejected_run.outcome.result.returncode != 0
    assert auth_rejected_run.outcome.events_by_id == {}


def test_rejected_access_token_leaves_the_state_unchanged(auth_rejected_run: FailedRun):
    assert auth_rejected_run.outcome.state == auth_rejected_run.state_before


def test_rejected_access_token_is_explained_without_the_token(auth_rejected_run: FailedRun):
    log = auth_rejected_run.outcome.result.stderr
    assert "public-orders" in log and "code=190" in log
    assert REFUSED_TOKEN not in log


# --- run 4: settings from the environment that are not what their setting takes --------------


def test_badly_typed_settings_in_the_environment_stop_the_run_at_start_by_name(
    pipeline: Pipeline, auth_rejected_run: FailedRun
) -> None:
    # The rows the refused run left unsent are still waiting: nothing may go out now either.
    # DRY_RUN=ture must not send for real, as `kind: boolean` made Meltano read it as false.
    outcome = pipeline.run(
        {
            "TARGET_META_CAPI_DRY_RUN": "ture",
            "TARGET_META_CAPI_BATCH_SIZE": "abc",
            "TARGET_META_CAPI_HASH_EXTERNAL_ID": "2",
        }
    )
    assert outcome.result.returncode != 0
    assert outcome.events_by_id == {}
    assert outcome.state == auth_rejected_run.state_before
    log = outcome.result.stderr
    for setting in ("dry_run", "batch_size", "hash_external_id"):
        assert f"in config['{setting}']" in log, outcome.result.tail()
    assert "Traceback" not in log


# --- run 5: the table changed by ALTER TABLE since the last run -----------------------------

RENAMED_MAPPED_COLUMN = ("city", "town")  # meltano.yml maps user_data.ct to city
ROWS_INSERTED_BEFORE_ALTER_TABLE = 3


@dataclass
class AlteredTableRun:
    outcome: RunOutcome
    expected_ids: set[int]


@pytest.fixture(scope="module")
def altered_table_run(pipeline: Pipeline, auth_rejected_run: FailedRun) -> AlteredTableRun:
    bookmark = _bookmark(auth_rejected_run.state_before)
    pipeline.orders.insert_recent(ROWS_INSERTED_BEFORE_ALTER_TABLE)
    old, new = RENAMED_MAPPED_COLUMN
    pipeline.orders.postgres.psql(f"ALTER TABLE public.orders RENAME COLUMN {old} TO {new}")
    expected_ids = {
        order_id for order_id, row in pipeline.orders.rows.items() if row["updated_at"] >= bookmark
    }
    return AlteredTableRun(pipeline.run(), expected_ids)


def test_a_column_renamed_since_the_last_run_is_seen_by_the_next_one(
    altered_table_run: AlteredTableRun,
) -> None:
    # Meltano reuses an earlier run's catalog unless told not to (use_cached_catalog: false):
    # the tap would then go on declaring `city`, and the mapping would lose it in silence.
    result = altered_table_run.outcome.result
    assert result.returncode == 0, result.tail()
    assert (
        f"Stream {STREAM!r}: `streams` maps columns its schema does not have: city" in result.stderr
    )


def test_rows_written_before_an_alter_table_arrive_in_the_run_after_it(
    altered_table_run: AlteredTableRun,
) -> None:
    events_by_id = altered_table_run.outcome.events_by_id
    assert set(events_by_id) == {str(order_id) for order_id in altered_table_run.expected_ids}
    assert not any("ct" in events[0]["event"]["user_data"] for events in events_by_id.values())


# --- 6. the tap writing BATCH messages (batch_config) ---------------------------------------

ROWS_INSERTED_FOR_BATCH_RUN = 450  # past a stream's first 200 records: the record workers' too
TAP_BATCH_SIZE = 200  # records per file


@dataclass
class BatchRun:
    outcome: RunOutcome
    expected_ids: set[int]
    batch_files: list[Path]


@pytest.fixture(scope="module")
def batch_run(
    pipeline: Pipeline, altered_table_run: AlteredTableRun, tmp_path_factory: pytest.TempPathFactory
) -> BatchRun:
    bookmark = _bookmark(altered_table_run.outcome.state)
    old, new = RENAMED_MAPPED_COLUMN  # back as the table's rows (and meltano.yml) have it
    pipeline.orders.postgres.psql(f"ALTER TABLE public.orders RENAME COLUMN {new} TO {old}")
    pipeline.orders.insert_recent(ROWS_INSERTED_FOR_BATCH_RUN)
    expected_ids = {
        order_id for order_id, row in pipeline.orders.rows.items() if row["updated_at"] >= bookmark
    }
    storage = tmp_path_factory.mktemp("batches")
    batch_config = {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": storage.as_uri()},
        "batch_size": TAP_BATCH_SIZE,
    }
    outcome = pipeline.run({"TAP_POSTGRES_BATCH_CONFIG": json.dumps(batch_config)})
    return BatchRun(outcome, expected_ids, sorted(storage.iterdir()))


def test_rows_a_tap_sends_in_batch_files_arrive_exactly_once_and_the_state_is_written(
    pipeline: Pipeline, batch_run: BatchRun
) -> None:
    result = batch_run.outcome.result
    assert result.returncode == 0, result.tail()
    assert len(batch_run.batch_files) >= 2  # the tap wrote BATCH messages; its files are kept
    events_by_id = batch_run.outcome.events_by_id
    assert set(events_by_id) == {str(order_id) for order_id in batch_run.expected_ids}
    assert all(len(events) == 1 for events in events_by_id.values())
    assert _bookmark(batch_run.outcome.state) == pipeline.orders.max_updated_at()
