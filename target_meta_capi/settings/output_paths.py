"""The files a run writes (dead letters, the summary, a dry run's payloads): where they go, and
why one cannot be written there, found at start-up before anything is sent."""

from __future__ import annotations

import os
import stat
import typing as t
from pathlib import Path

from target_meta_capi.settings.schema import DEFAULT_DEAD_LETTER_PATH
from target_meta_capi.summary import standard_outputs_to, summary_file_target


def dead_letter_path(config: t.Mapping[str, t.Any]) -> str:
    """Where the run's dead letters go: the setting, or the default when it is unset or empty."""
    return config.get("dead_letter_path") or DEFAULT_DEAD_LETTER_PATH


def _output_paths(config: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The files a run writes, by setting (None: that output is off)."""
    return {
        "dead_letter_path": dead_letter_path(config),
        "summary_path": config.get("summary_path"),
        "dry_run_path": config.get("dry_run_path") if config.get("dry_run") else None,
    }


def output_path_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """The outputs that cannot be written where their settings say, or that write one regular
    file together, each error naming its setting."""
    errors = []
    written_by: dict[tuple[object, ...], str] = {}  # a regular file an output goes to → its setting
    for setting, path in _output_paths(config).items():
        if not path:
            continue
        problem = (
            _nul_problem(path)
            or _stdout_problem(Path(path))
            or unwritable_path_problem(Path(path), renamed_over=setting == "summary_path")
        )
        file = None if problem else _regular_file(Path(path))
        if file in written_by:
            # the summary replaces the dead letters, a dry run truncates them, or lines mix
            problem = f"is the file {written_by[file]} writes too: give each its own file"
        elif file is not None:
            written_by[file] = setting
        if problem:
            errors.append(f"{setting} {path!r}: {problem}")
    return errors


def output_over_config_file_problem(
    config: t.Mapping[str, t.Any], config_files: t.Iterable[str]
) -> str | None:
    """An output that is one of the --config files: the summary would replace it, a dry run
    empty it, and dead letters leave it no JSON object for the next run."""
    files = {_file_identity(path) for path in config_files}
    for setting, path in _output_paths(config).items():
        if isinstance(path, str) and "\0" not in path and _file_identity(path) in files:
            return f"{setting} {path!r} is a --config file, which the run would overwrite"
    return None


def _nul_problem(path: str) -> str | None:
    """A NUL ends a file name in the system's calls: Python refuses it with a traceback."""
    return "contains a NUL character, which no file name can" if "\0" in path else None


def _regular_file(path: Path) -> tuple[object, ...] | None:
    """The file `path` writes to, symlinks followed, unless it is a device or a FIFO, which
    several outputs may share (/dev/null, say)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return None
    except OSError:  # not there yet
        pass
    return _file_identity(path)


def _file_identity(path: str | Path) -> tuple[object, ...]:
    """What tells one file from another: its device and inode when it exists (a hard link is
    the same file under another name, as a symlink is), else the path its symlinks lead to."""
    try:
        status = os.stat(path)
    except (OSError, ValueError):  # not there yet (or a name no file can have)
        return ("path", os.path.realpath(path))
    return ("inode", status.st_dev, status.st_ino)


def _stdout_problem(path: Path) -> str | None:
    """Stdout carries state lines only (Meltano stores every line it reads there as state),
    where it goes to a file, a pipe or a socket that is not stderr's too (2>&1: the logs are
    there already). A terminal or /dev/null keeps nothing."""
    try:
        status = path.stat()
    except OSError:  # no such file yet
        return None
    mode = status.st_mode
    if stat.S_ISCHR(mode) or standard_outputs_to(status) != {1}:
        return None
    return "is where stdout goes, which carries state lines only"


def unwritable_path_problem(path: Path, *, renamed_over: bool = False) -> str | None:
    """Why a file cannot be written (or created) at `path`, found without creating anything;
    None when it can. Checked at start-up, so a wrong path fails before anything is sent.

    `renamed_over`: written as the run summary is (`write_summary_file`), beside the file its
    symlinks lead to and renamed over it, so that file's directory must take a new file too.
    """
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        status = None
    except OSError as error:  # a symlink loop, a directory it may not look into
        return f"cannot be reached ({error.strerror or error})"
    if status is not None:
        if stat.S_ISDIR(status.st_mode):
            return "is a directory"
        if not os.access(path, os.W_OK):
            return "is not writable"
    if renamed_over:
        target = summary_file_target(path)
        if target is None:
            return None  # written in place
        path = target
    elif status is not None:
        return None
    parent = path.parent
    while not parent.exists():  # missing directories are created when the file is
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create files in {parent}"
    return None
