# The README's Quick start is exactly two commands: `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

# What the test suite runs against (PostgreSQL and Redis on loopback, started if installed).
TEST_ENV := DATABASE_URL=postgres://postgres@127.0.0.1:5432/watchpost \
	CACHE_URL=redis://127.0.0.1:6379/1 \
	CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \
	WATCHPOST_STATICFILES_STORAGE=django.contrib.staticfiles.storage.StaticFilesStorage

.PHONY: run test install install-dev lint typecheck pytest bench clean test-reliability fuzz security

$(BIN)/.installed: requirements.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-dev: requirements-dev.txt requirements.txt $(BIN)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed
install-dev: $(BIN)/.installed-dev

## make run: fresh machine, embedded defaults (SQLite, filesystem broker), web server + real worker.
run: install
	./scripts/system_packages.sh --pdf
	$(BIN)/python scripts/run_embedded.py --port $(PORT)

## make test: lint, types, bandit and the whole suite on PostgreSQL and Redis (tests/reliability: make test-reliability).
test: install-dev
	./scripts/services.sh
	./scripts/system_packages.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(TEST_ENV) $(BIN)/mypy .
	$(TEST_ENV) $(BIN)/python manage.py makemigrations --check --dry-run
	$(TEST_ENV) $(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/bandit -c pyproject.toml -r . -q --severity-level high
	$(TEST_ENV) $(BIN)/pytest -n 2 -p no:cacheprovider --ignore=tests/reliability $(ARGS)

## make test-reliability: fault injection (tests/reliability). Each test starts, breaks and stops its own
## Redis, workers, web server and PostgreSQL on free loopback ports; never the shared 5432/6379 servers.
test-reliability: install-dev
	./scripts/services.sh
	$(TEST_ENV) $(BIN)/pytest -p no:cacheprovider tests/reliability $(ARGS)

## make fuzz: each atheris target, 10^5 executions, 0 crashes (fuzz/README.md). `make -j2 fuzz` runs two at once.
FUZZ_TARGETS := fuzz_guardduty fuzz_markdown fuzz_timeline_csv fuzz_rbac
FUZZ_RUNS ?= 100000
fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS))

fuzz-%: install-dev
	@mkdir -p var/fuzz
	@echo "== $* ($(FUZZ_RUNS) runs)"
	@$(TEST_ENV) $(BIN)/python fuzz/$*.py -runs=$(FUZZ_RUNS) > var/fuzz/$*.log 2>&1 \
		|| { tail -n 40 var/fuzz/$*.log; echo "FUZZ CRASH in $* (log: var/fuzz/$*.log)"; exit 1; }
	@grep -E "^Done " var/fuzz/$*.log | sed "s/^/$*: /"

## make security: static analysis alone (bandit, high severity; config in pyproject.toml).
security: install-dev
	$(BIN)/bandit -c pyproject.toml -r . -q --severity-level high

## make pytest ARGS=tests/playbooks: just the tests, same environment as `make test`.
pytest: install-dev
	./scripts/services.sh >/dev/null
	$(TEST_ENV) $(BIN)/pytest $(ARGS)

lint: install-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: install-dev
	./scripts/services.sh
	$(TEST_ENV) $(BIN)/python benchmarks/run.py $(ARGS)

## make bench-ingest [ARGS=--quick]: GuardDuty ingestion throughput (P1–P3), own database watchpost_bench_ingest.
.PHONY: bench-ingest
bench-ingest: install-dev
	./scripts/services.sh
	$(TEST_ENV) $(BIN)/python benchmarks/ingest.py $(ARGS)

## make bench-ingest-floor: PostgreSQL's own CPU per ingested event, the statements replayed without the app.
.PHONY: bench-ingest-floor
bench-ingest-floor: install-dev
	./scripts/services.sh
	$(TEST_ENV) $(BIN)/python benchmarks/ingest_floor.py $(ARGS)

## make bench-ui [ARGS="--rounds 9"]: first paint in headless Chromium, live vs static HTML (P13).
.PHONY: bench-ui
bench-ui: install-dev
	./scripts/services.sh
	./scripts/system_packages.sh
	$(TEST_ENV) $(BIN)/python benchmarks/firstpaint.py $(ARGS)

## make bench-rbac: the RBAC exposure scan over 10k bindings and 2k roles vs json.loads (P10); no services needed.
.PHONY: bench-rbac
bench-rbac: install-dev
	$(BIN)/python benchmarks/rbac.py $(ARGS)

## make bench-api [ARGS=--quick]: API framework overhead and token check (P11), own database watchpost_bench_api.
.PHONY: bench-api
bench-api: install-dev
	./scripts/services.sh
	$(TEST_ENV) $(BIN)/python benchmarks/api.py $(ARGS)

## make test-api-fuzz: schemathesis with 150 examples per operation (make test runs 20).
.PHONY: test-api-fuzz
test-api-fuzz: install-dev
	./scripts/services.sh >/dev/null
	WATCHPOST_FUZZ_EXAMPLES=150 $(TEST_ENV) $(BIN)/pytest -p no:cacheprovider tests/api/test_schema_fuzz.py $(ARGS)

clean:
	rm -rf var

## make bench-queries [ARGS=--quick]: query results to CSV evidence (P9), 1M rows × 12 columns, peak RSS.
.PHONY: bench-queries
bench-queries: install-dev
	$(BIN)/python benchmarks/queries.py $(ARGS)

## make audit-deps: pip-audit of the pinned runtime and test dependencies (S12). It asks PyPI's JSON
## API for known vulnerabilities, so it needs a network that reaches pypi.org/pypi/<name>/<version>/json.
.PHONY: audit-deps
audit-deps: install-dev
	$(BIN)/pip-audit --strict -r requirements.txt -r requirements-dev.txt --vulnerability-service pypi --progress-spinner off
