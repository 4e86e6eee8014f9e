"""Retry policy: exponential backoff with full jitter (`backoff`'s) for transient failures,
never sooner than an answer asked (Retry-After, Meta's estimated time to regain access)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import backoff

from ._hooks import notify
from .errors import ConfigurationError, DeliveryError, ThrottledError

if TYPE_CHECKING:
    from .request import RequestObserver

T = TypeVar("T")
#: The factor of the base delay stops doubling here (after 64 retries).
_MOST_DOUBLING = 2**64


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one request.

    The n-th retry waits a random time between 0 and min(max_delay, base * 2**(n-1)) seconds,
    where base is `throttle_base_delay` after a throttling error and `base_delay` otherwise;
    when the failed answer asked for a wait (Retry-After, or Meta's estimated time to regain
    access), that wait plus the random one (which may exceed max_delay). At most
    `max_retries` retries, and none that would start after `max_time` seconds: no wait goes
    past it, and an asked wait that would is not waited for at all (the error is raised at
    once).
    `give_up`, when set, vetoes retrying a retryable error (e.g. a refused connection before
    the endpoint ever answered: a wrong graph_url, not a passing outage); it is given only
    DeliveryErrors, the errors retried.
    """

    max_retries: int = 5
    max_time: float = 300.0
    base_delay: float = 0.5
    max_delay: float = 30.0
    throttle_base_delay: float = 5.0
    give_up: Callable[[DeliveryError], bool] | None = None

    def __post_init__(self) -> None:
        # backoff counts tries until they equal max_retries + 1: a fraction (or nan) never
        # does, and the request is retried until max_time is spent
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ConfigurationError("RetryPolicy.max_retries must be a whole number")
        if self.max_retries < 0:
            raise ConfigurationError("RetryPolicy.max_retries must not be negative")
        for name in ("max_time", "base_delay", "max_delay", "throttle_base_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigurationError(f"RetryPolicy.{name} must be a number of seconds")
            # nan fails both comparisons; an infinite wait is one time.sleep() cannot take
            if not 0 <= value < math.inf:
                raise ConfigurationError(f"RetryPolicy.{name} must not be negative or infinite")

    @staticmethod
    def is_retryable(error: BaseException) -> bool:
        """Transient, throttled and network errors are; auth and invalid requests never are."""
        return isinstance(error, DeliveryError) and error.retryable

    def _gives_up(self, error: DeliveryError, started: float) -> bool:
        if not self.is_retryable(error) or (self.give_up is not None and self.give_up(error)):
            return True
        # waiting as asked would pass max_time: a retry sooner would only be refused again
        if error.retry_after is None:
            return False
        error.wait_beyond_max_time = time.monotonic() - started + error.retry_after > self.max_time
        return error.wait_beyond_max_time

    def call(
        self,
        attempt: Callable[[], T],
        *,
        observer: RequestObserver | None = None,
        cancel: threading.Event | None = None,
    ) -> T:
        """Run `attempt` until it succeeds, fails for good, or retries run out.

        Once `cancel` is set, a wait to retry ends at once and no retry starts: the error
        that made it wait is raised, its `retries_cancelled` set.
        """
        started = time.monotonic()
        delays = self._delays()
        next(delays)
        try:
            tries = 0
            while True:
                tries += 1
                try:
                    return attempt()
                except DeliveryError as error:
                    failed = error
                elapsed = time.monotonic() - started
                if self._gives_up(failed, started):
                    raise failed
                if tries > self.max_retries or elapsed >= self.max_time:
                    failed.attempts = tries
                    failed.retry_time_ran_out = tries <= self.max_retries
                    raise failed
                if cancel is not None and cancel.is_set():
                    failed.retries_cancelled = True
                    raise failed
                delay = min(delays.send(failed), self.max_time - elapsed)
                if observer is not None:
                    notify(observer, "on_retry", failed, tries, delay)
                # an Event's wait, unlike time.sleep, ends the moment the event is set
                if cancel is None:
                    time.sleep(delay)
                elif cancel.wait(delay):
                    failed.retries_cancelled = True
                    raise failed
                # The error's traceback holds this frame: kept in it, both would wait for the
                # garbage collector, whose pauses under 200 sending threads made them return
                # all at once (several times the connections the pool keeps).
                del failed
        finally:
            delays.close()  # its frame holds the last error too

    def _delays(self) -> Generator[float, Any, None]:
        # call() sends the exception that failed the attempt, so the throttling base can
        # apply to exactly the retries that follow a throttling error
        # capped: base * 2**1024 is past a float (OverflowError), which a long outage reached
        # when max_retries and max_retry_seconds allowed that many; max_delay is far lower
        doublings = backoff.expo(max_value=_MOST_DOUBLING)
        next(doublings)
        error = yield 0.0  # primed by call() before the first attempt
        while True:
            throttled = isinstance(error, ThrottledError)
            base = self.throttle_base_delay if throttled else self.base_delay
            delay = backoff.full_jitter(min(self.max_delay, base * next(doublings)))
            asked = error.retry_after
            # on top of the wait asked, not in it: every request throttled at once is asked
            # the same wait, and would come back at one instant to be throttled again
            error = yield delay if asked is None else asked + delay
