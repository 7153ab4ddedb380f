#!/usr/bin/env bash
# One command: set up (Pebble, venv) and issue a real certificate end to end
# against a local Pebble CA started and stopped by the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
