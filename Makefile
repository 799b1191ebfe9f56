# Two set-up commands for a newcomer: `make demo` and `make test`. Both install what they need.
.PHONY: setup demo test bench docs clean

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/timeout-hub demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m bench

# Regenerates the generated part of docs/mqtt.md from mqtt/contract.py (a test checks it is current).
docs: setup
	$(PY) -m mqtt.docgen --write docs/mqtt.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
