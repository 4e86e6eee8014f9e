"""The settings' JSON schema, shown by `--about`: their defaults, the limits of the numbers, and
which settings are secrets."""

from __future__ import annotations

from importlib import metadata

from singer_sdk import typing as th

from target_meta_capi.capi.request import (
    DEFAULT_API_VERSION,
    DEFAULT_GRAPH_URL,
    MAX_TIMEOUT_SECONDS,
)
from target_meta_capi.capi.rules import MAX_EVENTS_PER_REQUEST
from target_meta_capi.summary import DEFAULT_PROGRESS_INTERVAL

try:
    __version__ = metadata.version("target-meta-capi")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"

DEFAULT_PARTNER_AGENT = f"target-meta-capi/{__version__}"
DEFAULT_DEAD_LETTER_PATH = "dead_letters.jsonl"
DEFAULT_BATCH_SIZE = 1000
#: A partial batch costs one request; waiting 5 s gathers what a trickling tap sends meanwhile
#: (≤ 720 requests an hour per stream) and still gets events to Meta within seconds.
DEFAULT_MAX_BATCH_WAIT_SECONDS = 5.0
DEFAULT_CONCURRENT_REQUESTS = 8
DEFAULT_REQUEST_TIMEOUT = 60
DEFAULT_MAX_RETRIES = 5
DEFAULT_MAX_RETRY_SECONDS = 300
DEFAULT_SHUTDOWN_GRACE_SECONDS = 30
#: The most a timeout or interval setting may be: a wait beyond the platform's time_t (`inf`,
#: `1e300`) fails with OverflowError in the middle of a run, and a day is past any sensible one.
#: The client library's bound on a request's timeout, which request_timeout becomes.
LONGEST_WAIT_SECONDS = MAX_TIMEOUT_SECONDS
#: The most requests in flight: each is a thread and a pooled connection, which requests
#: sets up front (a billion hung the start), and Meta throttles long before this many.
MOST_CONCURRENT_REQUESTS = 256
#: The most record workers: each is a process of ~30 MB with its own pipes (thousands failed
#: mid-run with "Too many open files"), and past the CPUs they add nothing.
MOST_RECORD_WORKERS = 64
ON_INVALID_DEAD_LETTER = "dead_letter"
ON_INVALID_FAIL = "fail"


