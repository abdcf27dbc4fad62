"""Benchmark the spectrogram <-> image codec of every format on real music.

For each image format (and rgb8 in the seed project's BMP container too) it measures:

- round-trip fidelity: SNR in dB of sound -> image file -> sound, decoded with the stored phase, for the
  mixture and the vocals of the real MUSDB18 excerpt shipped with stempeg (~6 s, mono = mean of channels);
- the size in bytes of the image of one 15 s segment;
- the encode time per 15 s segment (STFT + pixel encoding + writing the file);
- the decode time per 15 s segment (reading the file + pixel decoding + inverse STFT).

The excerpt is shorter than a segment, so for size and timing the mixture is looped to 15 s (661500 samples
at 44.1 kHz). Times are the median of ``--repeats`` runs, single process. The fidelity floors are those of
SPEC.md ("The image", "Fidelity floors"); the script exits 1 when any floor is missed.

    python scripts/bench_codec.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vocals2song import audio, codec, imagefile
from vocals2song.config import CodecConfig

#: SPEC.md, "Fidelity floors": minimum round-trip SNR in dB on real music, by format.
FLOORS_DB = {"rgb8": 40.0, "rgba8": 46.0, "tiff16": 85.0, "png16": 85.0, "float32": 120.0}
#: (format, container) pairs to measure; None = the format's default container.
CASES = [("rgb8", None), ("rgb8", "bmp"), ("rgba8", None), ("tiff16", None), ("png16", None), ("float32", None)]
SEGMENT_SECONDS = 15.0
#: MUSDB18 stream order inside a .stem.mp4
STREAMS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}


def load_excerpt() -> tuple[dict[str, np.ndarray], int, str]:
    """Mono float32 mixture and vocals of stempeg's MUSDB18 example, its sample rate and file name."""
    import stempeg

    path = stempeg.example_stem_path()
    stems, sr = stempeg.read_stems(path, dtype=np.float32)
    mono = {name: audio.to_mono(np.asarray(stems[STREAMS[name]], dtype=np.float32)) for name in ("mixture", "vocals")}
    return mono, int(sr), Path(path).name


def round_trip(y: np.ndarray, cfg: CodecConfig, path: Path) -> tuple[np.ndarray, float, float, int]:
    """sound -> image file -> sound. Returns (decoded, encode seconds, decode seconds, file bytes)."""
    t0 = time.perf_counter()
    pixels, meta = codec.encode_audio(y, cfg)
    imagefile.write_image(path, pixels, meta.to_json())
    t1 = time.perf_counter()
    pixels2, meta_json = imagefile.read_image(path)
    decoded = codec.decode_audio(pixels2, codec.ImageMeta.from_json(meta_json, path), path=path)
    t2 = time.perf_counter()
    return decoded, t1 - t0, t2 - t1, path.stat().st_size


def loop_to(y: np.ndarray, nb_samples: int) -> np.ndarray:
    return np.resize(y, nb_samples).astype(np.float32)  # np.resize repeats the array cyclically


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per format; the median is reported (default 5)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    stems, sr, name = load_excerpt()
    segment = round(SEGMENT_SECONDS * sr)
    looped = loop_to(stems["mixture"], segment)
    print(f"Source: {name} (stempeg's MUSDB18 excerpt), {len(stems['mixture']) / sr:.2f} s at {sr} Hz, "
          "mono = mean of channels.")
    print("SNR: full excerpt, sound -> image file -> sound with the stored phase.")
    print(f"Size and times: the mixture looped to {SEGMENT_SECONDS:g} s ({segment} samples) = one segment; "
          f"median of {args.repeats} runs, one process.")
    print("  encode = STFT + pixel encoding + file write; decode = file read + pixel decoding + inverse STFT.")
    print()

    header = (f"{'format':<8} {'file':<5} {'SNR mix':>9} {'SNR voc':>9} {'floor':>7} {'result':>6} "
              f"{'15 s image':>12} {'encode':>9} {'decode':>9}")
    units = f"{'':<8} {'':<5} {'(dB)':>9} {'(dB)':>9} {'(dB)':>7} {'':>6} {'(bytes)':>12} {'(ms)':>9} {'(ms)':>9}"
    print(header)
    print(units)
    print("-" * len(header))
    failures = []
    with tempfile.TemporaryDirectory(prefix="bench_codec_") as tmp:
        for fmt, container in CASES:
            cfg = CodecConfig(format=fmt, container=container)
            ext = imagefile.EXTENSIONS[cfg.container_name]
            path = Path(tmp) / f"{fmt}_{cfg.container_name}{ext}"
            snrs = {}
            for stem, y in stems.items():
                decoded, _, _, _ = round_trip(y, cfg, path)
                snrs[stem] = audio.snr_db(y, decoded)
            encode_s, decode_s, nbytes = [], [], 0
            round_trip(looped, cfg, path)  # warm-up: imports, FFT plans, caches
            for _ in range(args.repeats):
                _, t_enc, t_dec, nbytes = round_trip(looped, cfg, path)
                encode_s.append(t_enc)
                decode_s.append(t_dec)
            floor = FLOORS_DB[fmt]
            ok = min(snrs.values()) >= floor
            if not ok:
                failures.append(f"{fmt}/{cfg.container_name}")
            print(f"{fmt:<8} {cfg.container_name:<5} {snrs['mixture']:>9.2f} {snrs['vocals']:>9.2f} {floor:>7.0f} "
                  f"{'PASS' if ok else 'FAIL':>6} {nbytes:>12,d} {1e3 * statistics.median(encode_s):>9.1f} "
                  f"{1e3 * statistics.median(decode_s):>9.1f}")
    print()
    print(f"CPU: {os.cpu_count()} logical cores. PASS = both SNRs at or above the SPEC.md floor.")
    if failures:
        print(f"FAIL: below the fidelity floor: {', '.join(failures)}")
        return 1
    print("All formats meet their fidelity floors.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
