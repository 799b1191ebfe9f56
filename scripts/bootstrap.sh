#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian / Raspberry Pi OS machine: the Debian packages the hub and
# its tests use, then a .venv/ in the repository root with the project installed in it.
# Called by `make demo`, `make test` and `make bench`; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  mosquitto mosquitto-clients          # the broker every service talks through
  gpsd gpsd-clients                    # GPS daemon; gpsfake feeds it NMEA in tests
  portaudio19-dev pulseaudio pulseaudio-utils   # pyaudio build + null-sink audio tests
  libasound2-plugins                   # ALSA's pulse device: pyaudio (portaudio/ALSA) -> PulseAudio
  espeak-ng pocketsphinx-testdata fillets-ng-data-nl   # speech: make demo's voices, the evaluation set
  flite hedgewars-data sound-theme-freedesktop  # LOSO evaluation (sim/loso.py): voices, recorded laughs, alerts
  python3-venv python3-dev build-essential      # venv and compiling pyaudio
  sqlite3 openssl iproute2
  chromium                             # headless: tests look at the reports as a person sees them
  postgresql                           # the organisation's store on a real server in tests
)

fail() { echo "bootstrap: $*" >&2; exit 1; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail "apt-get not found; install by hand: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); else
    command -v sudo >/dev/null || fail "not root and no sudo; as root run: apt-get install ${missing[*]}"
    SUDO=(sudo)
  fi
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq || fail "apt-get update failed (network or sources.list?)"
  # env after sudo: sudo resets the environment. The lock timeout waits for unattended-upgrades.
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
    install -y -qq --no-install-recommends "${missing[@]}" \
    || fail "apt-get install failed for: ${missing[*]}"
fi
# The Debian package starts a system broker on :1883; the hub's own broker is configured by
# `timeout-hub broker-config`, and tests start private brokers on free ports, so it is not needed.

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || fail "$("$PY" --version 2>&1) is too old: Python >= 3.11 is needed"

# Python dependencies: exactly the versions and hashes in uv.lock (never a fresh resolve: a new
# numpy or scipy has changed results before). uv lives in its own small venv, .tools/, so that
# `uv sync` (which removes what the lock does not list) never removes itself.
# EXTRAS picks the services to install: "hub panel caller sim org" and the dev group by default;
# a panel-only Pi: EXTRAS=panel NO_DEV=1 bash scripts/bootstrap.sh
uv_want=$(sha256sum scripts/uv-requirements.txt | cut -d' ' -f1)
if [ ! -x .tools/bin/uv ] || [ "$(cat .tools/.installed 2>/dev/null)" != "$uv_want" ]; then
  echo "bootstrap: installing uv into .tools/"
  "$PY" -m venv .tools || fail "could not create .tools (is python3-venv installed?)"
  .tools/bin/python -m pip install -q --require-hashes -r scripts/uv-requirements.txt \
    || fail "pip could not install uv (see above)"
  echo "$uv_want" > .tools/.installed
fi
[ -n "${UV_ONLY:-}" ] && exit 0   # `make lock`: only uv is needed
sync_args=(--frozen)
for e in ${EXTRAS:-hub panel caller sim org}; do sync_args+=(--extra "$e"); done
[ -n "${NO_DEV:-}" ] && sync_args+=(--no-dev)
# never let uv download a Python of its own: the hub runs on the system's
UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=.venv .tools/bin/uv sync -q "${sync_args[@]}" \
  --python "$(command -v "$PY")" \
  || fail "uv sync from uv.lock failed (see above); after editing pyproject.toml run: make lock"
