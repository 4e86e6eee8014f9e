"""The `target-meta-capi` command."""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import itertools
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
    # The collector runs after every 700 new objects, and now and then walks all the older
    # ones too. The imports leave ≈ 50,000 (the SDK, requests, jsonschema) that live as long
    # as the process: collecting while they load, and walking them again at each full
    # collection of the run, took ≈ 120 ms of the main process's CPU over 50,000 records
    # (≈ 70 ms in the imports), ≈ 45 ms without. Frozen, they are never walked; the ≈ 2,000
    # objects the imports left as garbage stay, ≈ 0.5 MB.
    gc.disable()
    try:
        from target_meta_capi.settings import load_dotenv_log_level, log_level_problem
        from target_meta_capi.target import TargetMetaCapi  # the imports of that second
    finally:
        gc.freeze()
        gc.enable()

    prefix = TargetMetaCapi._env_var_prefix
    if _reads_the_environment(sys.argv[1:]):
        load_dotenv_log_level(os.environ, prefix)
    # before the SDK sets up logging with the level, which is what is wrong
    problem = log_level_problem(os.environ, prefix)
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


def _reads_the_environment(arguments: list[str]) -> bool:
    """Whether the command line has `--config ENV`, which reads the settings from the
    environment and the `.env` file."""
    return "--config=ENV" in arguments or ("--config", "ENV") in itertools.pairwise(arguments)


def _stop(problem: str) -> t.NoReturn:
    sys.stderr.write(f"Configuration error: {problem}\n")
    sys.exit(1)
