"""The package as users get it: the wheel and the sdist built from this tree, used from outside
it. Built without the network: hatchling, the build backend, comes with the `test` extra."""

from __future__ import annotations

import ast
import contextlib
import inspect
import json
import os
import re
import subprocess
import sys
import urllib.request
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from email.message import Message
from email.parser import HeaderParser
from importlib.metadata import distributions
from pathlib import Path

import pytest

from tests._target_support import order_stream, orders_config

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "target_meta_capi"
# Runs a console script the way its generated wrapper does: found by name among the installed
# distributions' entry points (the unpacked wheel's, first on the path), the rest of argv its own.
_RUN_CONSOLE_SCRIPT = (
    "import sys; from importlib.metadata import entry_points; "
    "(script,) = entry_points(group='console_scripts', name=sys.argv[1]); "
    "sys.argv = sys.argv[1:]; sys.exit(script.load()())"
)


def _build(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"{' '.join(command)} failed (the build backend comes with the test extra: "
        f"pip install -e '.[test]'):\n{result.stdout}{result.stderr}"
    )


def _pip_wheel(source: Path, out: Path) -> Path:
    """The wheel pip builds from a source tree or an sdist, offline, with the installed backend."""
    _build(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--wheel-dir", str(out), str(source)],
        cwd=out,
    )  # fmt: skip
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pip_wheel(ROOT, tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.fixture(scope="module")
def dist_info(wheel: Path) -> str:
    wheel_version = wheel.name.split("-")[1]
    return f"{PACKAGE}-{wheel_version}.dist-info"


@pytest.fixture(scope="module")
def metadata(wheel: Path, dist_info: str) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        return HeaderParser().parsestr(archive.read(f"{dist_info}/METADATA").decode())


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked as an installer lays it out in site-packages."""
    site = tmp_path_factory.mktemp("site-packages")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


@pytest.fixture
def user_environment(installed: Path, tmp_path: Path) -> dict[str, str]:
    """Python finds the package in the unpacked wheel, never in this tree (the shared virtualenv's
    editable install comes after it on the path), and its dependencies where the tests' are."""
    environment = {**os.environ, "PYTHONPATH": str(installed)}
    probe = "import target_meta_capi; print(target_meta_capi.__file__)"
    imported = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True, text=True, check=True, env=environment, cwd=tmp_path,
    )  # fmt: skip
    assert Path(imported.stdout.strip()).is_relative_to(installed), imported.stdout
    return environment


def _console_script(name: str, *arguments: str) -> list[str]:
    return [sys.executable, "-c", _RUN_CONSOLE_SCRIPT, name, *arguments]


def _package_modules() -> set[str]:
    return {path.relative_to(ROOT).as_posix() for path in (ROOT / PACKAGE).rglob("*.py")}


def test_wheel_holds_every_module_of_the_package(wheel_names: set[str]) -> None:
    assert {name for name in wheel_names if name.endswith(".py")} == _package_modules()


def test_wheel_marks_the_package_as_typed(wheel_names: set[str]) -> None:
    # PEP 561: without the marker, a user's mypy ignores the client library's types
    assert f"{PACKAGE}/py.typed" in wheel_names


def test_wheel_holds_nothing_but_the_modules_the_typed_marker_and_metadata(
    wheel_names: set[str], dist_info: str
) -> None:
    strays = {
        name
        for name in wheel_names - _package_modules() - {f"{PACKAGE}/py.typed"}
        if not name.startswith(f"{dist_info}/")
    }

    assert strays == set()


def test_wheel_carries_the_license_its_metadata_names(
    wheel_names: set[str], dist_info: str, metadata: Message
) -> None:
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert f"{dist_info}/licenses/LICENSE" in wheel_names


def test_wheel_declares_every_distribution_its_modules_import(
    wheel: Path, metadata: Message
) -> None:
    imported: set[str] = set()
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith(".py"):
                imported |= _top_level_imports(ast.parse(archive.read(name)))
    third_party = imported - set(sys.stdlib_module_names) - {PACKAGE}
    declared = {
        _normalized(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])
        for requirement in metadata.get_all("Requires-Dist", [])
        if "extra ==" not in requirement
    }
    providers = _distributions_by_module()

    undeclared = {module for module in third_party if not declared & providers[module]}

    assert undeclared == set()


