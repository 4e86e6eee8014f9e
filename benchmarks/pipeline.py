"""Pipeline benchmark: does target-meta-capi hold tap-postgres back?

One command (from the repository root):

    .venv/bin/python benchmarks/pipeline.py --rows 200000 --latency-ms 100

Issue 7's goal is that the target is never the slowest part of
`tap-postgres | target-meta-capi`. run.py measures the target on its own; this measures the
pipeline. It starts a private PostgreSQL server (as the end-to-end tests do), loads N of
run.py's orders into a typed `public.orders` table (26 columns), starts the sandbox with the
given latency, and times, each in a fresh process:
  (t) tap-postgres alone, into /dev/null: the pace of the source;
  (b) tap-postgres | the do-nothing singer-sdk target of run.py (benchmarks/noop_target.py);
  (p) tap-postgres | target-meta-capi, until every event was acknowledged (the sandbox must
      have received all N events);
  (m) `meltano run --full-refresh tap-postgres target-meta-capi` with the repository's
      meltano.yml, the same mapping and the same sandbox: Meltano relays every line itself.
      It needs Meltano (.venv-meltano, which `make test` installs, or --meltano); the plugins
      are installed into the work directory first.
The tap is meltanolabs-tap-postgres in its own venv, .venv-tap, which this script creates on
first use (or the executable given with --tap-postgres). p/t is what the target costs the
pipeline: 1.00 would mean the tap never waits for it; m/t adds what Meltano's relay costs. On
a machine with fewer cores than the programs can use together, they also share the CPU, so a
ratio above 1 there says how much CPU the others take from the tap, not only who is slower.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from generate import DEFAULT_CUSTOMERS, SCHEMA, orders
from run import (
    ORDERS_MAPPING,
    ROOT,
    Measurement,
    SandboxProcess,
    argument_parser,
    compile_bytecode,
    in_workdir,
    machine_description,
    measure,
    measure_in_rounds,
    measure_sending,
    measured,
    noop_command,
    print_measurement,
    sandbox,
    target_command,
)

sys.path.insert(0, str(ROOT))
from tools.private_postgres import PostgresServer, running_postgres

TAP_VENV = ROOT / ".venv-tap"
MELTANO = ROOT / ".venv-meltano" / "bin" / "meltano"
TAP_POSTGRES_REQUIREMENT = "meltanolabs-tap-postgres"
LOAD_CHUNK_ROWS = 20_000
# singer-sdk taps log how many records they wrote as METRIC counters on stderr
RECORD_COUNT = re.compile(r'"metric": ?"record_count", ?"value": ?(\d+)')
# the target's run summary line saying who set the pace (summary/report.py)
PACE_LINE = re.compile(r"Pace: .*")

# Column types as a shop's orders table has them; the order follows generate.SCHEMA.
COLUMN_TYPES = {
    "order_id": "bigint PRIMARY KEY",
    "date_of_birth": "date",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
    "total": "numeric(10, 2)",
    "num_items": "integer",
    "product_ids": "text[]",
}
COLUMNS = tuple(SCHEMA["properties"])


def ensure_tap_postgres(executable: Path | None) -> Path:
    """tap-postgres in its own venv: its pins (SQLAlchemy, psycopg2) stay out of the project's."""
    if executable is not None:
        return executable
    tap = TAP_VENV / "bin" / "tap-postgres"
    if not tap.exists():
        print(f"creating {TAP_VENV.name} with {TAP_POSTGRES_REQUIREMENT} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(TAP_VENV)], check=True)
        subprocess.run(
            [
                str(TAP_VENV / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                TAP_POSTGRES_REQUIREMENT,
            ],
            check=True,
        )
    return tap


def _sql_value(column: str, value: object) -> object:
    if column != "product_ids" or not isinstance(value, list):
        return value
    return "{" + ",".join(str(item) for item in value) + "}"


def _chunks(rows: Iterable[dict], size: int) -> Iterator[list[list[object]]]:
    chunk: list[list[object]] = []
    for row in rows:
        chunk.append([_sql_value(column, row[column]) for column in COLUMNS])
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_orders(server: PostgresServer, rows: int, *, customers: int, seed: int) -> None:
    """`rows` of run.py's orders in public.orders, typed as a shop stores them."""
    definitions = ", ".join(f"{column} {COLUMN_TYPES.get(column, 'text')}" for column in COLUMNS)
    server.psql(f"CREATE TABLE public.orders ({definitions})")
    for chunk in _chunks(orders(rows, customers=customers, seed=seed), LOAD_CHUNK_ROWS):
        server.copy_rows("public.orders", COLUMNS, chunk)
    server.psql(f"GRANT SELECT ON public.orders TO {server.user}")
    server.psql("ANALYZE public.orders")


def orders_catalog(tap: Path, config: Path) -> dict:
    """The tap's discovered catalog with public.orders and all its columns selected (a tap run
    without a catalog selects nothing)."""
    discovered = subprocess.run(
        [str(tap), "--config", str(config), "--discover"],
        capture_output=True,
        text=True,
        check=True,
    )
    catalog = json.loads(discovered.stdout)
    for stream in catalog["streams"]:
        if stream["tap_stream_id"] == "public-orders":
            for entry in stream["metadata"]:
                entry["metadata"]["selected"] = True
    return catalog


def _pipeline(*commands: list[str]) -> list[str]:
    """One command running `commands` as a shell pipeline that fails if any part fails."""
    return ["bash", "-c", "set -o pipefail; " + " | ".join(map(shlex.join, commands))]


def run_pipeline(args: argparse.Namespace, workdir: Path) -> int:
    rows = args.rows
    print(f"machine: {machine_description()}")
    compile_bytecode()
    tap = ensure_tap_postgres(args.tap_postgres)
    with running_postgres() as server:
        started = time.perf_counter()
        load_orders(server, rows, customers=args.customers, seed=args.seed)
        print(
            f"input: {rows:,} orders of {args.customers:,} customers in public.orders "
            f"({len(COLUMNS)} columns, loaded in {time.perf_counter() - started:.1f} s); "
            f"sandbox latency {args.latency_ms:g} ms; best of {args.repeat} run(s)\n",
            flush=True,
        )
        tap_config = workdir / "tap.config.json"
        tap_config.write_text(
            json.dumps(
                {
                    "host": server.host,
                    "port": server.port,
                    "user": server.user,
                    "password": server.password,
                    "database": server.database,
                    "filter_schemas": ["public"],
                }
            )
        )
        catalog = workdir / "tap.catalog.json"
        catalog.write_text(json.dumps(orders_catalog(tap, tap_config)))
        read = [str(tap), "--config", str(tap_config), "--catalog", str(catalog)]
        empty = workdir / "empty.stdin"
        empty.write_bytes(b"")
        with sandbox(args.latency_ms, workdir, None) as box:
            measures: dict[str, Callable[[], Measurement]] = {
                "t": lambda: measure_tap_alone(read, rows, empty, workdir),
                "b": lambda: measure_noop_pipeline(read, rows, empty, workdir),
                "p": lambda: measure_target_pipeline(read, rows, empty, box, workdir),
            }
            if args.meltano.exists():
                env = meltano_environment(server, box, workdir)
                install_plugins(args.meltano, env, workdir)
                measures["m"] = lambda: measure_meltano_run(
                    args.meltano, env, rows, empty, box, workdir
                )
            best = measure_in_rounds(args.repeat, measures)
            runs = list(best.values())
            for run in runs:
                print_measurement(run)
            if "m" not in best:
                print(f"(m) meltano run: skipped, no Meltano at {args.meltano}", flush=True)
    print_pipeline_costs(*runs)
    return 0 if not any(run.problem for run in runs) else 1


def measure_tap_alone(read: list[str], rows: int, empty: Path, workdir: Path) -> Measurement:
    # Into /dev/null: a reader at the other end of a pipe (even `wc -l`) wakes up for each line
    # a singer-sdk tap writes and flushes, and on two cores that slows the tap down.
    result = measure(["bash", "-c", shlex.join(read) + " > /dev/null"], empty, workdir, "tap")
    tap_alone = measured("(t) tap-postgres alone (> /dev/null)", rows, result, workdir, "tap")
    emitted = sum(map(int, RECORD_COUNT.findall((workdir / "tap.stderr").read_text())))
    if tap_alone.problem is None and emitted != rows:
        tap_alone.problem = f"the tap counted {emitted} records for {rows} rows"
    return tap_alone


def measure_noop_pipeline(read: list[str], rows: int, empty: Path, workdir: Path) -> Measurement:
    result = measure(_pipeline(read, noop_command(workdir)), empty, workdir, "noop-pipeline")
    label = "(b) tap-postgres | do-nothing singer-sdk target"
    return measured(label, rows, result, workdir, "noop-pipeline")


def measure_target_pipeline(
    read: list[str], rows: int, empty: Path, box: SandboxProcess, workdir: Path
) -> Measurement:
    measurement = measure_sending(
        "(p) tap-postgres | target-meta-capi",
        _pipeline(read, target_command(box, workdir, "target-pipeline")),
        empty,
        rows,
        box,
        workdir,
        "target-pipeline",
    )
    return with_target_pace(measurement, workdir / "target-pipeline.stderr")


def meltano_environment(
    server: PostgresServer, box: SandboxProcess, workdir: Path
) -> dict[str, str]:
    """meltano.yml's `dev` environment pointed at this run's database, sandbox and mapping,
    with Meltano's own files in the work directory; settings from the caller's shell left out."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TAP_POSTGRES_", "TARGET_META_CAPI_", "MELTANO_"))
    }
    return {
        **inherited,
        "MELTANO_PROJECT_ROOT": str(ROOT),
        "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
        "MELTANO_SYS_DIR_ROOT": str(workdir / "meltano-sys"),
        "MELTANO_ENVIRONMENT": "dev",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TAP_POSTGRES_HOST": server.host,
        "TAP_POSTGRES_PORT": str(server.port),
        "TAP_POSTGRES_USER": server.user,
        "TAP_POSTGRES_PASSWORD": server.password,
        "TAP_POSTGRES_DATABASE": server.database,
        "TARGET_META_CAPI_GRAPH_URL": box.url,
        "TARGET_META_CAPI_STREAMS": json.dumps(ORDERS_MAPPING),
        "TARGET_META_CAPI_DEAD_LETTER_PATH": str(workdir / "meltano-dead-letters.jsonl"),
    }


def install_plugins(meltano: Path, env: dict[str, str], workdir: Path) -> None:
    installed = subprocess.run(
        [str(meltano), "install"], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    (workdir / "meltano-install.log").write_text(installed.stdout + installed.stderr)
    if installed.returncode != 0:
        raise SystemExit(f"meltano install failed:\n{installed.stderr[-3000:]}")


def measure_meltano_run(
    meltano: Path, env: dict[str, str], rows: int, empty: Path, box: SandboxProcess, workdir: Path
) -> Measurement:
    measurement = measure_sending(
        "(m) meltano run tap-postgres target-meta-capi",
        [str(meltano), "run", "--full-refresh", "tap-postgres", "target-meta-capi"],
        empty,
        rows,
        box,
        workdir,
        "meltano-run",
        env,
    )
    return with_target_pace(measurement, workdir / "meltano-run.stderr")


def with_target_pace(measurement: Measurement, stderr: Path) -> Measurement:
    """The run with the target's own account of it: who set the pace (its summary's line),
    read now because the next repeat writes the same log."""
    found = PACE_LINE.search(stderr.read_text(errors="replace"))
    measurement.target_pace = found.group(0) if found else None
    return measurement


def print_pipeline_costs(tap_alone: Measurement, *pipelines: Measurement) -> None:
    print("\nwhat each target costs the pipeline (time / the tap's time alone; 1.00 = nothing):")
    for run in pipelines:
        print(f"  {run.label.split(' ')[0]}/t = {run.seconds / tap_alone.seconds:5.2f}")


def main() -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="N (default 200,000)")
    parser.add_argument(
        "--latency-ms", type=float, default=100.0, help="the sandbox's answer delay (default 100)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each, in rounds; the fastest counts"
    )
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    parser.add_argument("--seed", type=int, default=7, help="of the generated orders")
    parser.add_argument(
        "--tap-postgres", type=Path, help="a tap-postgres executable to use instead of .venv-tap"
    )
    parser.add_argument(
        "--meltano",
        # absolute: Meltano runs in its project's directory, where a relative path leads nowhere
        type=lambda text: Path(text).absolute(),
        default=MELTANO,
        help=f"the meltano executable for (m) (default {MELTANO.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep configs and logs here (default: a temp dir, removed)"
    )
    args = parser.parse_args()
    # Stopped with SIGTERM (a CI time limit, say), it must still stop the PostgreSQL server and
    # the sandbox it started: exiting this way runs their clean-up, Python's default does not.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return in_workdir(args.workdir, "capi-pipeline-", lambda workdir: run_pipeline(args, workdir))


if __name__ == "__main__":
    sys.exit(main())
