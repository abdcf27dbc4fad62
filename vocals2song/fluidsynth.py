"""A minimal ctypes binding to libfluidsynth: render one part, note events in, stereo samples out.

We schedule the note-on and note-off events ourselves and pull the samples between them, so nothing but the
library (Debian: ``fluidsynth``, which brings ``libfluidsynth3``) and a SoundFont is needed: no MIDI files,
no audio driver and no Python wrapper package.

Every part is rendered by a fresh synthesizer, so a part's samples never depend on what the process rendered
before it (reruns and resumed runs give identical bytes). Reverb and chorus are off: the stems stay dry and
exactly additive. A hidden synthesizer keeps the SoundFont loaded for the life of the process, so FluidSynth's
sample cache serves every later load from memory: the 148 MB FluidR3_GM is read once per worker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocals2song.errors import Vocals2SongError

#: what to run when the library or the SoundFont is missing
INSTALL_HINT = "sudo apt-get install fluidsynth fluid-soundfont-gm"
#: library names tried in order (tests replace them to simulate a machine without FluidSynth)
LIBRARY_NAMES = ("fluidsynth", "libfluidsynth.so.3", "libfluidsynth.so.2")
#: FluidSynth's synth.sample-rate range
SAMPLE_RATES = (8000, 96000)

_P = ctypes.c_void_p
_SIGNATURES = {
    "new_fluid_settings": (_P, []),
    "delete_fluid_settings": (None, [_P]),
    "fluid_settings_setnum": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_double]),
    "fluid_settings_setint": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_int]),
    "new_fluid_synth": (_P, [_P]),
    "delete_fluid_synth": (None, [_P]),
    "fluid_synth_sfload": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_int]),
    "fluid_synth_program_select": (ctypes.c_int, [_P, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]),
    "fluid_synth_cc": (ctypes.c_int, [_P, ctypes.c_int, ctypes.c_int, ctypes.c_int]),
    "fluid_synth_noteon": (ctypes.c_int, [_P, ctypes.c_int, ctypes.c_int, ctypes.c_int]),
    "fluid_synth_noteoff": (ctypes.c_int, [_P, ctypes.c_int, ctypes.c_int]),
    "fluid_synth_write_float": (ctypes.c_int, [_P, ctypes.c_int, _P, ctypes.c_int, ctypes.c_int, _P, ctypes.c_int,
                                               ctypes.c_int]),
    "fluid_set_log_function": (_P, [ctypes.c_int, _P, _P]),
}


@dataclass(frozen=True)
class Note:
    """One note of a part: start and end in samples, MIDI pitch and velocity."""

    start: int
    end: int
    pitch: int
    velocity: int


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """Load libfluidsynth once per process, or raise the one-line install hint."""
    for name in LIBRARY_NAMES:
        path = ctypes.util.find_library(name) if "." not in name else name
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        try:
            for fn, (restype, argtypes) in _SIGNATURES.items():
                getattr(lib, fn).restype = restype
                getattr(lib, fn).argtypes = argtypes
        except AttributeError:
            continue  # too old a FluidSynth (we need 2.x)
        for level in range(5):  # its warnings would break the progress bar; errors are checked by return codes
            lib.fluid_set_log_function(level, None, None)
        return lib
    raise Vocals2SongError(f"the FluidSynth synthesizer (libfluidsynth 2) is not installed; run: {INSTALL_HINT}")


def check_soundfont(soundfont: str | os.PathLike) -> Path:
    """The SoundFont's path if FluidSynth loads it; else a one-line error naming the install command."""
    path = Path(soundfont)
    if not path.is_file():
        raise Vocals2SongError(f"no such SoundFont; install the default one with `{INSTALL_HINT}` or give "
                               "--soundfont FILE.sf2", path)
    with open(path, "rb") as f:
        header = f.read(12)
    # Checked here first: handed other files, FluidSynth's DLS loader prints glib warnings of its own.
    is_sf2 = header[:4] == b"RIFF" and header[8:12].lower() == b"sfbk"
    with _Synth(44100) as synth:
        if not is_sf2 or synth.load(path) < 0:
            raise Vocals2SongError(f"FluidSynth cannot load this as a SoundFont (.sf2); give another --soundfont "
                                   f"or install the default one with `{INSTALL_HINT}`", path)
    return path


