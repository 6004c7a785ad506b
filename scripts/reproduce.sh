#!/usr/bin/env bash
# Install ticketlab (into .venv) and reproduce the paper at the quick scale: every figure, then the
# report. Extra arguments go to `ticketlab reproduce` (e.g. --scale paper, --device cuda).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec "$root/.venv/bin/ticketlab" reproduce "$@"
