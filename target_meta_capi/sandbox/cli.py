"""``target-meta-capi-sandbox``: run the sandbox, or report what it received.

target-meta-capi-sandbox [serve] --port 8787 [--throttle-rate 0.1 ...]
target-meta-capi-sandbox report --url http://127.0.0.1:8787
target-meta-capi-sandbox report --jsonl events.jsonl | --sqlite events.db
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import signal
import sqlite3
import sys
import threading
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from target_meta_capi.capi._words import counted
from target_meta_capi.capi.privacy import is_loopback_host, redact_received_event, shown_url
from target_meta_capi.capi.rules import RULES
from target_meta_capi.sandbox.faults import GraphErrorFault
from target_meta_capi.sandbox.graph_errors import (
    REJECTED_EVENT_SUBCODE,
    THROTTLE_SUBCODE,
    UNKNOWN_OBJECT_SUBCODE,
)
from target_meta_capi.sandbox.handler import is_whole_number
from target_meta_capi.sandbox.server import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_PIXEL_ID,
    DEFAULT_PORT,
    SandboxConfig,
    SandboxServer,
)
from target_meta_capi.sandbox.store import NO_TEST_EVENT_CODE, RecordingFileError

DEFAULT_MAX_EVENTS_IN_MEMORY = 100_000
#: what the report calls each subcode the sandbox answers with: why it rejected requests
SUBCODE_REASONS = {
    **{str(spec.subcode): rule for rule, spec in RULES.items()},
    str(REJECTED_EVENT_SUBCODE): "reject_event_id",
    str(THROTTLE_SUBCODE): "throttle",
    str(UNKNOWN_OBJECT_SUBCODE): "unknown_pixel_id",
}
#: the report's exit status when its reader stopped early, as the shell reports a SIGPIPE
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def _number(text: str) -> float:
    # argparse would otherwise say "invalid _rate value", naming this module's function
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text}") from None


def _non_empty(text: str) -> str:
    # as `--url "$URL"` gives it with the variable unset
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _rate(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is a share between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = _number(text)
    # float() also reads "inf" and "nan": no wait can last either
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    if not is_whole_number(text):
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    try:
        return int(text)
    except ValueError:  # over 4300 digits
        raise argparse.ArgumentTypeError(
            f"must be a whole number >= 0 of at most 4300 digits, got {len(text)} digits"
        ) from None


def _memory_bound(text: str) -> int:
    value = _non_negative_int(text)
    if value > sys.maxsize:  # a deque's maxlen is a C ssize_t
        raise argparse.ArgumentTypeError(f"must be at most {sys.maxsize}, got {text}")
    return value


def _secret_from_environment(name: str) -> str:
    # the secret itself never enters the error: only the variable's name
    token = os.environ.get(name, "").strip()
    if not token:
        raise argparse.ArgumentTypeError(f"the environment variable {name} is not set or empty")
    return token


def _secret_from_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            token = file.read().strip()  # as `echo TOKEN > file` leaves it: with a newline
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise argparse.ArgumentTypeError(f"cannot read {path} ({reason})") from None
    if not token:
        raise argparse.ArgumentTypeError(f"{path} is empty")
    return token


def _port(text: str) -> int:
    if not is_whole_number(text) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 0 to 65535, got {text}")
    return int(text)


def _percent(text: str) -> int:
    value = _non_negative_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"a percentage is at most 100, got {text}")
    return value


#: what --graph-error takes: the message last, so that it may hold colons
GRAPH_ERROR_SPEC = "RATE:STATUS:CODE[:SUBCODE[:transient[:MESSAGE]]]"


def _graph_error(text: str) -> GraphErrorFault:
    """``0.5:400:613::transient`` -> half of the requests answered 400, code 613, transient."""
    parts = text.split(":", 5)
    given = len(parts)
    parts += [""] * (6 - given)
    rate, status, code, subcode, transient, message = parts
    if given < 3 or not all(map(is_whole_number, (status, code))):
        raise argparse.ArgumentTypeError(f"must be {GRAPH_ERROR_SPEC}, got {text}")
    if subcode and not is_whole_number(subcode):
        raise argparse.ArgumentTypeError(f"a subcode is a whole number >= 0, got {subcode}")
    if transient not in ("", "transient"):
        raise argparse.ArgumentTypeError(f"the fifth part is 'transient' or empty, got {transient}")
    try:
        return GraphErrorFault(
            rate=_rate(rate),
            http_status=int(status),
            code=int(code),
            subcode=int(subcode) if subcode else None,
            is_transient=bool(transient),
            message=message or None,
        )
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="target-meta-capi-sandbox",
        description="A local Meta Conversions API endpoint: validates events like Graph, "
        "records them, injects seeded faults. Use its URL as the target's graph_url. "
        "See also: target-meta-capi-sandbox report --help",
    )
    parser.add_argument(
        "--host", type=_non_empty, default="127.0.0.1", help="interface to listen on"
    )
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument(
        "--pixel-id",
        type=_non_empty,
        action="append",
        dest="pixel_ids",
        metavar="ID",
        help=f"accepted pixel id (repeatable; default {DEFAULT_PIXEL_ID})",
    )
    parser.add_argument(
        "--access-token",
        type=_non_empty,
        action="append",
        dest="access_tokens",
        metavar="TOKEN",
        help=f"accepted access token (repeatable; default {DEFAULT_ACCESS_TOKEN}); a real "
        "one shows in the process list (ps): give it with --access-token-env or "
        "--access-token-file instead",
    )
    parser.add_argument(
        "--access-token-env",
        type=_secret_from_environment,
        action="append",
        dest="access_tokens",
        metavar="VARIABLE",
        help="accept the access token in this environment variable, e.g. "
        "TARGET_META_CAPI_ACCESS_TOKEN as the target reads it (repeatable)",
    )
    parser.add_argument(
        "--access-token-file",
        type=_secret_from_file,
        action="append",
        dest="access_tokens",
        metavar="PATH",
        help="accept the access token this file holds (surrounding whitespace ignored; repeatable)",
    )
    parser.add_argument(
        "--app-secret",
        type=_non_empty,
        help="require appsecret_proof = HMAC-SHA256(app secret, token); a real one shows in "
        "the process list (ps): give it with --app-secret-env or --app-secret-file instead",
    )
    parser.add_argument(
        "--app-secret-env",
        type=_secret_from_environment,
        dest="app_secret",
        metavar="VARIABLE",
        help="the app secret in this environment variable, e.g. TARGET_META_CAPI_APP_SECRET",
    )
    parser.add_argument(
        "--app-secret-file",
        type=_secret_from_file,
        dest="app_secret",
        metavar="PATH",
        help="the app secret this file holds (surrounding whitespace ignored)",
    )
    faults = parser.add_argument_group(
        "fault injection (rates are shares of requests and add up to at most 1)"
    )
    faults.add_argument(
        "--latency-ms",
        type=_non_negative,
        default=0.0,
        help="mean added latency; each request gets the mean +/- 20%% (uniform)",
    )
    faults.add_argument(
        "--transient-error-rate",
        type=_rate,
        default=0.0,
        help="answer HTTP 500, code 2, is_transient (nothing stored)",
    )
    faults.add_argument(
        "--throttle-rate",
        type=_rate,
        default=0.0,
        help=f"answer HTTP 400, code 17, subcode {THROTTLE_SUBCODE} (nothing stored)",
    )
    faults.add_argument(
        "--cut-after-accept-rate",
        type=_rate,
        default=0.0,
        help="store the events, then close the connection without an answer",
    )
    faults.add_argument(
        "--slow-response-rate",
        type=_rate,
        default=0.0,
        help="store the events, then answer after --slow-response-seconds",
    )
    faults.add_argument(
        "--slow-response-seconds",
        type=_non_negative,
        default=5.0,
        help="how long a slow response waits (default 5): pick it longer than the client's timeout",
    )
    faults.add_argument(
        "--retry-after",
        type=_non_negative_int,
        default=None,
        metavar="SECONDS",
        help="add a Retry-After header to the throttle, transient and HTML 502 answers, "
        "as a proxy in front of Graph may (Graph itself sends none)",
    )
    faults.add_argument(
        "--usage-percent",
        type=_percent,
        default=None,
        metavar="P",
        help="answer accepted requests with X-Business-Use-Case-Usage reporting P%% of the "
        "business's rate limit used, as Graph does",
    )
    faults.add_argument(
        "--regain-access-minutes",
        type=_non_negative_int,
        default=None,
        metavar="MINUTES",
        help="throttle answers report the business at its rate limit with this "
        "estimated_time_to_regain_access, as Graph's do (X-Business-Use-Case-Usage)",
    )
    faults.add_argument(
        "--html-502-rate",
        type=_rate,
        default=0.0,
        help="answer HTTP 502 with an HTML page, like a proxy (nothing stored)",
    )
    faults.add_argument(
        "--reject-event-id",
        type=_non_empty,
        dest="reject_event_ids",
        action="append",
        metavar="ID",
        help="refuse events with this event_id as Graph refuses an invalid event (code 100, "
        f"subcode {REJECTED_EVENT_SUBCODE}), to try out a sender's dead letters (repeatable)",
    )
    faults.add_argument(
        "--graph-error",
        type=_graph_error,
        dest="graph_errors",
        action="append",
        metavar=GRAPH_ERROR_SPEC,
        help="answer a share RATE of requests with this Graph error (nothing stored), e.g. "
        "1:400:190:463 (expired token) or 0.5:400:613::transient (throttled); repeatable",
    )
    faults.add_argument("--seed", type=int, default=0, help="seed of the fault sequence")
    recording = parser.add_argument_group("recording")
    recording.add_argument(
        "--record-jsonl", type=_non_empty, metavar="PATH", help="append accepted events here"
    )
    recording.add_argument(
        "--record-sqlite", type=_non_empty, metavar="PATH", help="insert accepted events here"
    )
    recording.add_argument(
        "--max-events-in-memory",
        type=_memory_bound,
        default=DEFAULT_MAX_EVENTS_IN_MEMORY,
        help="how many recent events GET /__events can return (default %(default)s)",
    )
    parser.add_argument(
        "--answer-message",
        type=_non_empty,
        action="append",
        dest="answer_messages",
        metavar="TEXT",
        help="add TEXT to the messages of every accepted request's answer, as Graph's may warn "
        "of a deprecated parameter (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="no log line per request")
    return parser


def _report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="target-meta-capi-sandbox report",
        description="Summarize what a sandbox accepted: counts per event_name, pixel and "
        "test_event_code, and one sample event as Meta would receive it.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--url", type=_non_empty, help="a running sandbox, e.g. http://127.0.0.1:8787"
    )
    source.add_argument(
        "--jsonl", type=_non_empty, metavar="PATH", help="a file written by --record-jsonl"
    )
    source.add_argument(
        "--sqlite", type=_non_empty, metavar="PATH", help="a file written by --record-sqlite"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["report"]:
        return report(args[1:])
    if args[:1] == ["serve"]:
        args = args[1:]
    return serve(args)


def serve(argv: Sequence[str]) -> int:
    args = _serve_parser().parse_args(argv)
    try:
        config = SandboxConfig(
            host=args.host,
            port=args.port,
            pixel_ids=tuple(args.pixel_ids or (DEFAULT_PIXEL_ID,)),
            access_tokens=tuple(args.access_tokens or (DEFAULT_ACCESS_TOKEN,)),
            app_secret=args.app_secret,
            latency_ms=args.latency_ms,
            transient_error_rate=args.transient_error_rate,
            throttle_rate=args.throttle_rate,
            cut_after_accept_rate=args.cut_after_accept_rate,
            slow_response_rate=args.slow_response_rate,
            slow_response_seconds=args.slow_response_seconds,
            retry_after_seconds=args.retry_after,
            regain_access_minutes=args.regain_access_minutes,
            usage_percent=args.usage_percent,
            html_502_rate=args.html_502_rate,
            reject_event_ids=tuple(args.reject_event_ids or ()),
            graph_errors=tuple(args.graph_errors or ()),
            answer_messages=tuple(args.answer_messages or ()),
            seed=args.seed,
            record_jsonl=args.record_jsonl,
            record_sqlite=args.record_sqlite,
            max_events_in_memory=args.max_events_in_memory,
            log_requests=not args.quiet,
        )
    except ValueError as error:
        print(f"target-meta-capi-sandbox: {error}", file=sys.stderr)
        return 2
    try:
        server = SandboxServer(config).start()
    except RecordingFileError as error:
        option = "--" + error.setting.replace("_", "-")
        print(
            f"target-meta-capi-sandbox: error: argument {option}: cannot open {error.path} "
            f"({error.reason})",
            file=sys.stderr,
        )
        return 2
    except OSError as error:
        # a port in use, or one below 1024 without the privilege, is the port's fault; an
        # unknown or foreign address is the host's
        port_fault = error.errno in (errno.EADDRINUSE, errno.EACCES)
        remedy = "pick another --port" if port_fault else "check --host"
        print(
            f"target-meta-capi-sandbox: cannot listen on {args.host}:{args.port} ({error}); "
            + remedy,
            file=sys.stderr,
        )
        return 2

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(
        f"target-meta-capi sandbox listening on {server.url} "
        f"(pixel ids: {', '.join(config.pixel_ids)}; use it as graph_url)",
        file=sys.stderr,
        flush=True,
    )
    if not is_loopback_host(args.host):
        print(
            f"target-meta-capi sandbox: warning: --host {args.host} is reachable from other "
            "machines, and anyone there can read the events received (IP addresses and user "
            "agents as sent) at /__events: it has no authentication",
            file=sys.stderr,
            flush=True,
        )
    while not stop_requested.wait(0.5):
        pass
    stats = server.stats()
    server.stop()
    print(
        "target-meta-capi sandbox stopped: "
        f"{counted(stats['accepted_requests'], 'request')} accepted, "
        f"{stats['rejected_requests']} rejected, "
        f"{counted(stats['events_received'], 'event')} received",
        file=sys.stderr,
        flush=True,
    )
    return 0


# report -------------------------------------------------------------------------------------
#: the counters of GET /__stats the report reads
_REPORTED_STATS = frozenset(
    (
        "requests",
        "accepted_requests",
        "rejected_requests",
        "rejected_by_code",
        "rejected_by_subcode",
        "max_in_flight",
        "events_received",
        "duplicate_events",
        "faults",
        "events_by_event_name",
        "events_by_pixel_id",
        "events_by_test_event_code",
    )
)


def _fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        try:
            return json.load(response)
        except ValueError:
            raise ValueError(f"{shown_url(url)} answered no JSON: is it a sandbox?") from None


def _running_sandbox(base: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Its counters and its latest event; ValueError if what answers is no sandbox (of this
    version): the report names the option, not a KeyError's traceback."""
    stats = _fetch_json(f"{base}/__stats")
    if not isinstance(stats, dict) or not stats.keys() >= _REPORTED_STATS:
        raise ValueError(
            f"{shown_url(base)}/__stats answered no sandbox's counters: is it a sandbox?"
        )
    last_records = _fetch_json(f"{base}/__events?limit=1")
    if not isinstance(last_records, list):
        raise ValueError(f"{shown_url(base)}/__events answered no list of events: is it a sandbox?")
    return stats, [
        _checked_record(record, f"{shown_url(base)}/__events") for record in last_records
    ]