class _Synth:
    """One FluidSynth synthesizer; a context manager that frees it."""

    def __init__(self, sr: int):
        self.lib = library()
        self.settings = self.lib.new_fluid_settings()
        self.lib.fluid_settings_setnum(self.settings, b"synth.sample-rate", float(sr))
        self.lib.fluid_settings_setint(self.settings, b"synth.reverb.active", 0)
        self.lib.fluid_settings_setint(self.settings, b"synth.chorus.active", 0)
        self.lib.fluid_settings_setint(self.settings, b"synth.cpu-cores", 1)
        self.lib.fluid_settings_setint(self.settings, b"synth.polyphony", 256)
        self.synth = self.lib.new_fluid_synth(self.settings)
        if not self.synth:
            self.lib.delete_fluid_settings(self.settings)
            raise Vocals2SongError(f"FluidSynth could not start a synthesizer at {sr} Hz")

    def load(self, soundfont: Path) -> int:
        return self.lib.fluid_synth_sfload(self.synth, os.fsencode(soundfont), 1)

    def close(self) -> None:
        if self.synth:
            self.lib.delete_fluid_synth(self.synth)
            self.lib.delete_fluid_settings(self.settings)
            self.synth = None

    def __enter__(self) -> "_Synth":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_holders: dict[tuple[str, int], _Synth] = {}


def _keep_loaded(soundfont: Path, sr: int) -> None:
    """Hold the SoundFont in this process's FluidSynth sample cache (freed at exit)."""
    key = (str(soundfont), sr)
    if key not in _holders:
        holder = _Synth(sr)
        if holder.load(soundfont) < 0:
            holder.close()
            raise Vocals2SongError("FluidSynth cannot load this as a SoundFont (.sf2)", soundfont)
        _holders[key] = holder


def render_part(notes: list[Note], nb_samples: int, soundfont: str | os.PathLike, sr: int, program: int,
                bank: int = 0, pan: float = 0.0) -> np.ndarray:
    """Render one part's notes on one GM program: float32 ``(nb_samples, 2)``.

    ``pan`` in [-1, 1] (left..right) goes to MIDI CC 10. Events at the same sample are sent note-offs first,
    so a repeated pitch is struck again.
    """
    soundfont = Path(soundfont)
    _keep_loaded(soundfont, sr)
    events = sorted([(n.start, 1, n.pitch, n.velocity) for n in notes] + [(n.end, 0, n.pitch, 0) for n in notes])
    y = np.zeros((2, nb_samples), dtype=np.float32)
    left, right = y[0], y[1]
    with _Synth(sr) as synth:
        sfont_id = synth.load(soundfont)
        if sfont_id < 0:
            raise Vocals2SongError("FluidSynth cannot load this as a SoundFont (.sf2)", soundfont)
        lib, s = synth.lib, synth.synth
        if lib.fluid_synth_program_select(s, 0, sfont_id, bank, program) != 0:
            raise Vocals2SongError(f"the SoundFont has no preset for bank {bank}, program {program}", soundfont)
        lib.fluid_synth_cc(s, 0, 10, int(round(64 + 63 * max(-1.0, min(1.0, pan)))))
        done = 0
        for when, is_on, pitch, velocity in events:
            when = min(when, nb_samples)
            if when > done:
                _write(lib, s, left, right, done, when)
                done = when
            if is_on:
                lib.fluid_synth_noteon(s, 0, pitch, velocity)
            else:
                lib.fluid_synth_noteoff(s, 0, pitch)
        if nb_samples > done:
            _write(lib, s, left, right, done, nb_samples)
    return np.ascontiguousarray(y.T)


def _write(lib, synth, left: np.ndarray, right: np.ndarray, start: int, stop: int) -> None:
    """Pull samples [start, stop) into the two channel buffers (in chunks: the length is a C int)."""
    chunk = 1 << 20
    for a in range(start, stop, chunk):
        n = min(chunk, stop - a)
        lp = left.ctypes.data + 4 * a
        rp = right.ctypes.data + 4 * a
        if lib.fluid_synth_write_float(synth, n, lp, 0, 1, rp, 0, 1) != 0:
            raise Vocals2SongError("FluidSynth failed to render samples")
