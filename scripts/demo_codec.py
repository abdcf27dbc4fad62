"""Demo of the dataset and listening stages on the real MUSDB18 excerpt shipped with stempeg.

Runs the same commands a user would (printed as it goes): `vocals2song sound2image` on the excerpt in
each image format, then `vocals2song image2sound` on the images, and writes the original stems beside
the decoded ones so you can listen to both. Prints the round-trip SNR of each format.

    python scripts/demo_codec.py [OUT]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf


def run(*args: str) -> None:
    command = [sys.executable, "-m", "vocals2song", *args]
    print("$ vocals2song " + shlex.join(args), flush=True)
    subprocess.run(command, check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="demo", help="output folder (default: demo)")
    out = Path(parser.parse_args(argv).out)

    import stempeg

    from vocals2song import audio

    excerpt = stempeg.example_stem_path()
    streams, sr = stempeg.read_stems(excerpt, dtype=np.float32)
    original = out / "original"
    original.mkdir(parents=True, exist_ok=True)
    for name, index in (("mixture", 0), ("vocals", 4)):
        audio.write_wav(original / f"{name}.wav", streams[index].mean(axis=1), sr)
    print(f"excerpt: {excerpt} ({streams.shape[1] / sr:.2f} s)\n")

    rows = []
    for fmt in ("rgb8", "rgba8", "png16", "tiff16", "float32"):
        images, wavs = out / "images" / fmt, out / "decoded" / fmt
        # One segment holds the whole 6 s excerpt, so each stem is one image.
        run("sound2image", excerpt, str(images), "--format", fmt, "--segment", "15")
        run("image2sound", str(images), "--out", str(wavs))
        pair = json.loads((images / "dataset.json").read_text())["pairs"][0]
        for stem, index in (("mixture", 0), ("vocals", 4)):
            decoded, _ = sf.read(wavs / Path(pair[stem]).with_suffix(".wav"), dtype="float32")
            reference = streams[index].mean(axis=1)
            rows.append((fmt, stem, audio.snr_db(reference, decoded), (images / pair[stem]).stat().st_size))
        print()

    print(f"{'format':8} {'stem':8} {'SNR dB':>8} {'bytes':>10}")
    for fmt, stem, snr, size in rows:
        print(f"{fmt:8} {stem:8} {snr:8.1f} {size:10d}")
    print(f"\nListen: originals in {original}/, decoded WAVs in {out / 'decoded'}/<format>/, "
          f"images in {out / 'images'}/<format>/ (R = magnitude, G = phase).")


if __name__ == "__main__":
    main()
