#!/usr/bin/env bash
# What `make test` runs once the virtualenvs exist: ruff and mypy, then the whole pytest
# suite, end-to-end tests included. Extra arguments go to pytest (e.g. `-k e2e`, `-x`).
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"

# The end-to-end test must run here, not skip: a missing PostgreSQL or Meltano is a failure.
export E2E_REQUIRED=1
export MELTANO_BIN="$ROOT/.venv-meltano/bin/meltano"

echo "==> ruff check, ruff format --check"
.venv/bin/ruff check . && .venv/bin/ruff format --check .
ruff_status=$?
if [ "$ruff_status" -ne 0 ]; then
    echo "ruff FAILED (exit $ruff_status); running the tests anyway" >&2
fi

# the package's type hints must hold (the tests are not type-checked)
echo "==> mypy"
.venv/bin/mypy target_meta_capi
mypy_status=$?
if [ "$mypy_status" -ne 0 ]; then
    echo "mypy FAILED (exit $mypy_status); running the tests anyway" >&2
fi

echo "==> pytest"
.venv/bin/python -m pytest "$@"
pytest_status=$?

if [ "$pytest_status" -ne 0 ]; then
    exit "$pytest_status"
fi
if [ "$ruff_status" -ne 0 ]; then
    exit "$ruff_status"
fi
exit "$mypy_status"
