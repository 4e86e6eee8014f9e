"""TargetMetaCapi: settings, Singer input, and the hooks that hold STATE until Meta acknowledged.

The SDK writes state whenever `process_batch()` returned; here `process_batch()` only hands a
request to the sliding window, so state goes through the ack ledger instead (see state.py):
a STATE message registers a barrier, and the newest state whose records are all settled is
written after every message, at drains and at the end. Nothing but state lines goes to stdout.
"""

from __future__ import annotations

import decimal
import logging
import os
import re
import signal
import sys
import time
import typing as t
from collections import Counter, defaultdict
from importlib import metadata
from types import FrameType

import msgspec
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, InvalidRecord
from singer_sdk.io_base import GenericSingerReader
from singer_sdk.plugin_base import _ConfigInput
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.target_base import Target

from target_meta_capi.capi.batch import BatchProcessor
from target_meta_capi.capi.errors import CapiError
from target_meta_capi.capi.http import (
    HttpServiceInterface,
    RequestsHttpService,
    load_http_service,
)
from target_meta_capi.capi.request import DEFAULT_API_VERSION, DEFAULT_GRAPH_URL, EventRequest
from target_meta_capi.capi.retry import RetryPolicy
from target_meta_capi.dead_letter import DeadLetterWriter
from target_meta_capi.dry_run import DRY_RUN_ACCESS_TOKEN, DryRunHttpService
from target_meta_capi.sink import (
    ON_INVALID_DEAD_LETTER,
    ON_INVALID_FAIL,
    BadRecordError,
    Delivery,
    EventSink,
    InvalidEventError,
    TargetFailure,
)
from target_meta_capi.state import AckLedger
from target_meta_capi.summary import (
    DEFAULT_PROGRESS_INTERVAL,
    ProgressReporter,
    RunStats,
    write_run_summary,
)

try:
    __version__ = metadata.version("target-meta-capi")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"

DEFAULT_PARTNER_AGENT = f"target-meta-capi/{__version__}"
DEFAULT_DEAD_LETTER_PATH = "dead_letters.jsonl"
DEFAULT_BATCH_SIZE = 1000
DEFAULT_CONCURRENT_REQUESTS = 8
DEFAULT_REQUEST_TIMEOUT = 60
DEFAULT_MAX_RETRIES = 5

# singer_sdk's error for a date-like string it cannot parse (helpers/_typing.py)
_UNPARSEABLE_DATE = re.compile(r"Could not parse value .* for field '(?P<field>.*)'\.$", re.DOTALL)
_state_encoder = msgspec.json.Encoder(decimal_format="number")
_input_decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)


class SingerInputError(InvalidInputLine):
    """The input is not a valid Singer message stream; the message names the line."""


