# Two set-up commands for a newcomer: `make demo` and `make test`. Both install what they need.
.PHONY: setup demo test lint bench soak docs lock lock-upgrade clean install install-org

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/timeout-hub demo

test: setup lint
	$(PY) -m pytest -q

# ruff on everything; mypy on what decides and what crosses the bus ([tool.mypy] files);
# the layout's import rules ([tool.importlinter]). `make test` runs it first.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

bench: setup
	$(PY) -m bench

# The soak of `make bench` (50 inputs/s into the real hub through the real broker) for an hour:
# memory, file descriptors, threads and database size must level off. `make soak SOAK_SECONDS=600`
SOAK_SECONDS ?= 3600
soak: setup
	$(PY) -m bench.soak_bench --seconds $(SOAK_SECONDS)

# Regenerates the generated part of docs/mqtt.md from mqtt/contract.py (a test checks it is current).
docs: setup
	$(PY) -m mqtt.docgen --write docs/mqtt.md

# uv.lock pins every Python dependency with its hashes; bootstrap installs exactly that.
# `make lock` after editing pyproject.toml (keeps the pinned versions that still fit);
# `make lock-upgrade` moves every pin to the newest allowed release (then run make test and make bench).
lock:
	@UV_ONLY=1 bash scripts/bootstrap.sh
	.tools/bin/uv lock

lock-upgrade:
	@UV_ONLY=1 bash scripts/bootstrap.sh
	.tools/bin/uv lock --upgrade

# On a Pi: `sudo make install` (users, /opt/timeout-hub with its venv, units, Mosquitto drop-in,
# /etc/timeout-hub owners and modes). `make install DESTDIR=DIR` lays the same files under DIR and
# touches nothing on this machine (a package build). docs/install.md
install:
	@DESTDIR="$(DESTDIR)" ENABLE="$(ENABLE)" SKIP_VENV="$(SKIP_VENV)" bash scripts/install.sh

# The care organisation's server: its service and the care worker's page (docs/care.md).
install-org:
	@DESTDIR="$(DESTDIR)" ENABLE=org SKIP_VENV="$(SKIP_VENV)" bash scripts/install.sh

clean:
	rm -rf $(VENV) .tools .pytest_cache .hypothesis .ruff_cache .mypy_cache
