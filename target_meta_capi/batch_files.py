"""BATCH messages: the records of a tap's batch files, read as the RECORD messages they replace.

singer-sdk taps given a `batch_config` write a stream's records to files (JSON Lines, one record
per line) and send a BATCH message naming them (its `manifest`) where they would have sent
RECORD messages. Each line of each file is processed as the RECORD message holding its record
would be (reader.py `process_batch_record`): validated, mapped, dead-lettered, counted, by the
record workers or not, and numbered in the ack ledger as it is read, so that a STATE after the
BATCH is written only once every one of its records is settled. The files are read a line at a
time (a file of a million records is never held in memory whole) and left where they are: they
are the tap's to delete.

What this target cannot read is refused at the BATCH, before any of its records is processed: a
format other than jsonl, a compression other than gzip or none, a file not on this machine (an
s3:// root, say).

singer-sdk 0.54 compresses its jsonl files with gzip whatever its `compression` says: a file is
read as gzip when it starts as one, as plain text otherwise.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import typing as t
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from target_meta_capi.capi._words import json_kind, shown_json
from target_meta_capi.messages import stream_name_problem
from target_meta_capi.reader import SingerInputError, assert_line_requires
from target_meta_capi.record_workers import record_line_prefixes

SUPPORTED = (
    "jsonl files, gzip-compressed or not, on this machine's filesystem (a file:// URL or a path)"
)
BATCH_KEYS = frozenset({"stream", "encoding", "manifest"})
_COMPRESSIONS = (None, "none", "gzip")
_GZIP_MAGIC = b"\x1f\x8b"


class RecordInBatchFile(int):
    """Where a record of a batch file was read: the BATCH message's input line, as a number,
    which every error naming a record's input line formats as that line, the file and the
    record's line in the file."""

    file: str
    line: int

    def __new__(cls, input_line: int, file: str, line: int) -> RecordInBatchFile:
        place = super().__new__(cls, input_line)
        place.file = file
        place.line = line
        return place

    def __format__(self, format_spec: str) -> str:
        return f"{int(self)} (line {self.line} of BATCH file {self.file})"

    def __str__(self) -> str:
        return self.__format__("")


@dataclass(frozen=True)
class BatchMessage:
    """A BATCH message this target can read: its stream and its files, as the manifest names
    them and as paths."""

    stream: str
    files: tuple[tuple[str, str], ...]

    @property
    def record_head(self) -> bytes:
        """How a singer-sdk tap's RECORD line of the stream starts."""
        return record_line_prefixes(self.stream)[0].encode()


def read_batch_message(
    message: dict[str, t.Any], input_line: int, streams: t.Container[str]
) -> BatchMessage:
    """The message's stream (one of `streams`, those with a SCHEMA) and files, or an error
    naming the line and what is wrong or not supported, before any file is read."""
    assert_line_requires(message, BATCH_KEYS, input_line)
    stream = message["stream"]
    if stream_problem := stream_name_problem(stream):
        raise SingerInputError(f"Input line {input_line}, BATCH message: {stream_problem}")
    where = f"Input line {input_line}, BATCH message of stream {stream!r}"
    if stream not in streams:
        raise SingerInputError(f"{where}: no SCHEMA message of the stream came before it")
    encoding, manifest = message["encoding"], message["manifest"]
    if not isinstance(encoding, dict):
        raise SingerInputError(f"{where}: 'encoding' is {json_kind(encoding)}, not a JSON object")
    file_format, compression = encoding.get("format"), encoding.get("compression")
    if file_format != "jsonl" or compression not in _COMPRESSIONS:
        raise SingerInputError(
            f"{where}: its files' format {shown_json(file_format)} with compression "
            f"{shown_json(compression)} "
            f"cannot be read; supported are {SUPPORTED}. Set the tap's batch_config encoding "
            'to {"format": "jsonl", "compression": "gzip"}, or leave batch_config out.'
        )
    if not isinstance(manifest, list) or not all(isinstance(url, str) for url in manifest):
        raise SingerInputError(f"{where}: 'manifest' is not an array of file URLs")
    return BatchMessage(stream, tuple((url, _local_path(url, where)) for url in manifest))


def _local_path(url: str, where: str) -> str:
    """The path of a file:// URL or of a path; an error for a file elsewhere."""
    parts = urlsplit(url)
    if parts.scheme == "":
        return url
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        # all after the host: singer-sdk writes the file's name unescaped, so a "#" or "?" of
        # a stream's name is part of the path, never a fragment or a query
        return _existing_path(url.split(":", 1)[1].removeprefix("//" + parts.netloc))
    raise SingerInputError(
        f"{where}: file {url} is not on this machine's filesystem; supported are {SUPPORTED}. "
        "Set the tap's batch_config storage root to a local directory (file:///tmp/batches), "
        "or leave batch_config out."
    )


def _existing_path(written: str) -> str:
    """The path a file:// URL's path names. singer-sdk escapes the root a tap gives as a
    plain path (a space as %20) but not one given as a file:// URL, nor the stream's name in
    the file's: a "%41" may be three characters of the name. So the path as written when only
    it names a file; unescaped otherwise."""
    unescaped = unquote(written)
    if unescaped != written and not os.path.exists(unescaped) and os.path.exists(written):
        return written
    return unescaped


def record_lines(batch: BatchMessage, input_line: int) -> Generator[tuple[bytes, int], None, None]:
    """Each record line of the batch's files, in order, and where it was read; an error
    naming the file if one cannot be read whole."""
    for url, path in batch.files:
        line_number = 0
        try:
            with _open(path) as file:
                for line_number, line in enumerate(file, start=1):
                    if line.isspace():
                        continue
                    yield line.rstrip(b"\r\n"), RecordInBatchFile(input_line, url, line_number)
        except (OSError, EOFError, zlib.error) as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            after = f" after its line {line_number}" if line_number else ""
            raise SingerInputError(
                f"Input line {input_line}, BATCH message of stream {batch.stream!r}: cannot "
                f"read file {url}{after} ({reason})"
            ) from None


@contextlib.contextmanager
def _open(path: str) -> Iterator[t.IO[bytes]]:
    """The file, decompressed when it is gzip."""
    with open(path, "rb") as raw:
        if raw.peek(len(_GZIP_MAGIC))[: len(_GZIP_MAGIC)] == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield t.cast(t.IO[bytes], unzipped)
        else:
            yield raw
