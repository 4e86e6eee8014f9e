"""TargetMetaCapi: the hooks that hold STATE until Meta acknowledged, and the CLI's exit codes.

The SDK writes state whenever `process_batch()` returned; here `process_batch()` only hands a
request to the sliding window, so state goes through the ack ledger instead (see state.py):
a STATE message registers a barrier, and the newest state whose records are all settled is
written as soon as the answer settling them arrives (from its callback, under a lock), after
every message and at the end. Nothing but state lines goes to stdout.

Records of plain streams are validated, mapped and hashed by record workers
(record_workers.py), all but each stream's first 200, which this process handles itself
(`RECORDS_BEFORE_WORKERS`): they are numbered in the ledger when read, and their events come
back to the sink in batches. SIGTERM/SIGINT stop reading only where nothing is half done (see
`TerminationRequested` in reader.py), then requests in flight get a grace period.

This module is the Target class: the SDK's hooks, wiring the settings, the sinks and the
delivery together. The rules they apply live in the modules named for them: settings/ (the
settings, the environment and the --config files), messages.py (what a SCHEMA, RECORD or
STATE must hold), batch_files.py (the files of BATCH messages), record_workers.py (which
streams workers can process), partial_batches.py (when half-full batches are sent),
delivery.py and state.py (sending and the ack ledger), shutdown.py (signals and the grace
period), failures.py (the line a failed run ends with).
"""

from __future__ import annotations

import contextlib
import copy
import enum
import math
import os
import signal
import sys
import threading
import time
import typing as t
from collections import Counter
from types import FrameType

import click
import msgspec
from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.io_base import GenericSingerReader
from singer_sdk.mapper import RemoveRecordTransform, SameRecordTransform
from singer_sdk.plugin_base import _ConfigInput
from singer_sdk.target_base import Target

from target_meta_capi.allocator import tune_malloc
from target_meta_capi.batch_files import read_batch_message, record_lines
from target_meta_capi.capi._words import counted, shown_json
from target_meta_capi.capi.batch import BatchProcessor
from target_meta_capi.capi.errors import (
    CapiError,
    ConfigurationError,
    LocalResourceError,
    NetworkError,
)
from target_meta_capi.capi.http import (
    HttpServiceInterface,
    RequestsHttpService,
    load_http_service,
)
from target_meta_capi.capi.request import DEFAULT_API_VERSION, DEFAULT_GRAPH_URL, EventRequest
from target_meta_capi.capi.retry import RetryPolicy
from target_meta_capi.dead_letter import DeadLetterWriteError, DeadLetterWriter
from target_meta_capi.delivery import (
    Delivery,
    StateOutputClosed,
)
from target_meta_capi.dry_run import DRY_RUN_ACCESS_TOKEN, DryRunHttpService
from target_meta_capi.failures import describe_failure, is_bad_input
from target_meta_capi.log_output import one_line, set_up_log_output
from target_meta_capi.mapping import (
    event_name_warnings,
    mapping_config_errors,
    overlapping_patterns_warning,
    reports_deleted,
    unmatched_stream_entries,
)
from target_meta_capi.messages import (
    RECORD_KEYS,
    assert_record_is_an_object,
    assert_schema_message_shape,
)
from target_meta_capi.partial_batches import PartialBatches
from target_meta_capi.reader import (
    Line,
    NumberedSingerReader,
    SingerInputError,
    TerminationRequested,
    assert_line_requires,
)
from target_meta_capi.record_workers import (
    ParallelRecords,
    RecordWorkerPool,
    RecordWorkersUnavailable,
    StreamSpec,
    can_fork_workers,
    default_worker_count,
    worker_spec,
)
from target_meta_capi.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENT_REQUESTS,
    DEFAULT_MAX_BATCH_WAIT_SECONDS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_SECONDS,
    DEFAULT_PARTNER_AGENT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SHUTDOWN_GRACE_SECONDS,
    ON_INVALID_FAIL,
    SETTINGS,
    ConfigFileError,
    dead_letter_path,
    dotenv_path,
    environment_schema,
    environment_setting_problem,
    explained_schema_errors,
    output_over_config_file_problem,
    read_config_files,
    required_settings_errors,
    run_by_meltano,
    secret_settings_errors,
    secret_texts,
    settings_errors,
    settings_warnings,
    unknown_environment_variables,
    untrusted_dotenv,
    with_pixel_id_as_text,
    with_texts_parsed,
    without_secrets,
)
from target_meta_capi.shutdown import SIGNAL_HEARD_WITHIN, Shutdown, flush_and_exit
from target_meta_capi.sink import EventSink
from target_meta_capi.state import MAX_STATE_NESTING, AckLedger, nests_deeper_than
from target_meta_capi.summary import (
    DEFAULT_PROGRESS_INTERVAL,
    TEST_EVENTS_NOTE,
    ProgressReporter,
    RunStats,
    write_refused_config_summary,
    write_run_summary,
    write_summary_file_at_once,
)
from target_meta_capi.summary.summary_file import SummaryWriteError

