#!/usr/bin/env bash
# Regenerate completions/ from the click command tree (tests/test_docs.py checks they match).
#   scripts/gen-completions.sh            # with .venv/bin/python, or $PYTHON
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p completions
_CERTCTL_COMPLETE=bash_source "$PYTHON" -m certctl > completions/certctl.bash
_CERTCTL_COMPLETE=zsh_source "$PYTHON" -m certctl > completions/_certctl
_CERTCTL_COMPLETE=fish_source "$PYTHON" -m certctl > completions/certctl.fish
echo "wrote completions/certctl.bash completions/_certctl completions/certctl.fish"
