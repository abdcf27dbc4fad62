#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the demo on the real MUSDB18 excerpt that ships with stempeg.
# Usage: bash scripts/demo.sh [OUT]   (default OUT: demo/)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo_codec.py "${1:-demo}"
