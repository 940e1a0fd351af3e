# Every target sets the machine up first when needed (scripts/setup.sh is idempotent).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test unit integration lint bench bench-smoke soak clean

setup:
	@scripts/setup.sh

# make demo SCENARIO=refer: the phone's own Transfer button instead of the hotkeys
demo: setup
	$(PY) -m controller.cli demo --scenario $(or $(SCENARIO),hotkey)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q tests

unit: setup
	$(PY) -m pytest -q tests/unit

integration: setup
	$(PY) -m pytest -q tests/integration

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) -m benchmarks.run

bench-smoke: setup
	$(PY) -m benchmarks.run --smoke

# one hour near the rated load (not in CI): SOAK_ARGS="--duration 120 --warmup 30 --rate 20" for a short check
soak: setup
	$(PY) -m benchmarks.soak $(SOAK_ARGS)

clean:
	rm -rf run .pytest_cache .ruff_cache
