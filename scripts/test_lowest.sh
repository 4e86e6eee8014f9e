#!/usr/bin/env bash
# The suite, without its end-to-end tests, against the oldest versions pyproject.toml allows:
# every dependency it declares pinned at its lower bound (scripts/lowest_constraints.py), the
# packages they bring as new as they come, on the oldest Python the project supports that this
# machine has, in a virtualenv of its own (.venv-lowest). Users install the package next to
# others that hold its dependencies down (Airflow images pin urllib3<2, say): code needing a
# newer release than a bound says fails here, not on their machines. Extra arguments go to
# pytest.
set -uo pipefail

cd "$(dirname "$0")/.."
source scripts/find_python.sh

python=""
for version in 3.10 3.11 3.12 3.13; do
    python=$(find_python "$version")
    [ -n "$python" ] && break
done
python=${python:-${PYTHON:-python3}}

venv=.venv-lowest
constraints="$venv/constraints.txt"
if [ ! -f "$venv/.installed-test" ] || [ pyproject.toml -nt "$venv/.installed-test" ]; then
    echo "==> $("$python" --version) ($python): installing the lowest versions into $venv"
    # made afresh: a bound moved down must not find a newer release already installed
    rm -rf "$venv"
    # the test extra but for its mypy stubs (types-requests need urllib3 2) and ruff: pytest, and
    # for tests/test_packaging.py the build backend and mypy
    if ! { "$python" -m venv "$venv" &&
        .venv/bin/python scripts/lowest_constraints.py >"$constraints" &&
        "$venv/bin/python" -m pip install --quiet --upgrade pip &&
        "$venv/bin/python" -m pip install --quiet --constraint "$constraints" -e . pytest hatchling mypy; }; then
        echo "lowest versions: installing FAILED" >&2
        exit 1
    fi
    touch "$venv/.installed-test"
fi
echo "==> pytest, installed under the constraints $(tr '\n' ' ' <"$constraints")"
"$venv/bin/python" -m pytest -q -m 'not e2e' -p no:cacheprovider "$@"
