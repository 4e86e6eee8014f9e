# Two commands, on a fresh machine with Python 3.10+, make and bash:
#   make demo   install, then sample orders -> target-meta-capi -> local sandbox, and what arrived
#   make test   install, then ruff, mypy and the whole test suite (PostgreSQL + Meltano end to end)
# and, for CI:
#   make test-other-pythons   the suite without end-to-end tests on the other Pythons 3.10-3.15
#                             (3.14 and 3.15 in a Debian chroot if this machine lacks them)
#   make test-lowest          the suite without end-to-end tests against the lowest versions
#                             pyproject.toml allows, on the oldest of those Pythons
#   make test-next-sdk        mypy and the suite without end-to-end tests against the next
#                             singer-sdk minor release pyproject.toml admits (a pre-release)

PYTHON ?= python3
VENV := .venv
MELTANO_VENV := .venv-meltano
# Meltano pins SQLAlchemy < 2.1 and more; it gets its own virtualenv so it cannot move the
# target's dependencies.
MELTANO_SPEC := meltano~=4.4
# singer-sdk's newest pre-release of the next minor (0.55), which `~=0.54` will admit once it is
# final: move it to each new pre-release, then to the release
NEXT_SINGER_SDK := 0.55.0b7

.PHONY: demo test test-other-pythons test-lowest test-next-sdk

demo: $(VENV)/.installed
	bash scripts/demo.sh

test: $(VENV)/.installed-test $(MELTANO_VENV)/.installed
	bash scripts/run_tests.sh

test-other-pythons: $(VENV)/.installed-test
	bash scripts/test_other_pythons.sh

# .venv only runs scripts/lowest_constraints.py (it has packaging and a TOML reader)
test-lowest: $(VENV)/.installed-test
	bash scripts/test_lowest.sh

test-next-sdk:
	NEXT_SINGER_SDK=$(NEXT_SINGER_SDK) PYTHON=$(PYTHON) bash scripts/test_next_sdk.sh

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
