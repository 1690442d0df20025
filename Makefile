# Two commands: `make run` serves on the embedded SQLite default, `make test` runs the suite.
# Both install the exact versions of requirements.lock into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint lock clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/dispatcher serve

# Three pytest-xdist workers on this 2-core machine, since many tests wait on receivers,
# leases and processes (the whole suite: 12.3 min with 3, 14.6 with 2, same machine); tests
# marked xdist_group("heavy") run one after another on one of them (conftest.py).
# TEST_WORKERS=0 runs in this process; PYTEST_ARGS are passed on.
TEST_WORKERS ?= 3

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# Re-resolve the ranges of pyproject.toml into a fresh lock (needs the registry).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e '.[test]'
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache dispatcher.db dispatcher.db-wal dispatcher.db-shm dispatcher.db.wake