def _checked_record(record: Any, where: str) -> dict[str, Any]:
    """A record as the sandbox writes it, or ValueError saying where it is not one."""
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("event"), dict)
        or not isinstance(record.get("params"), (dict, type(None)))
    ):
        raise ValueError(f"{where} is not a sandbox record (an object with an event object)")
    return record


def _records_from_jsonl(path: str) -> Iterable[dict[str, Any]]:
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError as error:
                    raise ValueError(f"{path} line {number} is not JSON ({error})") from None
                yield _checked_record(record, f"{path} line {number}")


def _records_from_sqlite(path: str) -> Iterable[dict[str, Any]]:
    # quoted: in a URI, a "#" or "?" of the name would end the path, and "%41" would be "A"
    connection = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT id, pixel_id, api_version, test_event_code, event_json FROM events ORDER BY id"
        )
        for row_id, pixel_id, api_version, test_event_code, event_json in rows:
            record = {
                "params": {
                    "pixel_id": pixel_id,
                    "api_version": api_version,
                    "test_event_code": test_event_code,
                },
                "event": json.loads(event_json),
            }
            yield _checked_record(record, f"{path} row {row_id}")
    finally:
        connection.close()


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    by_event_name: Counter[str] = Counter()
    by_pixel: Counter[str] = Counter()
    by_test_event_code: Counter[str] = Counter()
    total = 0
    sample: dict[str, Any] | None = None
    for record in records:
        event = record.get("event") or {}
        params = record.get("params") or {}
        total += 1
        by_event_name[str(event.get("event_name"))] += 1
        by_pixel[str(params.get("pixel_id"))] += 1
        # str: a hand-edited file may hold any JSON there, as for the pixel id
        by_test_event_code[str(params.get("test_event_code") or NO_TEST_EVENT_CODE)] += 1
        if sample is None:
            sample = redact_received_event(event)
    return {
        "events": total,
        "by_event_name": dict(by_event_name.most_common()),
        "by_pixel_id": dict(by_pixel.most_common()),
        "by_test_event_code": dict(by_test_event_code.most_common()),
        "sample_event": sample,
    }


