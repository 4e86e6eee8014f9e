"""Calling a RequestObserver's hooks: metrics code must not decide a request's outcome."""

from __future__ import annotations

import logging
from typing import Any

#: asked for when there is something to say: a logger that exists when an application calls
#: logging.config.dictConfig is disabled by it, unless the application says otherwise
_LOGGER_NAME = "target_meta_capi.capi"


def notify(observer: Any, hook: str, *args: Any) -> None:
    """Call `observer.<hook>(*args)`. An exception it raises is logged and goes no further:
    raised, it would fail a request Meta accepted (sent again, it would be counted twice) or
    stop a retry that could still succeed."""
    try:
        getattr(observer, hook)(*args)
    except Exception:
        # its arguments are counts, a status, a delay and an error already free of the token
        # and event data; only a message of the observer's own making comes with the trace
        logging.getLogger(_LOGGER_NAME).warning(
            "%s.%s raised; the request goes on as if it had not",
            type(observer).__name__,
            hook,
            exc_info=True,
        )
