#!/usr/bin/env bash
# Install what the test suite needs (Python packages, Debian's Chromium for the browser tests) and run it.
# Runs in parallel with pytest-xdist (PYTEST_WORKERS, default 4, one database per worker); arguments go
# to pytest, e.g. `bash scripts/test.sh -m "not browser"`, `-n 0` or `-p no:xdist` to debug in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "chromium is not installed and this is not root: browser tests will be skipped" >&2
  fi
fi
# The versions in constraints.txt (scripts/lock.sh regenerates it); the store emulator, its own
# distribution, for the tests that drive it.
bash scripts/install.sh
# Four on two cores: much of the suite waits (browsers, live servers, PostgreSQL), and a fourth worker
# fills those waits (measured faster than three, and than five).
parallel=(-n "${PYTEST_WORKERS:-4}" --dist loadgroup)
for arg in "$@"; do
  case "$arg" in
    no:xdist | -pno:xdist) parallel=() ;;
  esac
done
exec python3 -m pytest "${parallel[@]}" "$@"