def _nonzero_counts(counts: dict[str, int]) -> str:
    """``{"100": 2, "17": 0}`` -> ``100: 2``; ``none`` when nothing counted."""
    return ", ".join(f"{name}: {count}" for name, count in counts.items() if count) or "none"


def _summary_from_stats(
    stats: dict[str, Any], last_records: list[dict[str, Any]]
) -> dict[str, Any]:
    """A running sandbox counts every event it received, also those no longer in memory."""
    return {
        "events": stats["events_received"],
        "by_event_name": stats["events_by_event_name"],
        "by_pixel_id": stats["events_by_pixel_id"],
        "by_test_event_code": stats["events_by_test_event_code"],
        "sample_event": redact_received_event(last_records[-1]["event"]) if last_records else None,
    }


def _rejection_reasons(by_subcode: dict[str, int]) -> str:
    """``{"2804003": 2}`` -> ``event_time_too_old (2804003): 2``; ``none`` when none."""
    reasons = (
        f"{SUBCODE_REASONS[subcode]} ({subcode}): {count}"
        if subcode in SUBCODE_REASONS
        else f"subcode {subcode}: {count}"
        for subcode, count in by_subcode.items()
        if count
    )
    return ", ".join(reasons) or "none"


def _print_counts(title: str, counts: dict[str, int]) -> None:
    print(f"{title}:")
    width = max([24, *(len(name) for name in counts)])
    for name, count in counts.items():
        print(f"  {name:<{width}}  {count:>8}")


