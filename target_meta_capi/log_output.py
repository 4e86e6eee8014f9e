"""Log lines go to stderr, whatever logging config the operator gives the SDK.

stdout carries the target's state only: whoever runs the target records its last line as the
state to resume from (Meltano parses each line as one), so a log line there corrupts it. A
`SINGER_SDK_LOG_CONFIG` file can point a handler at stdout (`stream: ext://sys.stdout`, as
the examples of Python's logging documentation do).
"""

from __future__ import annotations

import io
import logging
import sys
from typing import Any

STDOUT_HANDLER_WARNING = (
    "A logging handler of SINGER_SDK_LOG_CONFIG writes to stdout, which carries the target's "
    "state only: its log lines go to stderr instead. Set its stream to ext://sys.stderr."
)


def keep_logs_off_stdout(logger: logging.Logger) -> None:
    """Turn every handler writing to stdout to stderr, and say so once."""
    moved = False
    for handler in _handlers():
        if isinstance(handler, logging.StreamHandler) and _is_stdout(handler.stream):
            handler.setStream(sys.stderr)
            moved = True
    if moved:
        logger.warning(STDOUT_HANDLER_WARNING)


def _handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger()] + [
        each
        for each in logging.Logger.manager.loggerDict.values()
        if isinstance(each, logging.Logger)
    ]
    return [handler for each in loggers for handler in each.handlers]


def _is_stdout(stream: Any) -> bool:
    """sys.stdout by any name (ext://sys.__stdout__ too), or a stream on file descriptor 1."""
    if stream is None:  # a FileHandler opened on first use
        return False
    if stream is sys.stdout or stream is sys.__stdout__:
        return True
    try:
        return bool(stream.fileno() == 1)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
