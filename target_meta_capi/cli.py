"""The `target-meta-capi` command."""

from __future__ import annotations

import signal


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
    from target_meta_capi.target import TargetMetaCapi  # the imports of that second

    TargetMetaCapi.cli()
