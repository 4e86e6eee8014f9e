"""The target's settings: their JSON schema (shown by `--about`) and the rules it cannot express.

The modules, each holding one concern:

- :mod:`~target_meta_capi.settings.schema`: the settings' JSON schema (:data:`SETTINGS`), their
  defaults, the limits of the numbers, and which are secrets (:data:`SECRET_SETTINGS`);
- :mod:`~target_meta_capi.settings.checks`: the rules the schema cannot express and their
  messages (:func:`settings_errors`, :func:`settings_warnings`), secrets kept out of them
  (:func:`without_secrets`), and where a missing setting is given (:func:`run_by_meltano`);
- :mod:`~target_meta_capi.settings.environment`: settings given in the environment (the `.env`
  file :func:`dotenv_path` names too), checked before the SDK reads them, and text read as the
  number, integer or boolean its setting takes (:func:`with_texts_parsed`);
- :mod:`~target_meta_capi.settings.config_files`: the ``--config`` files read and merged
  (:func:`read_config_files`, :class:`ConfigFileError`);
- :mod:`~target_meta_capi.settings.output_paths`: the files a run writes
  (:func:`dead_letter_path`) and why one cannot be written where its setting says.
"""

from __future__ import annotations

from target_meta_capi.settings.checks import (
    explained_schema_errors,
    required_settings_errors,
    run_by_meltano,
    secret_settings_errors,
    secret_texts,
    settings_errors,
    settings_warnings,
    with_pixel_id_as_text,
    without_secrets,
)
from target_meta_capi.settings.config_files import ConfigFileError, read_config_files
from target_meta_capi.settings.environment import (
    dotenv_path,
    environment_schema,
    environment_setting_problem,
    load_dotenv_log_level,
    log_level_problem,
    unknown_environment_variables,
    untrusted_dotenv,
    with_texts_parsed,
)
from target_meta_capi.settings.output_paths import (
    dead_letter_path,
    output_over_config_file_problem,
)
from target_meta_capi.settings.schema import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENT_REQUESTS,
    DEFAULT_MAX_BATCH_WAIT_SECONDS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_SECONDS,
    DEFAULT_PARTNER_AGENT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SHUTDOWN_GRACE_SECONDS,
    ON_INVALID_FAIL,
    SECRET_SETTINGS,
    SETTINGS,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONCURRENT_REQUESTS",
    "DEFAULT_MAX_BATCH_WAIT_SECONDS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_RETRY_SECONDS",
    "DEFAULT_PARTNER_AGENT",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_SHUTDOWN_GRACE_SECONDS",
    "ON_INVALID_FAIL",
    "SECRET_SETTINGS",
    "SETTINGS",
    "ConfigFileError",
    "dead_letter_path",
    "dotenv_path",
    "environment_schema",
    "environment_setting_problem",
    "explained_schema_errors",
    "load_dotenv_log_level",
    "log_level_problem",
    "output_over_config_file_problem",
    "read_config_files",
    "required_settings_errors",
    "run_by_meltano",
    "secret_settings_errors",
    "secret_texts",
    "settings_errors",
    "settings_warnings",
    "unknown_environment_variables",
    "untrusted_dotenv",
    "with_pixel_id_as_text",
    "with_texts_parsed",
    "without_secrets",
]
