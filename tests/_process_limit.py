"""Running this checkout's code as a user of its own under a limit on processes
(RLIMIT_NPROC, `ulimit -u`), which counts threads too: how a container's pids limit or a
crowded machine refuses the target a fork or a thread."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

#: `python -c TARGET_COMMAND --config …` runs the target's command
TARGET_COMMAND = "from target_meta_capi.target import TargetMetaCapi; TargetMetaCapi.cli()"


def as_a_user_of_its_own_with_these_packages() -> tuple[list[str], dict[str, str]]:
    """A command prefix and environment running this checkout's code as a user no other
    process runs as (a limit on processes counts all of a user's, and holds for no root): this
    Python, or the system's of the same version with this environment's packages when others
    may not read this one (pyenv's under /root). Skips the test where there is neither."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("prlimit") is None:
        pytest.skip("needs root, setpriv and prlimit to run as another user under a limit")
    # a user id of this test process's own: not nobody, whose other processes on the machine
    # (another test run's) would count against the limit and move the step it refuses
    user = 100_000 + os.getpid()
    as_user = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    root = str(Path(__file__).resolve().parent.parent)
    system_python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    for python, path in (
        (sys.executable, root),
        (system_python, os.pathsep.join([root, sysconfig.get_paths()["purelib"]])),
    ):
        environment = {"PATH": os.defpath, "HOME": "/tmp", "PYTHONPATH": path}
        probe = subprocess.run(
            [*as_user, python, "-c", "import target_meta_capi.target"],
            capture_output=True,
            env=environment,
            timeout=60,
        )
        if probe.returncode == 0:
            return [*as_user, python], environment
    pytest.skip("no Python here that another user may run with this environment's packages")


def run_python_under_a_process_limit(
    processes: int, code: str, *arguments: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`python -c code arguments…`, as a user of its own allowed `processes` processes and
    threads in all."""
    command, environment = as_a_user_of_its_own_with_these_packages()
    return subprocess.run(
        ["prlimit", f"--nproc={processes}", *command, "-c", code, *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def run_target_under_a_process_limit(
    processes: int, directory: Path, config: dict[str, Any], lines: list[str]
) -> subprocess.CompletedProcess[str]:
    """The target's command with `config` (its files in `directory`) reading `lines`, as a
    user of its own allowed `processes` processes and threads in all."""
    os.chmod(directory, 0o777)  # that user writes the run's files there
    config_path = directory / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    os.chmod(config_path, 0o644)
    return run_python_under_a_process_limit(
        processes,
        TARGET_COMMAND,
        "--config",
        str(config_path),
        stdin="".join(line + "\n" for line in lines),
    )
