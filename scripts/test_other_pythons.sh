#!/usr/bin/env bash
# The suite, without its end-to-end tests, on each other Python the project supports (3.10 to
# 3.15), each in a virtualenv of its own (.venv-py3.X): what differs between versions (how deep
# Python recurses, say) fails here, not only on a user's machine. 3.14 and 3.15, which the
# machine may lack, run in a Debian chroot (scripts/test_in_debian.sh); another version the
# machine lacks is skipped, and said so. OTHER_PYTHONS narrows the versions (CI splits them
# between two lanes). Extra arguments go to pytest.
set -uo pipefail

cd "$(dirname "$0")/.."

source scripts/find_python.sh

main_version=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
status=0
for version in ${OTHER_PYTHONS:-3.10 3.11 3.12 3.13 3.14 3.15}; do
    [ "$version" = "$main_version" ] && continue
    python=$(find_python "$version")
    if [ -z "$python" ]; then
        case $version in
        3.14 | 3.15) bash scripts/test_in_debian.sh "$version" "$@" || status=1 ;;
        *) echo "==> Python $version: not on this machine, skipped" ;;
        esac
        continue
    fi
    venv=".venv-py$version"
    if [ ! -f "$venv/.installed-test" ] || [ pyproject.toml -nt "$venv/.installed-test" ]; then
        echo "==> Python $version ($python): installing into $venv"
        if ! { "$python" -m venv "$venv" &&
            "$venv/bin/python" -m pip install --quiet --upgrade pip &&
            "$venv/bin/python" -m pip install --quiet -e '.[test]'; }; then
            echo "Python $version: installing FAILED" >&2
            status=1
            continue
        fi
        touch "$venv/.installed-test"
    fi
    echo "==> pytest on Python $version, end-to-end tests left to make test"
    "$venv/bin/python" -m pytest -q -m 'not e2e' -p no:cacheprovider "$@" || status=1
done
exit "$status"
