"""Stopping on SIGTERM/SIGINT: the stop request, the grace period, and exiting at once.

The first signal stops reading only where nothing is half done (see `TerminationRequested`
in reader.py) and starts no more requests (`Delivery.stop_sending`); the requests in flight
then get a grace period (`shutdown_grace_seconds`) for Meta's answers, whose state is written.
A second signal ends the run at once. The main thread waits in short waits, so that a signal
is heard within `SIGNAL_HEARD_WITHIN` seconds. At the end of the run the signals go back to
the handlers they had before it (`Shutdown.release_signals`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import typing as t
from types import FrameType

from target_meta_capi.capi._words import counted
from target_meta_capi.delivery import Delivery
from target_meta_capi.reader import NumberedSingerReader, TerminationRequested

_CONDITION_WAITS = (threading.Condition.wait.__code__, threading.Condition.wait_for.__code__)
_WAIT_FOR_ANSWERS = Delivery.wait.__code__
#: A signal of another kind this soon after the first is the same request to stop.
SAME_STOP_SECONDS = 1.0
#: The longest the main thread waits in one go while a signal may come to stop it.
SIGNAL_HEARD_WITHIN = 0.1
#: The signals a run handles (singer-sdk installs its handler of them as the target is made).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: The longest a second signal's exit waits for the run's last words (its summary file): the
#: thread the signal interrupted may hold a lock they need.
LAST_WORDS_SECONDS = 2.0


class Shutdown:
    """A run's stop: its first signal, the wait for requests in flight, a second signal."""

    def __init__(
        self,
        delivery: Delivery,
        reader: NumberedSingerReader,
        logger: logging.Logger,
        last_words: t.Callable[[str], None] | None = None,
    ) -> None:
        """`last_words(failure)`: what the run writes before a second signal ends it at once
        (its summary, which must not keep the previous run's, maybe a success)."""
        self._delivery = delivery
        self._reader = reader
        self._logger = logger
        self._last_words = last_words
        # the first SIGTERM/SIGINT and when it came
        self._stop_signal: tuple[int, float] | None = None
        # What handled them before the run took them. A process running the target in its
        # own (an orchestrator, a notebook, a test) gets them back at the end of the run:
        # else its Ctrl-C would reach the finished run, and a second one end it at once.
        self._previous_handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def release_signals(self, handler: t.Callable[[int, FrameType | None], None]) -> None:
        """Give SIGINT and SIGTERM back to the handlers they had before `handler` took them,
        where it still handles them (a signal whose handler was set after it stays as set)."""
        if threading.current_thread() is not threading.main_thread():
            return  # no handler was installed from here (only the main thread may)
        for signum, previous in self._previous_handlers.items():
            # None: a handler not set from Python, which Python cannot set back
            if previous is not None and signal.getsignal(signum) == handler:
                signal.signal(signum, previous)

    def signal_received(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler's work; `frame` is where the main thread was interrupted."""
        if self._stop_signal is not None:
            first, at = self._stop_signal
            if signum != first and time.monotonic() - at < SAME_STOP_SECONDS:
                # Ctrl-C reaches Meltano and the target alike, and Meltano then sends SIGTERM:
                # one request to stop, whose grace period still holds
                self._logger.info(
                    "Received %s too, right after %s: the same stop",
                    signal.Signals(signum).name,
                    signal.Signals(first).name,
                )
                return
            # a second signal: stop waiting for requests in flight
            name = signal.Signals(signum).name
            self._logger.error("Received %s again: exiting now", name)
            if self._last_words is not None:
                writing = threading.Thread(
                    target=self._last_words,
                    args=(f"Received {name} again: exited at once",),
                    daemon=True,
                )
                writing.start()
                writing.join(LAST_WORDS_SECONDS)
            flush_and_exit(128 + signum)
        self._stop_signal = (signum, time.monotonic())
        if _waiting_for_answers(frame):
            raise TerminationRequested(signum)
        self._delivery.stop_sending(signum)
        self._reader.request_stop(signum)

    def wait_for_in_flight(self, timeout: float, *, until_a_signal: bool = False) -> bool:
        """Wait until every request is settled; False on a failure or after `timeout`.
        `until_a_signal`: a stop a signal asks for raises TerminationRequested.

        In waits of at most a tenth of a second: a signal landing just as a long wait begins
        can go unheard until the wait ends (seen on Python 3.13, where a second SIGTERM in
        the grace period waited for Meta's answer instead of ending the run at once).
        """
        deadline = time.monotonic() + timeout
        while not self._delivery.wait(
            min(SIGNAL_HEARD_WITHIN, max(0.0, deadline - time.monotonic()))
        ):
            if until_a_signal:
                self._reader.stop_if_requested()
            if self._delivery.failed or time.monotonic() >= deadline:
                return False
        return True

    def grace_period(self, stopped: str, grace: float, *, until_a_signal: bool = False) -> bool:
        """After reading `stopped` (why, for the log): wait up to `grace` seconds for the
        requests in flight; True when every one was answered, so that the state they settled
        may be written. `until_a_signal`: as for `wait_for_in_flight` (not after a signal's own
        stop, which a second signal ends by exiting at once)."""
        self._logger.warning(
            "%s; waiting up to %g s for %s in flight",
            stopped,
            grace,
            counted(self._delivery.unsettled_requests, "request"),
        )
        if self.wait_for_in_flight(timeout=grace, until_a_signal=until_a_signal):
            return True
        # else a failure ended the wait (a state that could not be written, an error answer):
        # the caller reports it, and no request need be in flight any more
        if not self._delivery.failed:
            self._logger.error(
                "Requests still in flight were abandoned; their state is not written"
            )
        return False


def _waiting_for_answers(frame: FrameType | None) -> bool:
    """The main thread is blocked in Delivery.wait, where nothing is half done. Any other
    wait (a sending thread being started, say) goes on: the reader stops at its next line
    and the window at its next request (Delivery.stop_sending)."""
    while frame is not None and frame.f_code in _CONDITION_WAITS:
        frame = frame.f_back
    return frame is not None and frame.f_code is _WAIT_FOR_ANSWERS


def flush_and_exit(code: int) -> t.NoReturn:
    """End the process now, with what it wrote so far flushed; threads of requests in
    flight would otherwise keep it alive."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # started with that descriptor closed
            stream.flush()
    logging.shutdown()
    os._exit(code)
