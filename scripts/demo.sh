#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run `vocals2song demo`: the whole chain on the real MUSDB18 excerpt that ships
# with stempeg (encode, train the tiny model on the CPU, predict the mixture from the vocals).
# Usage: bash scripts/demo.sh [OUT] [STEPS]   (default OUT: demo/, STEPS: 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/vocals2song demo --out "${1:-demo}" --steps "${2:-1000}"