class TerminationRequested(BaseException):
    """SIGTERM/SIGINT arrived: stop reading (a BaseException so no handler swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received signal {signal.Signals(signum).name}")
        self.signum = signum


class NumberedSingerReader(GenericSingerReader[str]):
    """Reads Singer messages with msgspec, counting lines so every error can name its line.

    Blank lines are skipped. Error messages never quote the line: it may hold customer data.
    """

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.messages_read = 0
        self.current_stream: str | None = None

    @property
    def default_input(self) -> t.IO[str]:
        return sys.stdin

    def deserialize_json(self, line: str) -> dict:
        try:
            message = _input_decoder.decode(line)
        except msgspec.DecodeError as error:
            raise SingerInputError(
                f"Input line {self.line_number} is not valid JSON ({error})"
            ) from None
        if not isinstance(message, dict):
            raise SingerInputError(
                f"Input line {self.line_number} is not a Singer message (a JSON object)"
            )
        return message

    def process_lines(
        self,
        file_input: t.IO[str] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        counts: dict[str, int] = defaultdict(int)
        for line in file_input or self.default_input:
            self.line_number += 1
            if not line.strip():
                continue
            message = self.deserialize_json(line)
            message_type = message.get("type")
            callback = callbacks.get(message_type) if isinstance(message_type, str) else None
            if callback is None:
                raise SingerInputError(
                    f"Input line {self.line_number} has unknown message type "
                    f"{message_type!r} (expected SCHEMA, RECORD or STATE)"
                )
            stream = message.get("stream")
            self.current_stream = stream if isinstance(stream, str) else None
            callback(message)
            self.messages_read += 1
            counts[message_type] += 1
        return Counter(counts)


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
        th.IntegerType(minimum=1, maximum=1000),
        default=DEFAULT_BATCH_SIZE,
        description="Events per request, 1 to 1000 (Meta's maximum).",
    ),
    th.Property(
        "concurrent_requests",
        th.IntegerType(minimum=1),
        default=DEFAULT_CONCURRENT_REQUESTS,
        description=(
            "Requests in flight at once (a sliding window; halved while Meta throttles). "
            "Reading stops while the window is full, so memory stays flat."
        ),
    ),
    th.Property(
        "request_timeout",
        th.NumberType(exclusive_minimum=0),
        default=DEFAULT_REQUEST_TIMEOUT,
        description="Seconds to wait for Meta's answer to one request before retrying it.",
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
        "streams",
        # JSON text too: an object setting given through an environment variable stays text
        th.CustomType({"type": ["object", "string"]}),
        description=(
            "Per-stream mapping, keyed by stream name: event_name, action_source and "
            'fields (CAPI path → column, e.g. {"user_data.em": "email"} or nested '
            '{"user_data": {"em": "email"}}), as an object or as JSON text. '
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
        "dead_letter_path",
        th.StringType,
        default=DEFAULT_DEAD_LETTER_PATH,
        description=(
            "JSONL file (appended) receiving every event Meta would not or did not accept, "
            "with the reason and the hashed event. Relative to the working directory."
        ),
    ),
    th.Property(
        "on_invalid_event",
        th.StringType,
        default=ON_INVALID_DEAD_LETTER,
        allowed_values=[ON_INVALID_DEAD_LETTER, ON_INVALID_FAIL],
        description=(
            "What to do with an event that breaks Meta's rules: 'dead_letter' (write it to "
            "dead_letter_path and go on) or 'fail' (stop the run, exit code 1)."
        ),
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        description=(
            "Map, hash, validate and batch, but send nothing: request payloads (without "
            "the token) go to dry_run_path or stderr, and state is written as if acknowledged."
        ),
    ),
    th.Property(
        "dry_run_path",
        th.StringType,
        description="JSONL file for dry-run payloads (replaced per run); stderr when unset.",
    ),
    th.Property(
        "progress_interval",
        th.NumberType(minimum=0),
        default=DEFAULT_PROGRESS_INTERVAL,
        description="Seconds between progress lines on stderr; 0 turns them off.",
    ),
    th.Property(
        "summary_path",
        th.StringType,
        description="Write the run summary as JSON to this file (it is always logged).",
    ),
).to_dict()


def settings_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """Rules the JSON schema cannot express clearly."""
    errors = []
    if not config.get("dry_run") and not config.get("access_token"):
        errors.append("access_token is required (unless dry_run is true)")
    graph_url = config.get("graph_url", DEFAULT_GRAPH_URL)
    if not isinstance(graph_url, str) or not graph_url.startswith(("https://", "http://")):
        errors.append(
            f"graph_url must be an http:// or https:// URL, got {graph_url!r} "
            f"(default {DEFAULT_GRAPH_URL})"
        )
    return errors


class TargetMetaCapi(Target):
    """Sends Singer records to Meta's Conversions API as events."""

    name = "target-meta-capi"
    package_name = "target-meta-capi"
    config_jsonschema = SETTINGS
    default_sink_class = EventSink
    message_reader_class = NumberedSingerReader

    #: A STATE message drains half-full batches so its state can be written soon, but not
    #: more often than this: a tap that emits STATE after every record would otherwise
    #: send one-event requests.
    state_drain_min_interval_seconds: float = 1.0
    #: After SIGTERM/SIGINT, how long requests in flight may take to finish.
    shutdown_grace_seconds: float = 30.0
    #: Backoff base of retries (seconds); tests lower it.
    retry_base_delay_seconds: float = 0.5

    message_reader: NumberedSingerReader

    def __init__(
        self,
        *,
        config: dict | None = None,
        parse_env_config: bool = False,
        validate_config: bool = True,
        setup_mapper: bool = True,
        message_reader: GenericSingerReader | None = None,
    ) -> None:
        super().__init__(
            config=config,
            parse_env_config=parse_env_config,
            validate_config=validate_config,
            setup_mapper=setup_mapper,
            message_reader=message_reader,
        )
        # process_batch only submits to the shared window; draining sinks in joblib threads
        # would buy nothing and make the window's users concurrent.
        self.max_parallelism = 1
        self.stats = RunStats(logger=self.logger)
        self._dry_run_service = (
            DryRunHttpService(self.config.get("dry_run_path"))
            if self.config.get("dry_run")
            else None
        )
        self.delivery = self._build_delivery()
        self.progress = ProgressReporter(
            self.stats,
            self.logger,
            float(self.config.get("progress_interval", DEFAULT_PROGRESS_INTERVAL)),
        )
        self._last_state_drain = 0.0
        self._last_written_state: t.Any = None
        self._wrote_state = False
        self._closed = False
        self._terminating = False

    # --- settings --------------------------------------------------------------------------

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        errors = super()._validate_config(raise_errors=raise_errors)
        extra = settings_errors(self.config)
        if extra and raise_errors:
            raise ConfigValidationError(
                "Config validation failed", errors=extra, schema=self.config_jsonschema
            )
        return errors + extra

    def _http_service(self) -> HttpServiceInterface:
        config = self.config
        if self._dry_run_service is not None:
            return self._dry_run_service
        if config.get("http_service_class"):
            return load_http_service(config["http_service_class"])
        concurrent = int(config.get("concurrent_requests", DEFAULT_CONCURRENT_REQUESTS))
        return RequestsHttpService(pool_size=concurrent)

    def _build_delivery(self) -> Delivery:
        config = self.config
        dry_run = bool(config.get("dry_run"))
        access_token = config.get("access_token")
        template = EventRequest(
            pixel_id=str(config["pixel_id"]),
            access_token=DRY_RUN_ACCESS_TOKEN if dry_run and not access_token else access_token,
            app_secret=config.get("app_secret"),
            test_event_code=config.get("test_event_code"),
            partner_agent=config.get("partner_agent", DEFAULT_PARTNER_AGENT),
            namespace_id=config.get("namespace_id"),
            upload_id=config.get("upload_id"),
            upload_tag=config.get("upload_tag"),
            upload_source=config.get("upload_source"),
            api_version=config.get("api_version", DEFAULT_API_VERSION),
            graph_url=config.get("graph_url", DEFAULT_GRAPH_URL),
            timeout=float(config.get("request_timeout", DEFAULT_REQUEST_TIMEOUT)),
        )
        processor = BatchProcessor(
            batch_size=int(config.get("batch_size", DEFAULT_BATCH_SIZE)),
            concurrent_requests=int(config.get("concurrent_requests", DEFAULT_CONCURRENT_REQUESTS)),
            http_service=self._http_service(),
            retry_policy=RetryPolicy(
                max_retries=int(config.get("max_retries", DEFAULT_MAX_RETRIES)),
                base_delay=self.retry_base_delay_seconds,
                # throttling needs a longer breath than a transient error (5 s by default)
                throttle_base_delay=self.retry_base_delay_seconds * 10,
            ),
            observer=self.stats,
        )
        return Delivery(
            ledger=AckLedger(),
            processor=processor,
            template_request=template,
            dead_letters=DeadLetterWriter(
                config.get("dead_letter_path") or DEFAULT_DEAD_LETTER_PATH
            ),
            stats=self.stats,
            fail_on_invalid_event=config.get("on_invalid_event") == ON_INVALID_FAIL,
        )

    @property
    def ledger(self) -> AckLedger:
        return self.delivery.ledger

    # --- messages --------------------------------------------------------------------------

    def _process_schema_message(self, message_dict: dict) -> None:
        super()._process_schema_message(message_dict)
        self._after_message()

    def _process_record_message(self, message_dict: dict) -> None:
        self.progress.start()
        super()._process_record_message(message_dict)
        self._after_message()

    def _process_state_message(self, message_dict: dict) -> None:
        self._assert_line_requires(message_dict, requires={"value"})
        state = message_dict["value"]
        if state != self._latest_state:
            self._latest_state = state
            self.ledger.register_state(state)
            self._drain_for_state()
        self._after_message()

    def _process_batch_message(self, message_dict: dict) -> None:
        # BATCH files would bypass validation and date parsing, and this target does not
        # advertise the capability: refuse rather than silently drop the records.
        raise SingerInputError(
            f"Input line {self.message_reader.line_number}: BATCH messages are not supported"
        )

    def _assert_line_requires(self, message_dict: dict, requires: set[str]) -> None:
        # The SDK's own message quotes the whole line, customer data included.
        missing = requires.difference(message_dict)
        if missing:
            raise SingerInputError(
                f"Input line {self.message_reader.line_number} lacks required key(s) "
                f"{', '.join(repr(key) for key in sorted(missing))}"
            )

    def _after_message(self) -> None:
        self.delivery.raise_if_failed()
        self._write_ready_state()

    def _drain_for_state(self) -> None:
        """Send half-full batches so the state just received can be written soon."""
        now = time.monotonic()
        if now - self._last_state_drain < self.state_drain_min_interval_seconds:
            return
        self._last_state_drain = now
        for sink in [*self._sinks_to_clear, *self._sinks_active.values()]:
            self.drain_one(sink)

    # --- state -----------------------------------------------------------------------------

    def _write_state_message(self, state: dict) -> None:
        # Called by drain_all with the latest state received, acknowledged or not.
        self._write_ready_state()

    def _write_ready_state(self) -> None:
        found, state = self.ledger.take_ready_state()
        if not found or (self._wrote_state and state == self._last_written_state):
            return
        # dead letters are settled records: they must be on disk before state passes them
        self.delivery.dead_letters.sync()
        sys.stdout.write(_state_encoder.encode(state).decode() + "\n")
        sys.stdout.flush()
        self._last_written_state = state
        self._wrote_state = True

    # --- end of input ----------------------------------------------------------------------

    def process_endofpipe(self) -> None:
        if self.message_reader.messages_read == 0:
            raise SingerInputError(
                "No input: expected Singer messages (SCHEMA, RECORD, STATE) on stdin"
            )
        self.drain_all(is_endofpipe=True)
        self._wait_for_in_flight(timeout=None)
        self.delivery.raise_if_failed()
        self._write_ready_state()
        self.close()

    def _wait_for_in_flight(self, timeout: float | None) -> bool:
        """Wait until every request is settled; False on a failure or after `timeout`."""
        return self.delivery.wait(timeout)

    def close(self) -> None:
        """Stop progress, close files and log the run summary (once)."""
        if self._closed:
            return
        self._closed = True
        self.progress.stop()
        self.delivery.processor.close(wait=self.delivery.unsettled_requests == 0)
        self.delivery.dead_letters.close()
        if self._dry_run_service is not None:
            self._dry_run_service.close()
        write_run_summary(self.stats, self.logger, self.config.get("summary_path"))

    # --- CLI -------------------------------------------------------------------------------

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        if self._terminating:
            # a second signal: stop waiting for requests in flight
            self.logger.error("Received %s again: exiting now", signal.Signals(signum).name)
            _flush_and_exit(128 + signum)
        self._terminating = True
        raise TerminationRequested(signum)

    def describe_failure(self, error: BaseException) -> str:
        """One line saying what went wrong and where."""
        reader = self.message_reader
        where = f"input line {reader.line_number}"
        if reader.current_stream:
            where += f", stream {reader.current_stream!r}"
        if isinstance(error, (BadRecordError, InvalidEventError)):
            return f"{error} at input line {reader.line_number}"
        if isinstance(error, (TargetFailure, SingerInputError, CapiError)):
            return str(error)
        unparseable_date = _UNPARSEABLE_DATE.match(str(error))
        if isinstance(error, ValueError) and unparseable_date:
            # the SDK's message quotes the value, which may be a birth date
            return (
                f"Record has a date that cannot be parsed ({where}): field "
                f"{unparseable_date['field']!r} is not an ISO 8601 date, time or date-time"
            )
        if isinstance(error, InvalidRecord):
            return f"Record does not match its SCHEMA ({where}): {error.error_message}"
        return f"{type(error).__name__} ({where}): {error}"

    def run(self, file_input: t.IO[str] | None = None) -> int:
        """Read all input and return the exit code (0: done, every state written)."""
        try:
            self.listen(file_input)
        except TerminationRequested as stop:
            return self._stop_after_signal(stop.signum)
        except Exception as error:
            self.ledger.poison()
            self.close()
            # last, so that the line an operator reads first at the bottom says what failed
            self.logger.error("target-meta-capi failed: %s", self.describe_failure(error))
            return 1
        return 0

    def _stop_after_signal(self, signum: int) -> int:
        in_flight = self.delivery.unsettled_requests
        self.logger.warning(
            "Received %s: stopped reading; waiting up to %.0f s for %d requests in flight",
            signal.Signals(signum).name,
            self.shutdown_grace_seconds,
            in_flight,
        )
        if self._wait_for_in_flight(timeout=self.shutdown_grace_seconds):
            self._write_ready_state()
        else:
            self.logger.error("Requests still in flight were abandoned; their state is not written")
        self.close()
        return 128 + signum

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: _ConfigInput | None = None,
        file_input: t.IO[str] | None = None,
    ) -> None:
        super(Target, cls).invoke(about=about, about_format=about_format)
        cls.print_version(print_fn=cls.logger.info)
        config = config or _ConfigInput()
        try:
            target = cls(
                config=config.config, validate_config=True, parse_env_config=config.parse_env
            )
        except CapiError as error:
            cls.logger.error("Configuration error: %s", error)
            _flush_and_exit(1)
        code = target.run(file_input)
        if code or target.delivery.unsettled_requests:
            # threads of abandoned requests would otherwise keep the process alive
            _flush_and_exit(code)


def _flush_and_exit(code: int) -> t.NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