SETTINGS = th.PropertiesList(
    th.Property(
        "pixel_id",
        th.StringType,
        required=True,
        description="Meta pixel (dataset) ID the events are sent to.",
    ),
    th.Property(
        "access_token",
        th.StringType,
        secret=True,
        description=(
            "Conversions API access token (System User token with access to the pixel). "
            "Required unless dry_run is true. Sent in the request body, never logged."
        ),
    ),
    th.Property(
        "app_secret",
        th.StringType,
        secret=True,
        description=(
            "App secret. When set, every request carries appsecret_proof "
            "(HMAC-SHA256 of the access token), as apps requiring it demand."
        ),
    ),
    th.Property(
        "api_version",
        th.StringType,
        default=DEFAULT_API_VERSION,
        description="Graph API version, e.g. v24.0.",
    ),
    th.Property(
        "graph_url",
        th.StringType,
        default=DEFAULT_GRAPH_URL,
        description=(
            "Base URL of the Graph API (http or https). Point it at the local sandbox "
            "(e.g. http://127.0.0.1:8787) for tests and demos."
        ),
    ),
    th.Property(
        "test_event_code",
        th.StringType,
        description=(
            "Test event code from Events Manager; events then show under Test Events and "
            "do not count as real conversions."
        ),
    ),
    th.Property(
        "partner_agent",
        th.StringType,
        default=DEFAULT_PARTNER_AGENT,
        description="partner_agent parameter sent with every request.",
    ),
    th.Property("namespace_id", th.StringType, description="namespace_id parameter (optional)."),
    th.Property(
        "upload_tag",
        th.StringType,
        description="upload_tag parameter: a label for this upload (offline events).",
    ),
    th.Property(
        "upload_id", th.StringType, description="upload_id parameter (offline event uploads)."
    ),
    th.Property(
        "upload_source",
        th.StringType,
        description="upload_source parameter (offline event uploads).",
    ),
    th.Property(
        "batch_size",
        th.IntegerType(minimum=1, maximum=MAX_EVENTS_PER_REQUEST),
        default=DEFAULT_BATCH_SIZE,
        description=f"Events per request, 1 to {MAX_EVENTS_PER_REQUEST} (Meta's maximum).",
    ),
    th.Property(
        "max_batch_wait_seconds",
        th.NumberType(minimum=0),
        default=DEFAULT_MAX_BATCH_WAIT_SECONDS,
        description=(
            "Seconds a record may wait, unsent, in a batch that is not full: then every "
            "partial batch is sent, with or without a STATE, also while the tap is silent (a "
            "log-based tap, a slow query) and while records trickle in. Each partial batch "
            "costs one request; 0 sends them at every chance: each pause of the input, and "
            "between reads of it while it flows."
        ),
    ),
    th.Property(
        "concurrent_requests",
        th.IntegerType(minimum=1, maximum=MOST_CONCURRENT_REQUESTS),
        default=DEFAULT_CONCURRENT_REQUESTS,
        description=(
            f"Requests in flight at once, 1 to {MOST_CONCURRENT_REQUESTS} (a sliding window; "
            "halved while Meta throttles). Reading stops while the window is full, so memory "
            "stays flat."
        ),
    ),
    th.Property(
        "record_workers",
        th.IntegerType(minimum=0, maximum=MOST_RECORD_WORKERS),
        description=(
            "Processes that validate, map and hash records in parallel with reading and "
            f"sending, 0 to {MOST_RECORD_WORKERS}. Default on Linux: one per CPU (at most 8), "
            "none on a single CPU; elsewhere none. 0 does all the work in the target's own "
            "process. Each worker adds ~30 MB of memory. Workers are forked, so not on Windows."
        ),
    ),
    th.Property(
        "request_timeout",
        th.NumberType(exclusive_minimum=0, maximum=LONGEST_WAIT_SECONDS),
        default=DEFAULT_REQUEST_TIMEOUT,
        description="Seconds to wait for Meta's answer to one request before retrying it.",
    ),
    th.Property(
        "shutdown_grace_seconds",
        th.NumberType(minimum=0, maximum=LONGEST_WAIT_SECONDS),
        default=DEFAULT_SHUTDOWN_GRACE_SECONDS,
        description=(
            "After SIGTERM or Ctrl-C, or bad input that stops the run, how long requests "
            "in flight may take to be answered before they are abandoned (their state is "
            "then not written). Keep it below the "
            "time your orchestrator allows before it kills the process (Kubernetes' "
            "terminationGracePeriodSeconds is 30 by default)."
        ),
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0),
        default=DEFAULT_MAX_RETRIES,
        description=(
            "Retries of a request after transient errors, throttling or network failures "
            "(exponential backoff with jitter). Auth and invalid-event errors are not retried."
        ),
    ),
    th.Property(
        "max_retry_seconds",
        # inf let a proxy's Retry-After of 99999999999 be waited for: OverflowError (time_t)
        th.NumberType(minimum=0, maximum=LONGEST_WAIT_SECONDS),
        default=DEFAULT_MAX_RETRY_SECONDS,
        description=(
            "How long one request may keep retrying. A retry never comes sooner than Meta "
            "asks (Retry-After, or the estimated time to regain access of a throttled "
            "business); when that is beyond this limit the run stops at once, state unchanged, "
            f"and says how long to wait. Raise it (up to a day, {LONGEST_WAIT_SECONDS}) to let a "
            "long run wait out throttling."
        ),
    ),
    th.Property(
        "http_service_class",
        th.StringType,
        description=(
            "Custom HTTP service: dotted path 'package.module:ClassName' of an "
            "HttpServiceInterface implementation (e.g. behind a corporate proxy)."
        ),
    ),
    th.Property(
        "default_event_name",
        th.StringType,
        description="event_name for records of streams that neither map nor carry one.",
    ),
    th.Property(
        "default_action_source",
        th.StringType,
        description=(
            "action_source for records of streams that neither map nor carry one "
            "(website, app, email, phone_call, chat, physical_store, system_generated, "
            "business_messaging, other)."
        ),
    ),
    th.Property(
        "time_zone",
        th.StringType,
        default="UTC",
        description=(
            "IANA time zone (e.g. Europe/Berlin) of event times given without an offset: text "
            "such as '2026-11-29 10:00:00' (a CSV or JSONL file's), a date. Times with an "
            "offset and epoch numbers are unaffected, and so are tap-postgres's `timestamp "
            "without time zone` columns, which it sends with +00:00 (docs/meltano.md). A "
            "stream's own time_zone in `streams` overrides it for that stream."
        ),
    ),
    th.Property(
        "streams",
        # JSON text too: an object setting given through an environment variable stays text
        th.CustomType({"type": ["object", "string"]}),
        description=(
            "Per-stream mapping, keyed by stream name: event_name, action_source and "
            'fields (CAPI path → column, e.g. {"user_data.em": "email"} or nested '
            '{"user_data": {"em": "email"}}; a hashed customer parameter may list several '
            'columns: {"user_data.ph": ["phone", "mobile_phone"]}), pixel_id to send the '
            "stream to another pixel, time_zone to read its times in another zone and "
            "phone_country_code for its phone numbers; as an object or as JSON text. "
            "See the README for every option."
        ),
    ),
    th.Property(
        "hash_external_id",
        th.BooleanType,
        default=True,
        description="Hash external_id with SHA-256 (recommended by Meta).",
    ),
    th.Property(
        "phone_country_code",
        # a JSON whole number too, as a country calling code is naturally written
        th.CustomType({"type": ["string", "integer"]}),
        description=(
            "Country of phone numbers written without + or 00, by its calling code (1, 44) or "
            "ISO code (US, GB): they are read as dialled there (libphonenumber's rules), so "
            "'(616) 954-7888' is hashed as 16169547888 for 1 or US, '07700 900123' as "
            "447700900123 for 44 or GB. Meta matches phone numbers only with their country "
            "code. Unset: numbers are hashed as written, but one written as dialled inside "
            "its country, with a leading 0 or as a US or Canadian number without its 1 "
            "('(616) 954-7888'), is left out and counted as no_country_code. A stream's own "
            "phone_country_code in `streams` overrides it."
        ),
    ),
    th.Property(
        "phone_country_from_country",
        th.BooleanType,
        default=False,
        description=(
            "Read a phone number written without + or 00 as dialled in the country of its "
            "event's user_data.country (a code or a name), when that names one; in "
            "phone_country_code's otherwise. For streams of customers from several countries "
            "whose numbers are stored as dialled at home."
        ),
    ),
    th.Property(
        "dead_letter_path",
        th.StringType,
        default=DEFAULT_DEAD_LETTER_PATH,
        description=(
            "JSONL file (appended) receiving every event Meta would not or did not accept, "
            "with the reason and the hashed event, and every record that could not be mapped "
            "to one (a value its event field cannot take). Relative to the working directory."
        ),
    ),
    th.Property(
        "on_invalid_event",
        th.StringType,
        default=ON_INVALID_DEAD_LETTER,
        allowed_values=[ON_INVALID_DEAD_LETTER, ON_INVALID_FAIL],
        description=(
            "What to do with an event that breaks Meta's rules, or a record with a value its "
            "event field cannot take (text that is not a number for custom_data.value, 30 "
            "February in a text column mapped to event_time; in a column its SCHEMA types as "
            "date-time it is bad input, which stops the run): 'dead_letter' (write it to "
            "dead_letter_path and go on) or 'fail' (stop the run, exit code 1)."
        ),
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        description=(
            "Map, hash, validate and batch, but send nothing: request payloads (without "
            "the token; IP address, user agent and other customer data Meta gets unhashed "
            "masked) go to dry_run_path or stderr, and state is written as if acknowledged."
        ),
    ),
    th.Property(
        "dry_run_path",
        th.StringType,
        description=(
            "JSONL file for dry-run payloads (replaced per run; the file stderr goes to is "
            "added to instead); stderr when unset. A FIFO is written into, its reader waited "
            "for 2 s at most."
        ),
    ),
    th.Property(
        "progress_interval",
        th.NumberType(minimum=0, maximum=LONGEST_WAIT_SECONDS),
        default=DEFAULT_PROGRESS_INTERVAL,
        description="Seconds between progress lines on stderr; 0 turns them off.",
    ),
    th.Property(
        "summary_path",
        th.StringType,
        description=(
            "Write the run summary as JSON to this file (it is always logged). A file is "
            "replaced at once, never seen half written, and keeps its permissions; through a "
            "symlink, the file it points to. A FIFO or a device (e.g. /dev/stderr) is written "
            "into. Every run that gets as far as reading its settings writes it, a failed one "
            "with its `failure` (non-null for exit code 1): settings refused at start-up too, "
            "unless summary_path itself is the one refused."
        ),
    ),
).to_dict()


#: Settings that never leave the target's main process (not even to its record workers).
SECRET_SETTINGS = frozenset(
    name for name, schema in SETTINGS["properties"].items() if schema.get("secret")
)
