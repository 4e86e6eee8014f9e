# Sourced by the test scripts: find_python VERSION prints a Python of that version that runs
# and can make virtualenvs: on PATH, else one pyenv installed (its shims on PATH may name a
# version they do not select, and fail when run); nothing if the machine has none.
find_python() {
    local version=$1 candidate
    for candidate in "$(command -v "python$version")" \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/"python$version"; do
        if [ -x "$candidate" ] && "$candidate" -c 'import venv, ensurepip' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
}
