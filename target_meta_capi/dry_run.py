"""Dry run: an HTTP service that writes each request body as a JSON line and answers success.

Everything before the wire (mapping, hashing, validation, batching, bisection) runs as usual,
nothing is sent, and the target writes state as if Meta had acknowledged every request.
The access token and appsecret_proof are removed from what is written, and so are the user_data
values sent unhashed (IP address, user agent...), customer information a mapping puts
outside user_data and custom_data's custom properties: masked, as in dead letters; and so are
the userinfo, query and fragment of the URL (from graph_url).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from target_meta_capi.capi.errors import ConfigurationError
from target_meta_capi.capi.http import HttpResponse, HttpServiceInterface
from target_meta_capi.capi.privacy import shown_event, shown_url
from target_meta_capi.summary.summary_file import (
    FIFO_READER_WAIT_SECONDS,
    NoReaderError,
    open_for_appending,
    standard_outputs_to,
)

# EventRequest insists on a token; this one never leaves. Errors mask a token wherever it
# is (a short one where it stands alone): this one is in no path or message, so that a
# dry_run_path such as out/dry-run.jsonl stays readable in one.
DRY_RUN_ACCESS_TOKEN = "no-token-in-a-dry-run"
_SECRET_PARAMETERS = ("access_token", "appsecret_proof")


class DryRunWriteError(Exception):
    """The payloads cannot be written (a disk full): not a network error, so not retried."""


class DryRunHttpService(HttpServiceInterface):
    """Writes `{"url": ..., "payload": {...}}` lines to a file (replaced per run) or stderr."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._path = Path(path) if path else None
        if self._path is None and sys.stderr is None:
            # found before a record is read, not as the first request "fails for good"
            raise ConfigurationError(
                "dry_run without dry_run_path writes the request payloads to stderr, and this "
                "process has none (started with it closed, `2>&-`): set dry_run_path"
            )
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._masked_fields: frozenset[tuple[str, ...]] = frozenset()
        self._write_failed = False

    def mask_fields(self, paths: Iterable[tuple[str, ...]]) -> None:
        """Mask these event paths from now on, besides user_data's unhashed values: a stream's
        mapping puts customer information there (a request does not say its stream)."""
        with self._lock:
            self._masked_fields |= set(paths)

    def execute(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float | None,
    ) -> HttpResponse:
        payload = json.loads(body)
        for name in _SECRET_PARAMETERS:
            payload.pop(name, None)
        masked_fields = self._masked_fields
        payload["data"] = [shown_event(event, masked_fields) for event in payload["data"]]
        line = json.dumps({"url": shown_url(url), "payload": payload}, ensure_ascii=False)
        with self._lock:
            try:
                output = self._output()
                output.write(line + "\n")
                output.flush()
            except OSError as error:
                self._write_failed = True
                reason = (
                    f"a FIFO nobody reads within {FIFO_READER_WAIT_SECONDS:g} s"
                    if isinstance(error, NoReaderError)
                    else error.strerror or error
                )
                if self._path is None:
                    raise DryRunWriteError(
                        f"Cannot write the dry run's payloads to stderr: {reason}; set "
                        "dry_run_path to write them to a file, then rerun from the last state"
                    ) from None
                raise DryRunWriteError(
                    f"Cannot write dry_run_path {self._path}: {reason}; free space or fix "
                    "dry_run_path, then rerun from the last state"
                ) from None
        answer = {"events_received": len(payload["data"]), "messages": [], "fbtrace_id": None}
        return HttpResponse(200, {"Content-Type": "application/json"}, json.dumps(answer).encode())

    def _output(self) -> IO[str]:
        # callers hold self._lock
        if self._path is None:
            return sys.stderr
        if self._file is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            try:
                status = os.stat(self._path)
            except FileNotFoundError:
                status = None
            if status is None or (stat.S_ISREG(status.st_mode) and not standard_outputs_to(status)):
                self._file = self._path.open("w", encoding="utf-8")
            else:
                # a FIFO without a reader: never an open() that waits for one without end;
                # the log stderr goes to (2> run.log): added to, never emptied
                descriptor = open_for_appending(self._path)
                self._file = open(descriptor, "w", encoding="utf-8")  # noqa: SIM115  # kept open
        return self._file

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                file, self._file = self._file, None
                try:
                    file.close()
                except OSError:
                    # the failed write's line is still in the buffer: its error is reported
                    if not self._write_failed:
                        raise
