# Two commands, on a fresh machine with Python 3.10+, make and bash:
#   make demo   install, then sample orders -> target-meta-capi -> local sandbox, and what arrived
#   make test   install, then ruff, mypy and the whole test suite (PostgreSQL + Meltano end to end)
# and, for CI:
#   make test-other-pythons   the suite without end-to-end tests on the other Pythons 3.10-3.13
#                             this machine has
#   make test-lowest          the suite without end-to-end tests against the lowest versions
#                             pyproject.toml allows, on the oldest of those Pythons

PYTHON ?= python3
VENV := .venv
MELTANO_VENV := .venv-meltano
# Meltano pins SQLAlchemy < 2.1 and more; it gets its own virtualenv so it cannot move the
# target's dependencies.
MELTANO_SPEC := meltano~=4.4

.PHONY: demo test test-other-pythons test-lowest

demo: $(VENV)/.installed
	bash scripts/demo.sh

test: $(VENV)/.installed-test $(MELTANO_VENV)/.installed
	bash scripts/run_tests.sh

test-other-pythons: $(VENV)/.installed-test
	bash scripts/test_other_pythons.sh

# .venv only runs scripts/lowest_constraints.py (it has packaging and a TOML reader)
test-lowest: $(VENV)/.installed-test
	bash scripts/test_lowest.sh

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is needed, found " + sys.version.split()[0] + " (set PYTHON=python3.x)")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/bin/python pyproject.toml
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

$(MELTANO_VENV)/.installed:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is needed (set PYTHON=python3.x)")'
	$(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/python -m pip install --quiet '$(MELTANO_SPEC)'
	touch $@
