#!/usr/bin/env bash
# Set up ShelfSense in a virtualenv and run the demo: cloud + broker + simulators + edge, nothing to configure.
# Arguments go to `shelfsense demo` (e.g. --duration 60 --json).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mosquitto >/dev/null; then
  # Optional: without it the demo falls back to an embedded Python broker.
  (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null) \
    || echo "mosquitto not installed; the demo will use its embedded broker"
fi
if [ ! -x .venv/bin/python ]; then
  # Debian ships venv separately (python3-venv); install it only when the stdlib one is missing.
  python3 -m venv .venv 2>/dev/null || {
    rm -rf .venv
    export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv .venv
  }
fi
.venv/bin/pip install -q --disable-pip-version-check -e ".[all]"
exec .venv/bin/shelfsense demo "$@"
