import subprocess
import sys

# Imports every module of the client library, the package's public names and the modules
# its __init__ leaves out (privacy, usage) alike.
_IMPORT_EVERY_CLIENT_MODULE = (
    "import importlib, pkgutil, sys, target_meta_capi.capi as capi; "
    "modules = pkgutil.walk_packages(capi.__path__, 'target_meta_capi.capi.'); "
    "[importlib.import_module(module.name) for module in modules]; "
)


def _run_probe(probe: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)


def test_client_library_imports_nothing_from_singer_sdk():
    probe = (
        "import sys, target_meta_capi.capi; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'singer_sdk'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_every_client_module_imports_with_singer_sdk_missing():
    result = _run_probe(
        "import sys; sys.modules['singer_sdk'] = None; " + _IMPORT_EVERY_CLIENT_MODULE
    )

    assert result.returncode == 0, result.stderr


def test_client_library_imports_nothing_from_the_target():
    result = _run_probe(
        _IMPORT_EVERY_CLIENT_MODULE
        + "print(sorted(m for m in sys.modules if m.startswith('target_meta_capi.') "
        "and not m.startswith('target_meta_capi.capi')))"
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
