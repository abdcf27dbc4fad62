#!/usr/bin/env bash
# Install everything vocals2song needs on a fresh Debian/Ubuntu machine with Python 3.10+:
# ffmpeg (musdb's import needs ffmpeg and ffprobe), FluidSynth and a General MIDI SoundFont (for `vocals2song
# chorales` and the demo), chromium (only for the listening-page browser test), a virtual environment in .venv
# (about 2.7 GB, TensorFlow 1.9 GB of it), and the package with its test extra.
# Safe to rerun: it skips what is already there. pip's full output goes to .venv/setup.log.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

say() { echo "setup: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    say "apt-get update"
    as_root apt-get update -qq
    apt_updated=1
  fi
  say "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  apt_install ffmpeg
else
  say "ffmpeg: found"
fi
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  say "chromium: found (the listening-page test uses it headless)"
elif [ -n "${VOCALS2SONG_NO_CHROMIUM:-}" ]; then
  say "chromium: not installed (VOCALS2SONG_NO_CHROMIUM is set); the browser test will be skipped"
elif ! apt_install chromium; then
  say "chromium: could not be installed; the browser test will be skipped (everything else works)"
fi

# `vocals2song chorales` renders with libfluidsynth (package fluidsynth) and the FluidR3_GM SoundFont.
if ! command -v fluidsynth >/dev/null 2>&1 || [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then
  apt_install fluidsynth fluid-soundfont-gm
else
  say "fluidsynth and FluidR3_GM: found"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv  # Debian splits venv support out of python3
    apt_install python3-venv
    "$PYTHON" -m venv .venv
  fi
fi

# pip runs only when setup.cfg or pyproject.toml changed since the last complete install (or nothing is installed).
stamp=.venv/.vocals2song-setup
want="$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import vocals2song" 2>/dev/null; then
  say ".venv is up to date (delete $stamp to reinstall)"
else
  say "installing vocals2song and its dependencies into .venv: about 2.7 GB; a few minutes the first time"
  log=.venv/setup.log
  : >"$log"
  # Only pip's progress lines are shown (one per package); the rest, including any setuptools notice, is in the log.
  set +e
  {
    .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off --upgrade pip &&
    .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -e ".[test]" &&
    # basic-pitch (the note judge's transcriber) pins tensorflow<2.15.1 and would replace ours; its ONNX model
    # needs only what setup.cfg lists (onnxruntime, mir_eval, pretty_midi, resampy), so it goes in without its
    # dependencies. pip then warns of the unmet pin on later installs; nothing imports that TensorFlow path
    .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off --no-deps "basic-pitch==0.4.0"
  } 2>&1 | tee -a "$log" | grep --line-buffered -E '^(Collecting|Installing collected|Successfully installed|ERROR)' | grep --line-buffered -v 'dependency resolver' |
    cut -c1-110 | sed -u 's/^/setup:   /' >&2
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    say "pip failed; the end of $log:"
    tail -n 30 "$log" >&2
    exit "$status"
  fi
  echo "$want" >"$stamp"
fi
say "ready in $((SECONDS - start)) s: .venv/bin/vocals2song, .venv/bin/python -m pytest"
