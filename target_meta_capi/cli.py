"""The `target-meta-capi` command."""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    """Run the target's CLI, a Ctrl-C ending it quietly until the target handles signals.

    The imports take most of a second, and the target installs its signal handlers only
    once it is set up. Python's own SIGINT handler would turn a Ctrl-C in that time into a
    KeyboardInterrupt traceback of some 30 lines, though nothing has been read or sent yet:
    the signal's default effect (the process ends) is the answer, as it is for SIGTERM.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _run_target()


def _run_target() -> None:
    from target_meta_capi.settings import log_level_problem
    from target_meta_capi.target import TargetMetaCapi  # the imports of that second

    # before the SDK sets up logging with the level, which is what is wrong
    problem = log_level_problem(os.environ, TargetMetaCapi._env_var_prefix)
    if problem is not None:
        sys.stderr.write(f"Configuration error: {problem}\n")
        sys.exit(1)
    TargetMetaCapi.cli()
