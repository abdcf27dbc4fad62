#!/usr/bin/env bash
# Install everything vocals2song needs on a fresh Debian/Ubuntu machine with Python 3.10+:
# ffmpeg (musdb's import needs ffmpeg and ffprobe), FluidSynth and a General MIDI SoundFont (for
# `vocals2song chorales`), a virtual environment in .venv, and the package
# with its test extra. Safe to rerun: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  echo "setup: installing ffmpeg (apt-get)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
fi

# `vocals2song chorales` renders with libfluidsynth (package fluidsynth) and the FluidR3_GM SoundFont.
if ! command -v fluidsynth >/dev/null 2>&1 || [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then
  echo "setup: installing fluidsynth and fluid-soundfont-gm (apt-get)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fluidsynth fluid-soundfont-gm >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv  # Debian splits venv support out of python3
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
fi
echo "setup: installing vocals2song and its dependencies into .venv" >&2
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
