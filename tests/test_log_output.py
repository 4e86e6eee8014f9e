"""The target's log lines as operators configure them: SINGER_SDK_LOG_CONFIG, LOGLEVEL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from target_meta_capi.log_output import STDOUT_HANDLER_WARNING
from target_meta_capi.sandbox import SandboxServer

from ._target_support import ACCESS_TOKEN, PIXEL_ID, order_stream, orders_config

TARGET = Path(sys.executable).with_name("target-meta-capi")
APP_SECRET = "app-secret-for-the-log-tests"


def _logging_config(stream: str) -> dict[str, object]:
    """A logging config as Python's documentation shows one (JSON is YAML the SDK reads)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(message)s"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "plain", "stream": stream}
        },
        "root": {"level": "INFO", "handlers": ["console"]},
    }


def _file_logging_config(handler: dict[str, object]) -> dict[str, object]:
    config = _logging_config("ext://sys.stderr")
    config["handlers"] = {"file": {"class": "logging.FileHandler", "formatter": "plain", **handler}}
    config["root"] = {"level": "INFO", "handlers": ["file"]}
    return config


def _run_target_with_log_config(
    sandbox: SandboxServer, tmp_path: Path, log_config: dict[str, object], **streams: Any
) -> subprocess.CompletedProcess[str]:
    log_config_path = tmp_path / "logging.json"
    log_config_path.write_text(json.dumps(log_config))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(orders_config(sandbox.url, tmp_path, record_workers=2)))
    return subprocess.run(
        [str(TARGET), "--config", str(config)],
        input="\n".join(order_stream(500, state_every=250)) + "\n",
        **(streams or {"capture_output": True}),
        text=True,
        timeout=60,
        env={**os.environ, "SINGER_SDK_LOG_CONFIG": str(log_config_path)},
    )


STATE_LINES = [{"bookmarks": {"public-orders": 250}}, {"bookmarks": {"public-orders": 500}}]


def _state_lines_only(output: str) -> bool:
    """Whether every line of the output is one of the run's states, the last one last. The
    first may be left out: when both are acknowledged before either is written (a loaded
    machine), the newest alone is written, as it covers the other."""
    lines = [json.loads(line) for line in output.splitlines()]
    return lines in (STATE_LINES, STATE_LINES[-1:])