_state_encoder = msgspec.json.Encoder(decimal_format="number")


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
    #: A state ready as it arrives (its records settled already: a skipped stream's, dead
    #: letters') is written by the reading thread at most this often, the newest one then: a
    #: tap that emits STATE after every record would otherwise get a line back for each, and
    #: Meltano commits each line to its system database. One held back is written at the next
    #: pause of the input once the interval is over, by the next acknowledgement, or at the
    #: end. Acknowledgements write at once: one line per request at most.
    state_write_min_interval_seconds: float = 1.0
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
        # streams whose records the SDK's stream maps pass through unchanged → their sink
        self._plain_sinks: dict[str, EventSink] = {}
        # by the names their sinks have, which the `streams` setting is matched against
        self._streams_seen: set[str] = set()
        self._noted_activate_version = False
        self._input_place = "on stdin"  # or the file `run` reads (the CLI's --input)
        # (pixel id, event name) -> {stream: the number column its event_ids come from}
        self._numbered_event_ids: dict[tuple[str, str], dict[str, str]] = {}
        self.stats = RunStats(
            logger=self.logger,
            dry_run=bool(self.config.get("dry_run")),
            test_events=bool(self.config.get("test_event_code")),
            secrets=secret_texts(self.config),
        )
        for warning in settings_warnings(self.config, self.settings_schema()["properties"]):
            self.stats.run_warning(warning)
        for warning in event_name_warnings(self.config):
            self.stats.run_warning(warning)
        if parse_env_config:
            for warning in unknown_environment_variables(
                self.settings_schema(), self._env_var_prefix
            ):
                self.stats.run_warning(warning)
            if not_read := untrusted_dotenv():
                self.stats.run_warning(not_read)
        # states are written by the main thread and by callbacks of settled requests
        self._state_lock = threading.Lock()
        self._last_written_state: t.Any = None
        self._wrote_state = False
        self._last_state_write = -math.inf  # time.monotonic() of the last state line
        self._dry_run_service = (
            DryRunHttpService(self.config.get("dry_run_path"))
            if self.config.get("dry_run")
            else None
        )
        if self._dry_run_service is not None:
            self.logger.info(
                "DRY RUN: nothing is sent to Meta; request payloads (without the token) go to "
                "%s, and state is written as if Meta had acknowledged them.",
                self.config.get("dry_run_path") or "stderr",
            )
            if run_by_meltano():
                # Meltano stores that state: its next run would start after rows never sent
                self.logger.warning(
                    "DRY RUN under Meltano: Meltano stores the state this run writes, so its "
                    "next run starts after these rows and never sends them, unless this run "
                    "is `meltano run --no-state-update ...`."
                )
        elif self.stats.test_events:
            self.logger.info("TEST EVENTS: %s.", TEST_EVENTS_NOTE)
        # The HTTP service this run makes, whose connections end with it; not a configured
        # one, which `load_http_service` shares between runs.
        self._own_http_service: RequestsHttpService | None = None
        self.delivery = self._build_delivery()
        self.progress = ProgressReporter(
            self.stats,
            self.logger,
            float(self.config.get("progress_interval", DEFAULT_PROGRESS_INTERVAL)),
        )
        self._partial_batches = PartialBatches(
            self._send_all_batches,
            drain_interval=self.state_drain_min_interval_seconds,
            max_batch_wait=float(
                self.config.get("max_batch_wait_seconds", DEFAULT_MAX_BATCH_WAIT_SECONDS)
            ),
        )
        self.message_reader.pace_clock = self.stats.pace_clock
        self.message_reader.on_input_pause = self._input_paused
        self.message_reader.on_input_flow = self._partial_batches.input_flowing
        self.message_reader.on_wake = self.delivery.raise_if_failed
        self.message_reader.on_failure = self._end_after_failure
        self.message_reader.is_bad_input = is_bad_input
        self.message_reader.on_stop = self._end_after_stop
        self._closed = False
        self._failed = False
        self._stop_exit_code: int | None = None  # 128 + the signal, once a stop ended the run
        record_workers = self.config.get("record_workers")
        self._record_workers = (
            default_worker_count() if record_workers is None else int(record_workers)
        )
        self._parallel: ParallelRecords | None = None
        self._workers_unavailable = False
        self._routed_specs: dict[str, StreamSpec] = {}
        self.shutdown = Shutdown(
            self.delivery, self.message_reader, self.logger, last_words=self._exiting_at_once
        )
        super()._setup_signal_handlers()

    def _setup_signal_handlers(self) -> None:
        """Not yet: the SDK installs them at the start of its __init__, and our handler needs
        what the rest of ours sets up (until then a signal has its default effect)."""

    # --- settings --------------------------------------------------------------------------

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        super().append_builtin_config(config_jsonschema)
        # The SDK gives load_method enum members as default and choices, which `--about` (and
        # so the README) shows as 'append-only' on Python 3.10 but
        # 'TargetLoadMethods.APPEND_ONLY' on 3.11+, whose format() of a str-mixin enum
        # changed, and a wrong value's error as "[<TargetLoadMethods.APPEND_ONLY:
        # 'append-only'>, …]": show the values users write.
        properties = config_jsonschema["properties"]
        for name, schema in properties.items():
            if isinstance(schema.get("default"), enum.Enum):
                # a copy: the SDK's own schema dict is shared, not ours to change
                properties[name] = {**schema, "default": schema["default"].value}
            if any(isinstance(choice, enum.Enum) for choice in schema.get("enum") or ()):
                properties[name] = {
                    **properties[name],
                    "enum": [getattr(choice, "value", choice) for choice in schema["enum"]],
                }

    @classmethod
    def settings_schema(cls) -> dict[str, t.Any]:
        """The target's settings with the SDK's own (validate_records, batch_size_rows …),
        which the SDK adds to the schema only as it reads the environment or validates."""
        schema = copy.deepcopy(cls.config_jsonschema)
        cls.append_builtin_config(schema)
        return schema

    @classproperty
    def _env_var_config(cls) -> dict[str, t.Any]:
        """The SDK's settings from the environment, after loading the `.env` file that
        `dotenv_path` names (given none, the SDK would look for one itself, where its version
        looks: 0.54 from its installed package, 0.55 from the working directory)."""
        return parse_environment_config(
            environment_schema(cls.settings_schema()),
            cls._env_var_prefix,
            dotenv_path=dotenv_path() or os.devnull,
        )

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # The SDK's first look at the assembled config (files and environment), and the first
        # place to say that a setting given as null is a setting not given (its schema lets null
        # through, and a default read as `config.get(name, default)` would then be None) and
        # that a number, integer or boolean given as text is that value
        for name in [name for name, value in self._config.items() if value is None]:
            del self._config[name]
        self._config.update(with_texts_parsed(self.settings_schema(), self._config))
        self._config.update(with_pixel_id_as_text(self._config))
        secrets = secret_settings_errors(self.config)
        if secrets and raise_errors:
            # before the SDK's check, whose messages quote the values
            raise ConfigValidationError(
                "Config validation failed", errors=secrets, schema=self.config_jsonschema
            )
        try:
            errors = super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as error:
            # with the required setting the schema cannot require: an empty config names the
            # token missing too, not only the pixel_id
            raise ConfigValidationError(
                str(error),
                errors=without_secrets(
                    explained_schema_errors(error.errors) + required_settings_errors(self.config),
                    self.config,
                ),
                schema=self.config_jsonschema,
            ) from None
        extra = settings_errors(self.config) + mapping_config_errors(self.config)
        if extra and raise_errors:
            raise ConfigValidationError(
                "Config validation failed",
                errors=without_secrets(extra, self.config),
                schema=self.config_jsonschema,
            )
        return without_secrets(explained_schema_errors(errors) + extra, self.config)

    def mask_in_outputs(self, stream_name: str, paths: t.Collection[tuple[str, ...]]) -> None:
        """Mask these paths of the stream's events in what the run writes for people to read:
        its dead letters, a dry run's requests, and Meta's errors quoting its requests."""
        self.delivery.keep_private(stream_name, paths)
        self.delivery.dead_letters.mask_fields(stream_name, paths)
        if self._dry_run_service is not None:
            self._dry_run_service.mask_fields(paths)

    def note_numbered_event_ids(
        self, stream_name: str, pixel_id: str, event_name: str, column: str
    ) -> None:
        """A stream sends `event_name` events to `pixel_id` with event_ids from a number
        column: warn when another stream of the run does too. Meta deduplicates on event_name
        and event_id alone, and two tables' serial numbers meet (web order 17, store order 17),
        so one of each such pair would be dropped."""
        streams = self._numbered_event_ids.setdefault((pixel_id, event_name), {})
        # one line per stream joining, not one per pair: a tap of 300 tables wrote 45,000
        others = [] if stream_name in streams else list(streams.items())
        streams[stream_name] = column
        consequence = (
            "Meta takes events with the same event_name and event_id as one, so two rows "
            "numbered alike count once. Make their ids distinct (map event_id to a column or "
            "stream map prefixing the table)."
        )
        if len(others) == 1:
            other, other_column = others[0]
            self.stats.run_warning(
                f"Streams {other!r} and {stream_name!r} both send {event_name} events to "
                f"pixel {pixel_id!r} with event_id from a number column ({other_column}, "
                f"{column}): {consequence}"
            )
        elif others:
            shown = ", ".join(repr(other) for other, _ in others[:3])
            more = ", ..." if len(others) > 3 else ""
            self.stats.run_warning(
                f"Stream {stream_name!r} sends {event_name} events to pixel {pixel_id!r} with "
                f"event_id from a number column ({column}), as {len(others)} other streams of "
                f"this run do ({shown}{more}): {consequence}"
            )

    def _http_service(self) -> HttpServiceInterface:
        config = self.config
        configured: HttpServiceInterface | None = None
        if config.get("http_service_class"):
            try:
                configured = load_http_service(config["http_service_class"])
            except ConfigurationError as error:  # said as one line, by the setting's name
                raise ConfigurationError(f"http_service_class: {error}") from None
        # a dry run proves a config before it goes live: its HTTP service was loaded above
        if self._dry_run_service is not None:
            return self._dry_run_service
        if configured is not None:
            return configured
        concurrent = int(config.get("concurrent_requests", DEFAULT_CONCURRENT_REQUESTS))
        self._own_http_service = RequestsHttpService(pool_size=concurrent)
        return self._own_http_service

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
                max_time=float(config.get("max_retry_seconds", DEFAULT_MAX_RETRY_SECONDS)),
                base_delay=self.retry_base_delay_seconds,
                # throttling needs a longer breath than a transient error (5 s by default)
                throttle_base_delay=self.retry_base_delay_seconds * 10,
                give_up=self.is_unreachable_endpoint,
            ),
            observer=self.stats,
        )
        return Delivery(
            ledger=AckLedger(),
            processor=processor,
            template_request=template,
            dead_letters=DeadLetterWriter(dead_letter_path(config)),
            stats=self.stats,
            fail_on_invalid_event=config.get("on_invalid_event") == ON_INVALID_FAIL,
            on_settled=self._write_ready_state,
            on_failed=self.message_reader.wake,
        )

    def is_unreachable_endpoint(self, error: BaseException) -> bool:
        """A refused or unresolvable connection before graph_url ever answered is a setting
        to fix, not an outage to wait out: stop within seconds instead of retrying. A socket
        this machine refused says nothing of graph_url: the requests in flight give theirs
        back as they end."""
        return (
            isinstance(error, NetworkError)
            and not isinstance(error, LocalResourceError)
            and not error.maybe_delivered
            and not self.stats.endpoint_answered
        )

    @property
    def ledger(self) -> AckLedger:
        return self.delivery.ledger

    # --- messages --------------------------------------------------------------------------

    def _process_schema_message(self, message_dict: dict) -> None:
        assert_schema_message_shape(message_dict, self.message_reader.line_number)
        stream = message_dict["stream"]
        replaced = self._sinks_fed_by(stream)
        stream_maps = self.mapper.stream_maps.get(stream)
        super()._process_schema_message(message_dict)
        if self.mapper.stream_maps.get(stream) is not stream_maps:
            # registered anew, with stream maps and sinks that may differ; the SDK ignores a
            # SCHEMA repeating the stream's last, which taps send before each page or parent row
            self._plain_sinks.clear()
        for name, sink in self._sinks_fed_by(stream).items():
            self._warn_if_event_ids_change(replaced.get(name), sink)
            if name not in self._streams_seen and not self.removed_by_stream_maps(name):
                warning = overlapping_patterns_warning(self.config, name)
                if warning:
                    self.stats.run_warning(warning)
        self._streams_seen.update(self._sinks_active)
        self._route_to_workers(message_dict.get("stream"))
        self._after_message()

    def removed_by_stream_maps(self, sink_name: str) -> bool:
        """Whether a stream map removes the stream of this name (`"orders": null`) and none
        gives another stream this name (`__alias__`): no record reaches its sink."""
        maps = [stream_map for each in self.mapper.stream_maps.values() for stream_map in each]
        removing = [m for m in maps if isinstance(m, RemoveRecordTransform)]
        return any(m.stream_alias == sink_name for m in removing) and not any(
            m.stream_alias == sink_name for m in maps if not isinstance(m, RemoveRecordTransform)
        )

    def _sinks_fed_by(self, stream: str) -> dict[str, t.Any]:
        """The sinks the stream's records go to, by name: its own, or the ones stream maps
        name (`__alias__`, `__source__`)."""
        return {
            stream_map.stream_alias: self._sinks_active.get(stream_map.stream_alias)
            for stream_map in self.mapper.stream_maps.get(stream, ())
        }

    def _warn_if_event_ids_change(self, replaced: t.Any, sink: t.Any) -> None:
        """A SCHEMA changing the key properties its stream's event_ids are derived from: the
        same row gets another id from here on, and Meta counts it again when it is sent again
        (an incremental tap sends the row at its bookmark again, a rerun all of them)."""
        if (
            isinstance(replaced, EventSink)
            and isinstance(sink, EventSink)
            and sink is not replaced
            and replaced.derives_event_ids
            and sink.derives_event_ids
            and list(replaced.key_properties) != list(sink.key_properties)
        ):
            self.stats.run_warning(
                f"Stream {sink.stream_name!r}: its SCHEMA at input line "
                f"{self.message_reader.line_number} changes its key properties from "
                f"{shown_json(list(replaced.key_properties))} to "
                f"{shown_json(list(sink.key_properties))}. Its event_ids "
                "are derived from them, so a row sent before this SCHEMA gets another event_id "
                "when it is sent again, and Meta counts it twice. Map `event_id` to a column "
                "that identifies the row to keep its id whatever the key properties."
            )

    def _process_record_message(self, message_dict: dict) -> None:
        self.progress.start()
        stream = message_dict.get("stream")
        sink = self._plain_sinks.get(stream) if stream.__class__ is str else None
        record = message_dict.get("record")
        if (
            record.__class__ is dict
            and reports_deleted(record)
            and stream.__class__ is str
            and stream in self.mapper.stream_maps  # else the SDK's error: no SCHEMA for it
        ):
            self._skip_deleted_row(stream)
        elif sink is not None and record.__class__ is dict:
            self._process_plain_record(sink, message_dict, record)
        else:
            assert_record_is_an_object(message_dict, self.message_reader.line_number)
            self._process_mapped_record(stream, message_dict)
            self._remember_if_plain(stream)
        self._after_message()

    def _process_mapped_record(self, stream: t.Any, message_dict: dict) -> None:
        """The SDK's record path, counting the records its stream maps leave out: each map
        gives its stream (alias) the record, or nothing (`__filter__`, a stream mapped to
        null); the summary accounts for every record the tap sent."""
        aliases = Counter(
            stream_map.stream_alias for stream_map in self.mapper.stream_maps.get(stream, ())
        )
        before = self.stats.records_read_by(aliases)
        super()._process_record_message(message_dict)
        after = self.stats.records_read_by(aliases)
        for alias, maps in aliases.items():
            if left_out := maps - (after[alias] - before[alias]):
                self.stats.records_filtered(alias, left_out)

    def _skip_deleted_row(self, stream: str) -> None:
        """A row a log-based tap reports deleted: counted, settled, not sent. Meta has no way to
        withdraw the event sent for it, and the key alone, all such a RECORD may hold, makes no
        event but a dead letter."""
        number = self.ledger.issue()
        self.stats.row_deleted(stream)
        self.ledger.settle((number,))

    def _remember_if_plain(self, stream_name: t.Any) -> None:
        """Remember the stream's sink when the SDK's record path would not transform its records."""
        sink = self._plain_sink(stream_name)
        if sink is not None:
            self._plain_sinks[stream_name] = sink

    def _plain_sink(self, stream_name: t.Any) -> EventSink | None:
        """The stream's sink, if its only stream map is the SDK's pass-through one, unflattened."""
        stream_maps = self.mapper.stream_maps.get(stream_name)
        sink = self._sinks_active.get(stream_name)
        if (
            stream_maps is not None
            and len(stream_maps) == 1
            and type(stream_maps[0]) is SameRecordTransform
            and stream_maps[0].stream_alias == stream_name
            and not (stream_maps[0].flattening_options and stream_maps[0].flattening_enabled)
            and isinstance(sink, EventSink)
        ):
            return sink
        return None

    # --- record workers (record_workers.py) ----------------------------------------------

    def _route_to_workers(self, stream_name: t.Any) -> None:
        """After a SCHEMA: let record workers process the stream's records past its first
        `RECORDS_BEFORE_WORKERS`, if they can."""
        if not isinstance(stream_name, str) or self._record_workers <= 0:
            return
        sink = self._plain_sink(stream_name)
        spec = None if sink is None else worker_spec(stream_name, sink, self.config)
        parallel = self._parallel
        if parallel is None:
            if spec is None or self._workers_unavailable:
                return  # no work for workers (yet): fork none
            with self.progress.paused():
                if not can_fork_workers():
                    self._workers_unavailable = True
                    self.logger.info(
                        "Processing records in the main process: record workers are forked "
                        "only while no other thread runs (%d run now)",
                        threading.active_count(),
                    )
                    return
                try:
                    parallel = self._start_record_workers()
                except RecordWorkersUnavailable as error:
                    self._workers_unavailable = True
                    self.stats.run_warning(
                        f"Record workers could not be started ({error}): records are "
                        "processed in the target's own process, more slowly. A limit on "
                        "processes or memory refused them (`ulimit -u`, a container's pids "
                        "limit, threads counting too; `ulimit -v`, strict overcommit): raise "
                        "it, or set record_workers to 0."
                    )
                    return
        if spec is not None and spec == self._routed_specs.get(stream_name):
            return  # the same SCHEMA again: the workers keep what they learned
        parallel.unroute(stream_name)
        self._routed_specs.pop(stream_name, None)
        if spec is not None:
            parallel.route(stream_name, spec, sink)
            self._routed_specs[stream_name] = spec

    def _start_record_workers(self) -> ParallelRecords:
        self._parallel = ParallelRecords(
            RecordWorkerPool(self._record_workers, on_lost=self.delivery.abort),
            number=self.ledger.issue,
            add_events=self._add_converted_records,
            add_tally=self.stats.records_converted,
            reprocess=self._reprocess_claimed_line,
        )
        self.message_reader.record_router = self._parallel
        self.logger.info(
            "Validating, mapping and hashing records in %s",
            counted(self._record_workers, "worker process", "worker processes"),
        )
        return self._parallel

    def _reprocess_claimed_line(self, line: Line, line_number: int, record_number: int) -> None:
        """A line a worker gave back: processed here, under the number it got when read."""
        self.ledger.preassign(record_number)
        try:
            self.message_reader.reprocess_line(line, line_number)
        except BaseException:
            self.ledger.take_back_preassigned()  # unsettled: no state passes this record
            raise
        if self.ledger.take_back_preassigned() is not None:
            # the line made no record (a record filtered out …): nothing to wait for
            self.ledger.settle((record_number,))

    def _add_converted_records(
        self,
        sink: EventSink,
        events: list[bytes],
        keys: list[dict[str, t.Any]],
        numbers: list[int],
    ) -> None:
        """Records a worker turned into events: batch them, draining each full batch."""
        self.progress.start()
        raw_events = [msgspec.Raw(event) for event in events]
        start = 0
        while start < len(raw_events):
            stop = start + max(1, sink.max_size - sink.current_size)
            sink.add_converted(raw_events[start:stop], keys[start:stop], numbers[start:stop])
            start = stop
            self._drain_if_full(sink)
        self._handle_max_record_age()
        self._after_message()

    def _process_plain_record(self, sink: EventSink, message_dict: dict, record: dict) -> None:
        """Target._process_record_message for a stream whose one stream map passes records
        through unchanged (see _remember_if_plain): the same steps in the same order, minus
        looking up and calling that map."""
        self._assert_line_requires(message_dict, requires=RECORD_KEYS)
        record = record.copy()
        context = sink._get_context(record)
        if sink.include_sdc_metadata_properties:
            sink._add_sdc_metadata_to_record(record, message_dict, context)
        else:
            sink._remove_sdc_metadata_from_record(record)
        sink._validate_and_parse(record)
        record = sink.preprocess_record(record, context)
        sink._singer_validate_message(record)
        sink.tally_record_read()
        sink.process_record(record, context)
        sink._after_process_record(context)
        self._drain_if_full(sink)
        self._handle_max_record_age()

    def _drain_if_full(self, sink: EventSink) -> None:
        """As the SDK's record path does after each record (same log line)."""
        if sink.is_full:
            self.logger.info(
                "Target sink for '%s' is full. Current size is '%s'. Draining...",
                sink.stream_name,
                sink.current_size,
            )
            self.drain_one(sink)

    def _process_state_message(self, message_dict: dict) -> None:
        self._assert_line_requires(message_dict, requires={"value"})
        state = message_dict["value"]
        if nests_deeper_than(state, MAX_STATE_NESTING):
            raise SingerInputError(
                f"Input line {self.message_reader.line_number}: the STATE's value nests arrays "
                f"and objects more than {MAX_STATE_NESTING} levels deep (a tap's bookmarks nest "
                "a few); check the tap's state."
            )
        if state != self._latest_state:
            self._latest_state = state
            self.ledger.register_state(state)
            self._partial_batches.state_received()
        self._after_message()

    def _process_activate_version_message(self, message_dict: dict) -> None:
        # singer-python taps send one before and after each table of a FULL_TABLE sync, for a
        # database target to delete the rows the new version lacks; the SDK would warn twice
        # for each, once wrongly (of metadata columns "added to the schema")
        if not self._noted_activate_version:
            self._noted_activate_version = True
            self.logger.info(
                "ACTIVATE_VERSION messages are ignored: events sent to Meta cannot be "
                "withdrawn, so rows a tap no longer has are not deleted there."
            )
        self._after_message()

    def _process_batch_message(self, message_dict: dict) -> None:
        """The records of the BATCH's files, each as the RECORD message holding it would be
        (batch_files.py); the files stay where the tap wrote them."""
        reader = self.message_reader
        batch = read_batch_message(message_dict, reader.line_number, self.mapper.stream_maps)
        record_head = batch.record_head
        with contextlib.closing(record_lines(batch, reader.line_number)) as lines:
            for record_line, place in lines:
                reader.process_batch_record(batch.stream, record_head, record_line, place)
        self._after_message()

    def _assert_line_requires(
        self, message_dict: dict, requires: set[str] | frozenset[str]
    ) -> None:
        # the SDK's own, which its message hooks call too, quotes the whole line
        assert_line_requires(message_dict, requires, self.message_reader.line_number)

    def _after_message(self) -> None:
        self.delivery.raise_if_failed()
        if self._state_write_wait() > 0:
            return  # a ready state waits: the next message after the interval, or a pause
        self._write_ready_state()

    def _state_write_wait(self) -> float:
        """Seconds before the reading thread may write a state line again."""
        since = time.monotonic() - self._last_state_write
        return self.state_write_min_interval_seconds - since

    def _send_all_batches(self) -> None:
        """Send every record read so far: the batches of every sink, full or not.

        Only between two input lines, never from a worker's answer being applied: flushing
        the workers there would apply later chunks before the rest of that one.
        """
        if self._parallel is not None:
            # records may still wait in a partial chunk (a stream seen rarely fills none) or
            # with the workers: into their sinks first, as without workers
            self._parallel.flush()
        while self._sinks_to_clear:
            # a sink a changed SCHEMA replaced gets no record any more: sent, its count
            # logged, let go (singer-sdk keeps it until its next drain of all, up to 5 min)
            retired = self._sinks_to_clear[0]
            self.drain_one(retired)
            retired.clean_up()
            del self._sinks_to_clear[0]
        for sink in self._sinks_active.values():
            self.drain_one(sink)

    def _handle_max_record_age(self) -> None:
        self._partial_batches.record_added()
        super()._handle_max_record_age()

    def _input_paused(self, wait_for_input: t.Callable[[float], bool]) -> None:
        """The tap sends nothing for now: finish what the workers hold; send half-full
        batches when a state waits for them (after the drain interval) or their oldest record
        is `max_batch_wait_seconds` old, and write a state held back by the write interval
        once it is over — unless input comes back first — rather than hold them until the
        tap goes on, which a log-based tap may not do for hours."""
        # progress lines from here on, also while a tap is quiet before its first record
        self.progress.start()
        if self._parallel is not None:
            self._parallel.flush()
        while True:
            self.delivery.raise_if_failed()
            now = time.monotonic()
            send_at = self._partial_batches.due_at()
            if send_at is not None and send_at <= now:
                self._partial_batches.send(now)
                continue
            # a ready state the write interval holds back (if input comes first, the next
            # message writes it; an acknowledgement writes its own at once)
            write_wait = self._state_write_wait() if self.ledger.has_ready_state() else None
            if write_wait is not None and write_wait <= 0:
                self._write_ready_state()
                continue
            waits = [] if send_at is None else [send_at - now]
            if write_wait is not None:
                waits.append(write_wait)
            if not waits or wait_for_input(min(waits)):
                return

    # --- state -----------------------------------------------------------------------------

    def _write_state_message(self, state: dict) -> None:
        # Called by drain_all with the latest state received, acknowledged or not.
        self._write_ready_state()

    def _write_ready_state(self) -> None:
        """Write the newest state whose records are all settled (main or callback thread)."""
        with self._state_lock:
            found, state = self.ledger.take_ready_state()
            if not found or (self._wrote_state and state == self._last_written_state):
                return
            # dead letters are settled records: they must be on disk before state passes them
            self.delivery.dead_letters.sync()
            if sys.stdout is None:  # started with it closed (`>&-`), or a host without one
                raise StateOutputClosed(
                    "Cannot write state: this process has no stdout (started with it closed, "
                    "or run in-process by a host without one, such as pythonw). Give it a "
                    "stdout to read state from, and rerun from the last state written."
                )
            try:
                sys.stdout.write(_state_encoder.encode(state).decode() + "\n")
                sys.stdout.flush()
            except OSError as error:
                raise StateOutputClosed(
                    f"Cannot write state to stdout ({error.strerror or error}): whoever reads "
                    "the target's state (Meltano, the pipe's next command) has stopped. Every "
                    "event up to the last state written is settled; rerun from that state."
                ) from None
            self._last_written_state = state
            self._wrote_state = True
            self._last_state_write = time.monotonic()

    # --- end of input ----------------------------------------------------------------------

    def process_endofpipe(self) -> None:
        try:
            self._finish_input()
        except TerminationRequested as stop:
            self._end_after_stop(stop.signum)
            raise
        except Exception as error:
            self._end_after_failure(error)
            raise

    def _finish_input(self) -> None:
        if self.message_reader.messages_read == 0:
            raise SingerInputError(
                f"No input: expected Singer messages (SCHEMA, RECORD, STATE) {self._input_place}"
            )
        if self._parallel is not None:
            # the reader gave them their last lines and took every answer back: stopped now,
            # one killed while Meta's last answers are awaited loses nothing to fail the run for
            self._parallel.close()
        self.drain_all(is_endofpipe=True)
        # a failure or a stop is looked for between short waits
        while not self.shutdown.wait_for_in_flight(timeout=SIGNAL_HEARD_WITHIN):
            self.delivery.raise_if_failed()
            self.message_reader.stop_if_requested()
        self.delivery.raise_if_failed()
        self._write_ready_state()
        # only for a whole input: a stopped run may not have reached an entry's stream yet
        for entry in unmatched_stream_entries(self.config, self._streams_seen):
            self.stats.run_warning(
                f"`streams` entry {entry!r} matched no stream of this run "
                f"(streams seen: {', '.join(map(repr, sorted(self._streams_seen))) or 'none'})."
            )
        self.close()

    def close(self) -> None:
        """Stop progress, close files and log the run summary (once)."""
        if self._closed:
            return
        self._closed = True
        if self._parallel is not None:
            self._parallel.close()
        self.progress.stop()
        # singer-sdk logs a stream's record_count when it cleans the stream up at the end of
        # the input (or every 60 s): a run that stops or fails before that logs the rest here
        for sink in [*self._sinks_to_clear, *self._sinks_active.values()]:
            if sink.record_counter_metric.value:
                sink.record_counter_metric.exit()
        # requests a failed or stopped run abandons are not retried once it has ended
        unsettled = self.delivery.unsettled_requests != 0
        self.delivery.processor.close(wait=not unsettled, cancel_retries=unsettled)
        if not unsettled:
            # else a request abandoned may still use its connection, and fail and wake the
            # reader (Delivery.fail)
            self.message_reader.close_wake_pipe()
            if self._own_http_service is not None:
                # a process running the target in its own would keep each run's connections
                # to Meta open until a garbage collection freed the run
                self._own_http_service.close()
        self.delivery.dead_letters.close()
        if self._dry_run_service is not None:
            self._dry_run_service.close()
        reader = self.message_reader
        if reader.lone_surrogates_replaced:
            self.stats.run_warning(
                f"Replaced {reader.lone_surrogates_replaced} lone UTF-16 surrogate(s) in input "
                "strings (an escape such as \\ud83d without the other half of its pair, e.g. "
                "an emoji cut in two) with U+FFFD, the replacement character; the first at "
                f"input line {reader.first_line_with_lone_surrogate}."
            )
        try:
            write_run_summary(self.stats, self.logger, self.config.get("summary_path"))
        finally:
            self.shutdown.release_signals(self._handle_termination)

    def _exiting_at_once(self, failure: str) -> None:
        """A second signal ends the process now, before close(): its summary file says so."""
        self.stats.run_failed(failure)
        summary_path = self.config.get("summary_path")
        if summary_path:
            with contextlib.suppress(SummaryWriteError):  # exiting now whatever happens
                write_summary_file_at_once(self.stats, self.logger, summary_path)

    # --- CLI -------------------------------------------------------------------------------

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """The SDK's handler of SIGTERM and SIGINT: see shutdown.py."""
        self.shutdown.signal_received(signum, frame)

    def run(self, file_input: t.IO[str] | None = None) -> int:
        """Read all input and return the exit code (0: done, every state written)."""
        name = getattr(file_input, "name", None)
        if isinstance(name, str) and name not in ("<stdin>", "-"):
            self._input_place = f"in {name}"
        try:
            self.listen(file_input)
        except TerminationRequested as stop:
            return self._end_after_stop(stop.signum)
        except Exception as error:
            self._end_after_failure(error)
            return 1
        return 0

    def _end_after_failure(self, error: Exception) -> None:
        """The run failed: no state from now on, the failure in the summary and last in the
        log, everything closed. Where it failed (the reader, the end of input), before
        `error` leaves `listen()`: a process running the target in its own and calling
        `listen()` gets the exception and no workers, threads or signal handlers left over."""
        if self._failed:
            return
        self._failed = True
        also = self._settle_requests_in_flight() if is_bad_input(error) else None
        self.ledger.poison()
        # one line, whatever the message (the SDK's own may span several)
        failure = one_line(describe_failure(error, self.message_reader))
        if also is not None:
            failure += f"; also: {one_line(str(also))}"
        failure = self.stats.run_failed(failure)
        try:
            self.close()
        except Exception as close_error:  # the failure below is the one to report
            self.logger.warning("Closing after the failure failed too: %s", close_error)
        # last, so that the line an operator reads first at the bottom says what failed
        self.logger.error("target-meta-capi failed: %s", failure)

    def _settle_requests_in_flight(self) -> Exception | None:
        """Bad input stopped reading: the requests already sent get the grace period a signal
        gives them, and the newest state their answers settle is written, so that the rerun
        after the input is fixed does not send them again. No request starts meanwhile.
        Returns a failure of the sending (an expired token, stdout closed), if one came
        meanwhile or just before the bad input was read."""
        delivery = self.delivery
        if delivery.failed:
            return delivery.failure  # no request is waited for
        if delivery.unsettled_requests:
            try:
                self.shutdown.grace_period(
                    "Stopped reading at bad input", self._grace_seconds, until_a_signal=True
                )
            except TerminationRequested:  # a signal asks to stop sooner
                return delivery.failure
        try:
            # also a state settled earlier that the write interval held back
            self._write_ready_state()
        except (StateOutputClosed, DeadLetterWriteError) as error:
            return error
        return delivery.failure

    @property
    def _grace_seconds(self) -> float:
        """How long requests in flight may take once reading stopped early."""
        return float(self.config.get("shutdown_grace_seconds", DEFAULT_SHUTDOWN_GRACE_SECONDS))

    def _end_after_stop(self, signum: int) -> int:
        """A signal stopped the run: the grace period, the state it settles, everything closed;
        the exit code. Where it stopped (the reader, the end of input), before
        `TerminationRequested` leaves `listen()`, as for a failure (`_end_after_failure`)."""
        if self._stop_exit_code is None:
            self._stop_exit_code = self._stop_after_signal(signum)
        return self._stop_exit_code

    def _stop_after_signal(self, signum: int) -> int:
        name = signal.Signals(signum).name
        stop = (
            f"Received {name} after the end of the input, while waiting for Meta's answers"
            if self.message_reader.input_ended
            else f"Received {name}: stopped before the end of the input"
        )
        self.stats.run_failed(stop)
        if self.shutdown.grace_period(f"Received {name}: stopped reading", self._grace_seconds):
            self._write_ready_state()
        elif self.delivery.failure is not None:
            # what cut the grace period short (stdout closed, a token expired), said once
            stop += f"; then {self.delivery.failure}"
            self.stats.run_failed(stop)
        try:
            self.close()
        except SummaryWriteError as error:  # a full disk, say: the stop still ends the run
            self.logger.error("%s", error)
        # last, as a failure's line: what an operator reads first at the bottom
        self.logger.error("%s", stop)
        return 128 + signum

    @classmethod
    def cb_config(
        cls, ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
    ) -> _ConfigInput:
        """The SDK's --config files, merged as it merges them (`read_config_files`), and
        whether the environment is read too (ENV)."""
        files = [path for path in value if path != "ENV"]
        try:
            config = read_config_files(files)
            if "ENV" in value:
                cls._refuse_environment_output_over(files, config)
        except ConfigFileError as error:
            raise click.BadParameter(str(error)) from None
        return _ConfigInput(config=config, parse_env="ENV" in value)

    @classmethod
    def _refuse_environment_output_over(
        cls, files: t.Sequence[str], config: t.Mapping[str, t.Any]
    ) -> None:
        """An output path the environment gives (TARGET_META_CAPI_SUMMARY_PATH …) that is one
        of the --config files is refused as one a file gives: the run would overwrite it."""
        schema = cls.settings_schema()
        if environment_setting_problem(schema, cls._env_var_prefix) is not None:
            return  # said by invoke(), which refuses the run for it
        settings = with_texts_parsed(schema, {**config, **cls._env_var_config})
        overwritten = output_over_config_file_problem(settings, files)
        if overwritten:
            raise ConfigFileError(overwritten)

    @classmethod
    def _write_refused_config_summary(
        cls, config: _ConfigInput, failure: str, errors: t.Sequence[str] = ()
    ) -> None:
        """A run refused at start-up writes its summary as a failed run does, where
        summary_path (from the files, or the environment read with --config ENV) says, unless
        that setting is what was refused."""
        settings = {**config.config, **(cls._env_var_config if config.parse_env else {})}
        summary_path = settings.get("summary_path")
        if not isinstance(summary_path, str) or not summary_path.strip():
            return
        if any("summary_path" in error for error in errors):
            return
        test_event_code = settings.get("test_event_code")
        write_refused_config_summary(
            failure,
            cls.logger,
            summary_path,
            # what the refused settings ask for, where a value of the right type says it
            dry_run=settings.get("dry_run") is True,
            test_events=isinstance(test_event_code, str) and bool(test_event_code),
        )

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
        set_up_log_output(cls.logger)
        cls.print_version(print_fn=cls.logger.info)
        tune_malloc()
        config = config or _ConfigInput()
        problem = (
            environment_setting_problem(cls.settings_schema(), cls._env_var_prefix)
            if config.parse_env
            else None
        )
        if problem is not None:
            failure = f"Configuration error: {one_line(problem)}"
            cls.logger.error("%s", failure)
            # the environment being what cannot be read, summary_path is taken from the files
            files_only = _ConfigInput(config=config.config, parse_env=False)
            cls._write_refused_config_summary(files_only, failure)
            flush_and_exit(1)
        try:
            target = cls(
                config=config.config, validate_config=True, parse_env_config=config.parse_env
            )
        except ConfigValidationError as error:
            # the SDK logs the errors as it catches this; they are the summary's failure too
            cls._write_refused_config_summary(
                config, f"{error}: {'; '.join(error.errors)}", error.errors
            )
            raise
        except CapiError as error:
            # an http_service_class naming no class quotes it, and it may be a pasted secret
            [clean] = without_secrets([one_line(str(error))], config.config)
            failure = f"Configuration error: {clean}"
            cls.logger.error("%s", failure)
            cls._write_refused_config_summary(config, failure)
            flush_and_exit(1)
        code = target.run(file_input)
        if code or target.delivery.unsettled_requests:
            # threads of abandoned requests would otherwise keep the process alive
            flush_and_exit(code)
