#!/usr/bin/env bash
# The checks besides the tests: lint (ruff), types (mypy, strict on gateway/) and the layers (import-linter,
# contracts in .importlinter). Installs the pinned tools first, as scripts/test.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "ruff:" && python3 -m ruff check gateway tests emulator bench
echo "mypy:" && python3 -m mypy
echo "import-linter:" && lint-imports
