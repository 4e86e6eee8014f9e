"""Log lines go to stderr, one line per event, whatever logging config the operator gives.

stdout carries the target's state only: whoever runs the target records its last line as the
state to resume from (Meltano parses each line as one), so a log line there corrupts it. A
`SINGER_SDK_LOG_CONFIG` file can point a handler at stdout (`stream: ext://sys.stdout`, as
the examples of Python's logging documentation do).

Log shippers (Kubernetes', Meltano's without structured logging) take each line for an event.
singer-sdk logs Python's warnings (its own: on Python 3.10 since October 2026, one at every
start that this Python reached its end of life) as `warnings` formats them, in three lines:
the message, the line of code that warned, an empty line.
"""

from __future__ import annotations

import io
import logging
import sys
import warnings
from typing import Any

STDOUT_HANDLER_WARNING = (
    "A logging handler of SINGER_SDK_LOG_CONFIG writes to stdout, which carries the target's "
    "state only: its log lines go to stderr instead. Set its stream to ext://sys.stderr."
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
