# Barter. `make run` and `make test` need only Python >= 3.11: they make the virtual environment themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format lock worker clean

$(VENV)/.created:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Barter needs Python >= 3.11; found " + sys.version' \
		|| (echo "Set PYTHON=python3.11 (or newer): make PYTHON=python3.11 run"; exit 1)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.runtime: requirements.lock $(VENV)/.created
	$(VENV)/bin/pip install --quiet --require-hashes -r requirements.lock
	@touch $@

$(VENV)/.dev: requirements-dev.lock $(VENV)/.created
	$(VENV)/bin/pip install --quiet --require-hashes -r requirements-dev.lock
	@touch $@ $(VENV)/.runtime

## run: migrate, load the shipped history and the example strategies, replay them over the last stored year,
## run the daily cycle once, make an admin, serve on 127.0.0.1:8000
run: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_shipped_history
	$(PY) manage.py load_example_strategies --enable
	$(PY) manage.py replay --days 365 --skip-existing
	$(PY) manage.py run_cycle
	$(PY) manage.py ensure_admin
	@echo
	@echo "Barter is serving on http://$(HOST):$(PORT)/"
	@echo "  admin:    http://$(HOST):$(PORT)/admin/"
	@echo "  API:      http://$(HOST):$(PORT)/api/   (Authorization: Token <key>)"
	@echo "  API docs: http://$(HOST):$(PORT)/api/docs/"
	$(PY) manage.py runserver --noreload $(HOST):$(PORT)

## test: the whole suite (SQLite by default; DATABASE_URL=postgres://... adds the PostgreSQL-only tests)
test: $(VENV)/.dev
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## lint: ruff (style, security, Django rules) and mypy with django-stubs
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## worker: a Celery worker (needs REDIS_URL)
worker: $(VENV)/.runtime
	$(VENV)/bin/celery -A barter_site worker --loglevel=INFO

## lock: re-pin requirements*.lock from pyproject.toml (needs the package registry)
lock: $(VENV)/.created
	$(VENV)/bin/pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 --universal --generate-hashes -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --group dev --python-version 3.11 --universal --generate-hashes \
		-o requirements-dev.lock

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache .mypy_cache .ruff_cache
