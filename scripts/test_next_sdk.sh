#!/usr/bin/env bash
# mypy and the suite, without its end-to-end tests, against the next singer-sdk minor release
# that pyproject.toml's bound (~=0.54) admits, at the pre-release NEXT_SINGER_SDK (the Makefile
# sets it), in a virtualenv of its own (.venv-next-sdk). The target builds on the SDK's record
# path, metrics and command line, and imports some of its private modules; a release that
# changes them would reach users on their next install, so it breaks here first. Extra
# arguments go to pytest.
set -uo pipefail

cd "$(dirname "$0")/.."
: "${NEXT_SINGER_SDK:?set NEXT_SINGER_SDK to the singer-sdk version to test against}"

venv=.venv-next-sdk
marker="$venv/.installed-$NEXT_SINGER_SDK"
if [ ! -f "$marker" ] || [ pyproject.toml -nt "$marker" ]; then
    echo "==> installing singer-sdk $NEXT_SINGER_SDK into $venv"
    rm -rf "$venv"
    if ! { "${PYTHON:-python3}" -m venv "$venv" &&
        "$venv/bin/python" -m pip install --quiet --upgrade pip &&
        "$venv/bin/python" -m pip install --quiet -e '.[test]' "singer-sdk==$NEXT_SINGER_SDK"; }; then
        echo "singer-sdk $NEXT_SINGER_SDK: installing FAILED" >&2
        exit 1
    fi
    touch "$marker"
fi
echo "==> mypy, then pytest, with $("$venv/bin/python" -m pip show singer-sdk | grep '^Version')"
"$venv/bin/mypy" target_meta_capi || exit
"$venv/bin/python" -m pytest -q -m 'not e2e' -p no:cacheprovider "$@"
