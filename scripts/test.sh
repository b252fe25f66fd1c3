#!/usr/bin/env bash
# The test command of the README: set up (idempotent), check the committed release, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
for isa in generic armv7em xpulpv2; do
  $PY -m kgen build --isa "$isa" --check
done
$PY -m pytest -q -p no:cacheprovider "$@"
