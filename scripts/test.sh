#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine (as root) and run it.
# Real servers, no mocks: Mosquitto, InfluxDB 1.x, socat for pty links; PostgreSQL is used when reachable
# (SHELFSENSE_TEST_PG_URL, default postgresql://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v mosquitto >/dev/null || missing+=(mosquitto mosquitto-clients)
command -v influxd >/dev/null || missing+=(influxdb)
command -v socat >/dev/null || missing+=(socat)
command -v nginx >/dev/null || missing+=(nginx-light)  # TLS proxy in front of cloud replicas (tests/deploy)
command -v systemd-analyze >/dev/null || missing+=(systemd)  # `systemd-analyze verify` of deploy/systemd
command -v pg_dump >/dev/null || missing+=(postgresql-client)  # cloud backup/restore on PostgreSQL
[ -x /usr/bin/chromium ] || missing+=(chromium)  # Debian's browser for tests/web (Playwright drives it)
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-wqy-microhei)  # CJK glyphs in the zh-CN screenshots
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# A local PostgreSQL that is installed but stopped is started; none installed means the PG tests skip visibly.
if command -v pg_ctlcluster >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  for version in /etc/postgresql/*; do
    [ -d "$version/main" ] && pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
  done
fi

if [ ! -x .venv/bin/python ]; then
  # Debian ships venv separately (python3-venv); install it only when the stdlib one is missing.
  python3 -m venv .venv 2>/dev/null || {
    rm -rf .venv
    export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv .venv
  }
fi
.venv/bin/pip install -q --disable-pip-version-check -e ".[all,test]"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy shelfsense devices simulators edge cloud dashboards
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