def report(argv: Sequence[str]) -> int:
    args = _report_parser().parse_args(argv)
    stats: dict[str, Any] | None = None
    try:
        if args.url:
            base = args.url.rstrip("/")
            stats, last_records = _running_sandbox(base)
            summary = _summary_from_stats(stats, last_records)
            source = base
        elif args.jsonl:
            summary = summarize(_records_from_jsonl(args.jsonl))
            source = args.jsonl
        else:
            summary = summarize(_records_from_sqlite(args.sqlite))
            source = args.sqlite
    except (OSError, ValueError, sqlite3.Error) as error:
        option = "--url" if args.url else "--jsonl" if args.jsonl else "--sqlite"
        print(
            f"target-meta-capi-sandbox report: error: argument {option}: {error}", file=sys.stderr
        )
        return 2
    if stats is not None:
        summary["stats"] = stats
    try:
        _print_report(summary, stats, source, as_json=args.json)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (`report ... | head`): stop quietly, as tools stopped by
        # SIGPIPE do. Python flushes stdout again at exit; that flush must go nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    return 0


def _print_report(
    summary: dict[str, Any], stats: dict[str, Any] | None, source: str, *, as_json: bool
) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    print(f"Sandbox report: {source}")
    if stats is not None:
        # .get: a sandbox of an earlier version has no such counter
        incomplete = stats.get("incomplete_requests")
        cut_short = f", {incomplete} cut short by the client" if incomplete else ""
        print(
            f"requests: {stats['requests']} ({stats['accepted_requests']} accepted, "
            f"{stats['rejected_requests']} rejected{cut_short}), "
            f"rejected by code: {_nonzero_counts(stats['rejected_by_code'])}, "
            f"max in flight: {stats['max_in_flight']}"
        )
        print(f"rejected because: {_rejection_reasons(stats['rejected_by_subcode'])}")
        print(
            f"events received: {stats['events_received']} "
            f"(duplicates by event_id: {stats['duplicate_events']}), "
            f"faults injected: {_nonzero_counts(stats['faults'])}"
        )
    print(f"events: {summary['events']}")
    _print_counts("by event_name", summary["by_event_name"])
    _print_counts("by pixel_id", summary["by_pixel_id"])
    _print_counts("by test_event_code", summary["by_test_event_code"])
    if summary["sample_event"] is not None:
        print("sample event (as received; personal data other than SHA-256 digests redacted):")
        print(json.dumps(summary["sample_event"], indent=2))
