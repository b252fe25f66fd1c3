#!/usr/bin/env bash
# The test command of the README: set up (idempotent), check the committed release, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
$PY -m kgen build --isa all --check
$PY -m pytest -q -p no:cacheprovider "$@"