def _top_level_imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _distributions_by_module() -> defaultdict[str, set[str]]:
    """The installed distributions that provide each top-level module, from their file lists:
    Python 3.10's packages_distributions() reads only top_level.txt, which most wheels lack."""
    providers: defaultdict[str, set[str]] = defaultdict(set)
    for distribution in distributions():
        for file in distribution.files or []:
            module = file.parts[0] if len(file.parts) > 1 else inspect.getmodulename(file.name)
            if module:
                providers[module].add(_normalized(distribution.metadata["Name"]))
    return providers


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_about_lists_the_pythons_the_suite_runs_on(
    user_environment: dict[str, str], tmp_path: Path
) -> None:
    # singer-sdk lists the "Programming Language :: Python :: 3.x" classifiers; without them it
    # counts from requires-python up to the newest Python it knows, untested ones included
    script = (ROOT / "scripts" / "test_other_pythons.sh").read_text(encoding="utf-8")
    loop = re.search(r"^for version in \$\{OTHER_PYTHONS:-([\d. ]+)\}; do$", script, re.MULTILINE)
    assert loop, "scripts/test_other_pythons.sh no longer names the Pythons in one loop"

    about = subprocess.run(
        _console_script("target-meta-capi", "--about", "--format=json"),
        capture_output=True, text=True, check=True, env=user_environment, cwd=tmp_path,
    )  # fmt: skip

    assert json.loads(about.stdout)["supported_python_versions"] == loop.group(1).split()


def test_installed_target_delivers_a_stream_to_the_installed_sandbox(
    user_environment: dict[str, str], tmp_path: Path
) -> None:
    lines = order_stream(3)
    with _sandbox_command(user_environment, tmp_path) as url:
        config = tmp_path / "config.json"
        config.write_text(json.dumps(orders_config(url, tmp_path)), encoding="utf-8")
        run = subprocess.run(
            _console_script("target-meta-capi", "--config", str(config)),
            input="".join(line + "\n" for line in lines), capture_output=True, text=True,
            timeout=60, env=user_environment, cwd=tmp_path,
        )  # fmt: skip
        with urllib.request.urlopen(f"{url}/__events", timeout=10) as answer:
            events = json.load(answer)

    assert run.returncode == 0, run.stderr[-2000:]
    states = [json.loads(line) for line in run.stdout.splitlines()]
    assert states == [json.loads(lines[-1])["value"]]
    assert len(events) == 3


@contextlib.contextmanager
def _sandbox_command(environment: dict[str, str], cwd: Path) -> Iterator[str]:
    """`target-meta-capi-sandbox --port 0` running; its URL, read from the line announcing it."""
    sandbox = subprocess.Popen(
        _console_script("target-meta-capi-sandbox", "--port", "0", "--quiet"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment, cwd=cwd,
    )  # fmt: skip
    try:
        assert sandbox.stderr is not None
        announcement = sandbox.stderr.readline()
        address = re.search(r"listening on (http://\S+)", announcement)
        assert address, f"the sandbox did not start: {announcement}{sandbox.stderr.read()}"
        yield address.group(1)
    finally:
        sandbox.terminate()
        sandbox.communicate(timeout=10)


def test_a_users_mypy_sees_the_client_librarys_types(
    user_environment: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "send.py"
    script.write_text(
        "from target_meta_capi.capi import Event\n"
        "event: Event = {'event_name': 'Purchase', 'event_time': 'yesterday',\n"
        "                'action_source': 'website', 'user_data': {}}\n",
        encoding="utf-8",
    )

    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", os.devnull, "--no-error-summary",
         str(script)],
        capture_output=True, text=True, env=user_environment, cwd=tmp_path,
    )  # fmt: skip

    assert checked.stdout.splitlines() == [
        f'{script.name}:2: error: Incompatible types (expression has type "str", TypedDict '
        'item "event_time" has type "int")  [typeddict-item]'
    ]


def test_sdist_builds_the_same_wheel_as_the_tree(
    wheel_names: set[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    sdists = tmp_path_factory.mktemp("sdist")
    # pip builds no sdist: the backend's PEP 517 hook, as `python -m build --sdist` calls it
    build_sdist = "import sys, hatchling.build; hatchling.build.build_sdist(sys.argv[1])"
    _build([sys.executable, "-c", build_sdist, str(sdists)], cwd=ROOT)
    (sdist,) = sdists.glob("*.tar.gz")

    rebuilt = _pip_wheel(sdist, tmp_path_factory.mktemp("wheel-from-sdist"))

    with zipfile.ZipFile(rebuilt) as archive:
        assert set(archive.namelist()) == wheel_names
