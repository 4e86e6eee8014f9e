"""Log lines go to stderr, one line per event, whatever logging config the operator gives.

stdout carries the target's state only: whoever runs the target records its last line as the
state to resume from (Meltano parses each line as one), so a log line there corrupts it. A
`SINGER_SDK_LOG_CONFIG` file can point a handler at stdout (`stream: ext://sys.stdout`, as
the examples of Python's logging documentation do, or a file handler at `/dev/stdout`).

Log shippers (Kubernetes', Meltano's without structured logging) take each line for an event.
singer-sdk logs Python's warnings (its own: on Python 3.10 since October 2026, one at every
start that this Python reached its end of life) as `warnings` formats them, in three lines:
the message, the line of code that warned, an empty line.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys
import warnings
from typing import Any

STDOUT_HANDLER_WARNING = (
    "A logging handler of SINGER_SDK_LOG_CONFIG writes to stdout, which carries the target's "
    "state only: its log lines go to stderr instead. Set its stream to ext://sys.stderr, or "
    "give it a file of its own."
)


def set_up_log_output(logger: logging.Logger) -> None:
    """Keep log lines off stdout, and a warning of Python's in one line."""
    warnings.formatwarning = _one_line_warning
    _keep_logs_off_stdout(logger)


def one_line(text: str) -> str:
    """A message as one log line: what a message of singer-sdk's, Python's or a custom HTTP
    service's says on several lines, on one."""
    return " ".join(text.splitlines())


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    return f"{category.__name__}: {one_line(str(message))} ({filename}:{lineno})"


def _keep_logs_off_stdout(logger: logging.Logger) -> None:
    """Turn every handler writing to stdout to stderr, and say so once."""
    stdout_file = _file_of_descriptor(1)
    # stdout and stderr on one file (a terminal, `2>&1`): logs share it by the operator's choice
    if stdout_file == _file_of_descriptor(2):
        stdout_file = None
    moved = False
    replacements: dict[logging.Handler, logging.Handler] = {}

    def off_stdout(handler: logging.Handler) -> logging.Handler:
        """The handler, turned to stderr, or the stderr handler replacing it."""
        nonlocal moved
        if isinstance(handler, logging.FileHandler):
            if handler not in replacements and _is_stdout_file(handler, stdout_file):
                replacements[handler] = _stderr_handler_like(handler)
                handler.close()  # its own descriptor on the file, not stdout's
            if handler in replacements:
                moved = True
                return replacements[handler]
        elif isinstance(handler, logging.StreamHandler) and _is_stdout(handler.stream, stdout_file):
            handler.setStream(sys.stderr)
            moved = True
        # a handler passing records on to another the file names (dictConfig's `target`)
        if isinstance(handler, logging.handlers.MemoryHandler) and handler.target is not None:
            handler.target = off_stdout(handler.target)
        return handler

    for owner in _loggers():
        owner.handlers[:] = [off_stdout(handler) for handler in owner.handlers]
    if moved:
        logger.warning(STDOUT_HANDLER_WARNING)


def _loggers() -> list[logging.Logger]:
    return [logging.getLogger()] + [
        each
        for each in logging.Logger.manager.loggerDict.values()
        if isinstance(each, logging.Logger)
    ]


def _is_stdout(stream: Any, stdout_file: tuple[int, int] | None) -> bool:
    """sys.stdout by any name (ext://sys.__stdout__ too), or a stream on file descriptor 1 or
    on another descriptor of stdout's file."""
    if stream is None:  # no stream at all (a Python without stdout has sys.stdout None)
        return False
    if stream is sys.stdout or stream is sys.__stdout__:
        return True
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
    return bool(descriptor == 1) or (
        stdout_file is not None and _file_of_descriptor(descriptor) == stdout_file
    )


def _file_of_descriptor(descriptor: int) -> tuple[int, int] | None:
    try:
        status = os.fstat(descriptor)
    except OSError:  # closed
        return None
    return status.st_dev, status.st_ino


def _is_stdout_file(handler: logging.FileHandler, stdout_file: tuple[int, int] | None) -> bool:
    """A file handler's file is stdout's: /dev/stdout, /proc/self/fd/1, or the very file
    stdout was redirected to. Opened already or on first use (`delay`) alike."""
    if stdout_file is None:
        return False
    try:
        status = os.stat(handler.baseFilename)
    except (OSError, ValueError):  # not there yet: a log file of its own
        return False
    return (status.st_dev, status.st_ino) == stdout_file


def _stderr_handler_like(handler: logging.Handler) -> logging.Handler:
    stderr_handler = logging.StreamHandler(sys.stderr)
    stderr_handler.setLevel(handler.level)
    stderr_handler.setFormatter(handler.formatter)
    for each in handler.filters:
        stderr_handler.addFilter(each)
    return stderr_handler
