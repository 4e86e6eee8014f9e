"""The `target-meta-capi` command."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import typing as t


def main() -> None:
    """Run the target's CLI, a Ctrl-C ending it quietly until the target handles signals.

    The imports take most of a second, and the target installs its signal handlers only
    once it is set up. Python's own SIGINT handler would turn a Ctrl-C in that time into a
    KeyboardInterrupt traceback of some 30 lines, though nothing has been read or sent yet:
    the signal's default effect (the process ends) is the answer, as it is for SIGTERM.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # A crash below Python (msgspec's encoder when memory runs out under `ulimit -v`, say)
    # would end the run with no word of where: each thread's stack goes to stderr first,
    # names and lines only, no values. Not where stderr is closed (`2>&-`).
    with contextlib.suppress(RuntimeError, ValueError, OSError):
        faulthandler.enable()
    _run_target()


def _run_target() -> None:
    from target_meta_capi.settings import log_level_problem
    from target_meta_capi.target import TargetMetaCapi  # the imports of that second

    # before the SDK sets up logging with the level, which is what is wrong
    problem = log_level_problem(os.environ, TargetMetaCapi._env_var_prefix)
    if problem is not None:
        _stop(problem)
    try:
        command = TargetMetaCapi.cli  # sets up logging: the level, then that file's config
    except Exception as error:
        if "SINGER_SDK_LOG_CONFIG" not in os.environ:
            raise
        # logging.config's ValueError names the part it could not configure, its cause why
        cause = f" ({error.__cause__})" if error.__cause__ is not None else ""
        _stop(
            "SINGER_SDK_LOG_CONFIG names a logging config that cannot be used "
            f"({os.environ['SINGER_SDK_LOG_CONFIG']}): {' '.join(str(error).split())}{cause}"
        )
    command()


def _stop(problem: str) -> t.NoReturn:
    sys.stderr.write(f"Configuration error: {problem}\n")
    sys.exit(1)
