import subprocess
import sys


def test_client_library_imports_nothing_from_singer_sdk():
    probe = (
        "import sys, target_meta_capi.capi; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'singer_sdk'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
