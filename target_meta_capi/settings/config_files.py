"""The `--config` files: read and merged as singer-sdk merges them, a file the target cannot use
one error naming it (never its content, which holds the token)."""

from __future__ import annotations

import os
import typing as t

from singer_sdk.helpers._util import read_json_file

from target_meta_capi.settings.output_paths import output_over_config_file_problem


class ConfigFileError(Exception):
    """A --config file the target cannot use: the message names the file, never its
    content (it holds the token)."""


def read_config_files(paths: t.Sequence[str]) -> dict[str, t.Any]:
    """The settings of the SDK's --config files, merged as it merges them; a file it cannot
    use is one error naming the file, not a traceback."""
    config: dict[str, t.Any] = {}
    for path in paths:
        try:
            file_config = read_json_file(path)
        except (OSError, ValueError, RuntimeError) as error:
            problem = _config_file_problem(error, path)
            raise ConfigFileError(f"{path or repr(path)}: {problem}") from None
        if not isinstance(file_config, dict):
            raise ConfigFileError(f"{path}: does not hold a JSON object")
        config |= file_config
    overwritten = output_over_config_file_problem(config, paths)
    if overwritten:
        raise ConfigFileError(overwritten)
    return config


def _config_file_problem(error: Exception, path: str) -> str:
    if isinstance(error, FileNotFoundError) and os.path.islink(path):
        # `ls` shows it: "no such file" would contradict what the user sees
        return "is a symbolic link to no file (its target is missing, or links loop)"
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not a JSON file"
    if isinstance(error, PermissionError):
        return "cannot be read (permission denied)"
    if isinstance(error, OSError):
        return f"cannot be read ({error.strerror or error})"
    if isinstance(error, UnicodeDecodeError):
        return "is not UTF-8 text"
    if isinstance(error, RuntimeError):  # the SDK's word for an empty path
        return "is not a file name"
    return f"is not valid JSON ({error})"  # its position only, no content
