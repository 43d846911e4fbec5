#!/usr/bin/env bash
# Install the project with its test tools and the store emulator, at the versions in constraints.txt.
# Skipped when this Python already imports this checkout's gateway, installed from the same constraints.txt
# and pyproject files (a stamp in .cache/): pip takes 10 s to find nothing to do, and .ci/run asks twice.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.cache/install-stamp
wanted="$(python3 -c 'import sys; print(sys.executable, sys.version)') $(cat constraints.txt pyproject.toml emulator/pyproject.toml | sha256sum)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && python3 -c "
import pathlib, sys, gateway, store_emulator
here = pathlib.Path.cwd().resolve()
sys.exit(not all(pathlib.Path(m.__file__).resolve().is_relative_to(here) for m in (gateway, store_emulator)))" 2>/dev/null; then
  exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]' -e ./emulator
mkdir -p .cache && printf '%s' "$wanted" > "$stamp"