def test_a_log_config_writing_to_stdout_leaves_stdout_to_the_state_lines(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    completed = _run_target_with_log_config(sandbox, tmp_path, _logging_config("ext://sys.stdout"))

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert _state_lines_only(completed.stdout)
    assert f"WARNING {STDOUT_HANDLER_WARNING}\n" in completed.stderr
    assert "INFO Run summary" in completed.stderr


def test_a_log_config_buffering_records_for_stdout_leaves_stdout_to_the_state_lines(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = _logging_config("ext://sys.stdout")
    buffered = {"class": "logging.handlers.MemoryHandler", "capacity": 10, "target": "console"}
    config["handlers"] = {**config["handlers"], "buffered": buffered}  # type: ignore[dict-item]
    config["root"] = {"level": "INFO", "handlers": ["buffered"]}
    completed = _run_target_with_log_config(sandbox, tmp_path, config)

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert _state_lines_only(completed.stdout)
    assert f"WARNING {STDOUT_HANDLER_WARNING}\n" in completed.stderr


@pytest.mark.parametrize("delay", [False, True], ids=["opened-at-start", "opened-on-first-use"])
def test_a_log_config_with_a_file_handler_on_dev_stdout_leaves_stdout_to_the_state_lines(
    sandbox: SandboxServer, tmp_path: Path, delay: bool
) -> None:
    handler = {"filename": "/dev/stdout", "delay": delay}
    completed = _run_target_with_log_config(sandbox, tmp_path, _file_logging_config(handler))

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert _state_lines_only(completed.stdout)
    assert f"WARNING {STDOUT_HANDLER_WARNING}\n" in completed.stderr
    assert "INFO Run summary" in completed.stderr


def test_a_file_handler_on_the_file_stdout_was_redirected_to_leaves_it_to_the_state_lines(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.jsonl"
    handler = {"filename": str(state_file), "mode": "a"}
    with state_file.open("w") as stdout:
        completed = _run_target_with_log_config(
            sandbox, tmp_path, _file_logging_config(handler), stdout=stdout, stderr=subprocess.PIPE
        )

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert _state_lines_only(state_file.read_text())
    assert f"WARNING {STDOUT_HANDLER_WARNING}\n" in completed.stderr


def test_a_file_handler_on_a_log_file_of_its_own_keeps_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    log_file = tmp_path / "target.log"
    completed = _run_target_with_log_config(
        sandbox, tmp_path, _file_logging_config({"filename": str(log_file)})
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert _state_lines_only(completed.stdout)
    assert "INFO Run summary" in log_file.read_text()
    assert STDOUT_HANDLER_WARNING not in completed.stderr + log_file.read_text()


# An application configures logging once its modules are imported, with dictConfig's default
# of disabling every logger that exists by then.
_APPLICATION = """
import logging.config, sys, time
from target_meta_capi.capi import EventRequest, RequestObserver

logging.config.dictConfig({
    "version": 1,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
})

class Broken(RequestObserver):
    def on_attempt(self, events, status, seconds, error):
        raise ZeroDivisionError("metrics bug")

event = {"event_name": "Lead", "event_time": int(time.time()), "action_source": "website",
         "event_source_url": "https://shop.example.com/thanks",
         "user_data": {"em": ["a" * 64], "client_user_agent": "Mozilla/5.0"}}
EventRequest(pixel_id=sys.argv[2], access_token=sys.argv[3], graph_url=sys.argv[1],
             events=[event]).execute(observer=Broken())
"""


def test_an_observer_that_raises_is_logged_after_the_application_configures_logging(
    sandbox: SandboxServer,
) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _APPLICATION, sandbox.url, PIXEL_ID, ACCESS_TOKEN],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Broken.on_attempt raised; the request goes on as if it had not" in completed.stderr


def _run_on_three_orders(
    tmp_path: Path, settings: dict[str, Any], environment: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(settings))
    return subprocess.run(
        [str(TARGET), "--config", str(config)],
        input="\n".join(order_stream(3)) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )


def _run_with_environment(
    sandbox: SandboxServer, tmp_path: Path, **variables: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.endswith("LOGLEVEL")
    }
    return _run_on_three_orders(
        tmp_path, orders_config(sandbox.url, tmp_path), {**environment, **variables}
    )


def test_a_log_level_logging_does_not_know_stops_the_target_with_one_line_naming_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    completed = _run_with_environment(sandbox, tmp_path, LOGLEVEL="verbose")

    assert completed.returncode == 1
    assert completed.stderr == (
        "Configuration error: environment variable LOGLEVEL is 'verbose', which is no log "
        "level: use DEBUG, INFO, WARNING, ERROR or CRITICAL\n"
    )
    assert completed.stdout == ""
    assert sandbox.stats()["requests"] == 0


def test_an_empty_log_level_variable_means_the_default_level(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    completed = _run_with_environment(sandbox, tmp_path, TARGET_META_CAPI_LOGLEVEL="", LOGLEVEL="")

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads(completed.stdout) == {"bookmarks": {"public-orders": 3}}
    assert "| INFO     | target-meta-capi " in completed.stderr
    assert "| DEBUG    |" not in completed.stderr


# The target as it runs on Python 3.10 since October 2026: singer-sdk then warns, at every
# start, that this Python reached its end of life. Here the running Python's date is moved.
_PAST_END_OF_LIFE = """
import datetime, sys
from singer_sdk.helpers import _compat
_compat._PYTHON_EOL_DATES[sys.version_info[:2]] = datetime.date(2020, 1, 1)
sys.argv = ["target-meta-capi", *sys.argv[1:]]
from target_meta_capi.cli import main
main()
"""
_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| [A-Z]+ +\| ")


def test_a_python_warning_is_logged_as_one_line(sandbox: SandboxServer, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(orders_config(sandbox.url, tmp_path)))

    completed = subprocess.run(
        [sys.executable, "-c", _PAST_END_OF_LIFE, "--config", str(config)],
        input="\n".join(order_stream(3)) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    (warning,) = [line for line in completed.stderr.splitlines() if "EOLWarning" in line]
    assert "| WARNING  | py.warnings " in warning
    assert [line for line in completed.stderr.splitlines() if not _LOG_LINE.match(line)] == []


def test_a_log_config_that_cannot_be_used_stops_the_target_with_one_line_naming_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    log_config = tmp_path / "logging.json"
    config = _logging_config("ext://sys.stderr")
    config["formatters"] = {"plain": {"()": "no_such_module.Formatter"}}
    log_config.write_text(json.dumps(config))

    completed = _run_with_environment(sandbox, tmp_path, SINGER_SDK_LOG_CONFIG=str(log_config))

    assert completed.returncode == 1
    assert completed.stderr == (
        f"Configuration error: SINGER_SDK_LOG_CONFIG names a logging config that cannot be "
        f"used ({log_config}): Unable to configure formatter 'plain' (Cannot resolve "
        "'no_such_module.Formatter': No module named 'no_such_module')\n"
    )
    assert sandbox.stats()["requests"] == 0


def _run_with_service_module(
    tmp_path: Path, settings: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """The target run on three orders with `settings`, which name an http_service_class from a
    module written into tmp_path."""
    module_path = os.pathsep.join([str(tmp_path), *sys.path])
    return _run_on_three_orders(tmp_path, settings, {**os.environ, "PYTHONPATH": module_path})


# requests' documentation, "Logging" in its advanced usage: how to see the requests it sends
_DEBUGGING_SERVICE = """
import http.client
from target_meta_capi.capi.http import RequestsHttpService

http.client.HTTPConnection.debuglevel = 1

class DebuggedService(RequestsHttpService):
    pass
"""


def test_http_client_debug_output_turned_on_shows_no_request_and_leaves_stdout_to_state(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(app_secret=APP_SECRET)
    (tmp_path / "debugged_service.py").write_text(_DEBUGGING_SERVICE)
    settings = orders_config(
        sandbox.url,
        tmp_path,
        app_secret=APP_SECRET,
        http_service_class="debugged_service:DebuggedService",
    )
    completed = _run_with_service_module(tmp_path, settings)

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert [json.loads(line) for line in completed.stdout.splitlines()] == [
        {"bookmarks": {"public-orders": 3}}
    ]
    for secret in (ACCESS_TOKEN, APP_SECRET, "appsecret_proof", "customer1@example.com"):
        assert secret not in completed.stderr.lower()


_FAILING_SERVICE = """
from target_meta_capi.capi.http import RequestsHttpService

class FailingService(RequestsHttpService):
    def __init__(self):
        raise RuntimeError("no proxy configured\\nset HTTPS_PROXY first")
"""


def test_a_configuration_error_spanning_lines_is_logged_as_one_line(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    (tmp_path / "failing_service.py").write_text(_FAILING_SERVICE)
    settings = orders_config(
        sandbox.url, tmp_path, http_service_class="failing_service:FailingService"
    )
    completed = _run_with_service_module(tmp_path, settings)

    assert completed.returncode == 1
    assert completed.stderr.splitlines()[-1].endswith(
        "| Configuration error: http_service_class: http service class "
        "failing_service.FailingService could not be created without arguments: RuntimeError: "
        "no proxy configured set HTTPS_PROXY first"
    )
    assert [line for line in completed.stderr.splitlines() if not _LOG_LINE.match(line)] == []
