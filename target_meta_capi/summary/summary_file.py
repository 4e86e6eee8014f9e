"""The summary file written safely: beside its target and renamed over it (never through a
file or symlink found at the temporary name), or appended to a FIFO, a device or this process's
own stdout or stderr, which a rename would cut off."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time
from pathlib import Path


class NoReaderError(OSError):
    """A FIFO has no reader: writing to it would wait for one, at the end of a finished run."""


class SummaryWriteError(Exception):
    """The summary_path file cannot be written; the message names it (a bare OSError would
    not say which file of the run failed)."""


def summary_file_target(path: Path) -> Path | None:
    """The file a summary written to `path` replaces: `path`, or the file its symlinks lead to
    (which need not exist yet); None when the summary is written into `path` as it is.

    Written in place: a FIFO or a device (/dev/stderr in a container), whose node (or the
    symlink to it) a rename would replace, and a file this process's stdout or stderr writes
    to (/dev/stderr redirected to a log), which a rename would cut off from them.
    """
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        status = None
    if status is not None and (not stat.S_ISREG(status.st_mode) or standard_outputs_to(status)):
        return None
    return path.resolve()


def write_summary_file(path: Path, text: str) -> None:
    """Write the run summary to `path` (see `summary_file_target`)."""
    target = summary_file_target(path)
    if target is None:
        # appended: a log, or the states already written to stdout, keep what they hold
        descriptor = open_for_appending(path)
        with open(descriptor, "a", encoding="utf-8") as file:
            file.write(text)
        return
    # written beside the file and renamed over it: a reader never sees half a summary
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{secrets.token_hex(8)}.partial")
    # created, never opened as found: a file or symlink already at a name known in advance
    # (left there, or planted in a shared directory such as /tmp) would be written through,
    # the file a symlink points to overwritten; a new file's mode is the umask's
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(descriptor, "w", encoding="utf-8") as file:
            # the file replaced keeps its permissions (one made 0600 stays private)
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(file.fileno(), stat.S_IMODE(target.stat().st_mode))
            file.write(text)
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


#: How long a summary (or dead letter) waits for a FIFO's reader to open it.
FIFO_READER_WAIT_SECONDS = 2.0


def open_for_appending(path: Path) -> int:
    """A descriptor appending to `path`, opened without blocking: for a FIFO, a reader is
    waited for a little, never forever (NoReaderError). Writes to it block, so that a slow
    reader still gets all of them."""
    deadline = time.monotonic() + FIFO_READER_WAIT_SECONDS
    while True:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
            os.set_blocking(descriptor, True)
            return descriptor
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: a FIFO without a reader
                raise
            if time.monotonic() >= deadline:
                raise NoReaderError(error.errno, error.strerror, str(path)) from None
            time.sleep(0.01)


def standard_outputs_to(status: os.stat_result) -> set[int]:
    """Which of this process's stdout (1) and stderr (2) write to the file `status` is of."""
    descriptors = set()
    for descriptor in (1, 2):
        try:
            output = os.fstat(descriptor)
        except OSError:  # closed
            continue
        if (output.st_dev, output.st_ino) == (status.st_dev, status.st_ino):
            descriptors.add(descriptor)
    return descriptors
