# Barter. `make run` and `make test` need only Python >= 3.11: they make the virtual environment themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# make run's daily cycle: the seconds a CoinGecko call may take to connect and answer (one try, no retries), so
# that offline it fails at once instead of retrying (the scheduled cycle keeps COINGECKO_TIMEOUT_SECONDS and retries)
RUN_COLLECT_TIMEOUT_SECONDS ?= 5

.PHONY: run replay test lint format audit lock worker beat bench clean

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

## run: migrate, load the shipped history (while the engine compiles into Numba's cache beside it, on the other
## core) and the example strategies, run the daily cycle once (offline: one try per instrument, a short timeout),
## make an admin, serve on 127.0.0.1:8000 (the server loads the compiled engine as it starts, so the first
## simulation does not wait for it).
## The replay of the examples over the last stored year is `make replay` (about a minute per strategy).
run: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput
	$(PY) -m trading.engine.warmup & warm=$$!; $(PY) manage.py load_shipped_history && wait $$warm
	$(PY) manage.py load_example_strategies --enable
	COINGECKO_MAX_RETRIES=0 COINGECKO_TIMEOUT_SECONDS=$(RUN_COLLECT_TIMEOUT_SECONDS) $(PY) manage.py run_cycle
	$(PY) manage.py ensure_admin
	@echo
	@echo "Barter is serving on http://$(HOST):$(PORT)/"
	@echo "  admin:    http://$(HOST):$(PORT)/admin/"
	@echo "  API:      http://$(HOST):$(PORT)/api/   (Authorization: Token <key>)"
	@echo "  API docs: http://$(HOST):$(PORT)/api/docs/"
	@echo "  the replay proof of the example strategies: make replay"
	BARTER_ENGINE_WARM_AT_START=true $(PY) manage.py runserver --noreload $(HOST):$(PORT)

## replay: the example strategies (every enabled strategy) replayed by the real daily cycle, day by day, over the
## last 365 stored days into fresh disabled paper accounts (the dashboard's "Replay accounts"); skips a strategy
## already replayed over the same days
replay: $(VENV)/.runtime
	$(PY) manage.py replay --days 365 --skip-existing

## test: the whole suite (SQLite by default; DATABASE_URL=postgres://... adds the PostgreSQL-only tests)
test: $(VENV)/.dev
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## lint: ruff (style, security, Django rules), mypy with django-stubs, and import-linter (the layers of README's
## architecture, the pure engine, no import cycles: pyproject.toml [tool.importlinter])
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

## audit: pip-audit of every locked dependency (runtime and dev) against PyPI's vulnerability data; fails on a
## known vulnerability and (--strict) on a package it could not check. tools/audit_gate.py (.ci/run) reruns it
## with AUDIT_STRICT= AUDIT_FORMAT=json to tell "its data cannot be reached" from "a package cannot be checked".
AUDIT_STRICT ?= --strict
AUDIT_FORMAT ?= columns
audit: $(VENV)/.dev
	$(VENV)/bin/pip-audit $(AUDIT_STRICT) --format $(AUDIT_FORMAT) --require-hashes --disable-pip --progress-spinner off \
		-r requirements-dev.lock

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## worker: a Celery worker (needs REDIS_URL) consuming both queues: the trading steps' ($BARTER_CELERY_QUEUE) and the
## simulator's ($BARTER_CELERY_QUEUE-simulator); -Q one of them makes a dedicated worker (README)
worker: $(VENV)/.runtime
	$(VENV)/bin/celery -A barter_site worker --loglevel=INFO

## beat: Celery beat: starts trading.daily_cycle at 00:40 UTC (BARTER_DAILY_CYCLE_CRON); needs REDIS_URL and a worker
BEAT_SCHEDULE ?= /tmp/barter-celerybeat-schedule
beat: $(VENV)/.runtime
	$(VENV)/bin/celery -A barter_site beat --loglevel=INFO --schedule $(BEAT_SCHEDULE)

## bench: the speed figures of benchmarks/README.md (needs PostgreSQL and Redis: BENCH_DATABASE_URL,
## BENCH_REDIS_URL; and the one-minute candles, MINUTES). Fresh processes run in .venv-runtime, which holds the
## runtime dependencies only, as deployed. VECTORBT_PYTHON, when set, is the interpreter of a virtual environment
## of its own holding vectorbt 1.x (never a dependency of Barter): the engine is then timed against it
## (benchmarks/engine_vs_vectorbt.py: one run on minutes; benchmarks/sweep_vs_vectorbt.py: a 1,000-point sweep on
## the shipped daily BTC); empty, those comparisons are skipped.
MINUTES ?= ../shared/data/minute/binance_btcusdt_1m_2024
VECTORBT_PYTHON ?=
.venv-runtime/.created: requirements.lock
	$(PYTHON) -m venv .venv-runtime
	.venv-runtime/bin/pip install --quiet --require-hashes -r requirements.lock
	@touch $@

bench: $(VENV)/.dev .venv-runtime/.created
	$(PY) benchmarks/engine_minutes.py $(MINUTES) --python .venv-runtime/bin/python
	$(if $(VECTORBT_PYTHON),$(PY) benchmarks/engine_vs_vectorbt.py $(MINUTES) --vectorbt-python $(VECTORBT_PYTHON))
	$(if $(VECTORBT_PYTHON),$(PY) benchmarks/sweep_vs_vectorbt.py --vectorbt-python $(VECTORBT_PYTHON))
	$(PY) benchmarks/simulator_request.py
	$(PY) benchmarks/simulator_minutes.py $(MINUTES)
	$(PY) benchmarks/simulator_sweep.py
	$(PY) benchmarks/sweep_api_10000.py
	$(PY) benchmarks/walk_forward_1000.py
	$(PY) benchmarks/engine_monte_carlo.py
	$(PY) benchmarks/portfolio_10x5.py
	$(PY) benchmarks/audit_day.py
	$(PY) benchmarks/abuse.py --database postgres

## lock: re-pin requirements*.lock from pyproject.toml (needs the package registry)
lock: $(VENV)/.created
	$(VENV)/bin/pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 --universal --generate-hashes -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --group dev --python-version 3.11 --universal --generate-hashes \
		-o requirements-dev.lock

clean:
	rm -rf $(VENV) .venv-runtime db.sqlite3 staticfiles .pytest_cache .mypy_cache .ruff_cache
