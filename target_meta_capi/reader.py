"""Reads Singer messages from stdin, counting lines so that every error can name its line.

Error messages never quote a line: it may hold customer data.
"""

from __future__ import annotations

import decimal
import io
import sys
import typing as t
from collections import Counter, defaultdict

import msgspec
from singer_sdk.io_base import GenericSingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine

# floats as Decimal, as the SDK's own reader does: money keeps its digits
input_decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)
# Singer lines are UTF-8 JSON: stdin is read as bytes, which msgspec decodes as they are, so
# no line is decoded to text and encoded back (for the record workers, twice). Its buffer is
# 1 MB: stdin's own reads 8 KB at a time, each read lets the sending threads take the GIL and
# the reading thread wait for it back. A read still returns what a pipe holds without waiting.
_INPUT_BUFFER_BYTES = 1 << 20

#: A line of input: bytes from stdin, or text from a file object given instead.
Line: t.TypeAlias = "bytes | str"


class SingerInputError(InvalidInputLine):
    """The input is not a valid Singer message stream; the message names the line."""


class RecordRouter(t.Protocol):
    """Claims RECORD lines to process them elsewhere; gives back, in input order, what it
    cannot process (`NumberedSingerReader.reprocess_line`)."""

    def claim(self, line: Line, line_number: int) -> bool:
        """Take this line (True), or leave it to the reader (False)."""

    def flush(self) -> None:
        """Finish every claimed line: the reader is about to process a line itself."""


class NumberedSingerReader(GenericSingerReader[str]):
    """Reads Singer messages with msgspec, counting lines so every error can name its line.

    Blank lines are skipped. Error messages never quote the line: it may hold customer data.
    """

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.messages_read = 0
        self.current_stream: str | None = None
        #: Takes RECORD lines to process elsewhere (record_workers.py), or None.
        self.record_router: RecordRouter | None = None
        self._callbacks: dict[str, t.Callable[[dict], None]] = {}

    @property
    def default_input(self) -> t.IO[t.Any]:
        stdin = sys.stdin
        try:
            descriptor = stdin.fileno()
        except (AttributeError, OSError, ValueError):  # replaced by an object without a file
            return stdin
        # lines end at b"\n" only, nothing translated: as sys.stdin's newline handling
        return io.BufferedReader(
            io.FileIO(descriptor, "rb", closefd=False), buffer_size=_INPUT_BUFFER_BYTES
        )

    def deserialize_json(self, line: Line) -> dict:  # type: ignore[override]
        try:
            message = input_decoder.decode(line)
        except msgspec.DecodeError as error:
            raise SingerInputError(
                f"Input line {self.line_number} is not valid JSON ({error})"
            ) from None
        except UnicodeDecodeError as error:  # the message quotes a byte, nothing more
            raise SingerInputError(
                f"Input line {self.line_number} is not valid JSON: it is not UTF-8 ({error.reason} "
                f"at byte {error.start})"
            ) from None
        if not isinstance(message, dict):
            raise SingerInputError(
                f"Input line {self.line_number} is not a Singer message (a JSON object)"
            )
        return message

    def process_lines(
        self,
        file_input: t.IO[t.Any] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        self._callbacks = callbacks
        counts: dict[str, int] = defaultdict(int)
        for line in file_input or self.default_input:
            self.line_number += 1
            if not line or line.isspace():  # as `not line.strip()`, without copying the line
                continue
            router = self.record_router
            if router is not None:
                if router.claim(line, self.line_number):
                    self.messages_read += 1
                    counts["RECORD"] += 1
                    continue
                router.flush()  # what it holds comes before this line
            counts[self._process_line(line)] += 1
            self.messages_read += 1
        if self.record_router is not None:
            self.record_router.flush()
        return Counter(counts)

    def reprocess_line(self, line: Line, line_number: int) -> None:
        """Process a line the record router claimed and gives back, as if read now.

        An error then names that line; otherwise reading goes on where it was.
        """
        reading_at = self.line_number
        self.line_number = line_number
        self._process_line(line)
        self.line_number = reading_at

    def _process_line(self, line: Line) -> str:
        message = self.deserialize_json(line)
        message_type = message.get("type")
        callback = self._callbacks.get(message_type) if isinstance(message_type, str) else None
        if callback is None:
            raise SingerInputError(
                f"Input line {self.line_number} has unknown message type "
                f"{message_type!r} (expected SCHEMA, RECORD or STATE)"
            )
        stream = message.get("stream")
        self.current_stream = stream if isinstance(stream, str) else None
        callback(message)
        return message_type
