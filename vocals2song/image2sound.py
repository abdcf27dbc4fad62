"""`image2sound`: decode encoded or predicted spectrogram images back to WAV."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vocals2song import audio, codec, imagefile
from vocals2song.config import CodecConfig
from vocals2song.errors import Failure, Vocals2SongError, run_each
from vocals2song.files import is_partial

PHASES = ("image", "griffinlim")
DecodeFailure = Failure  # the name earlier versions exported


def find_images(inputs: list[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """(image, output path relative to --out) for each input; folders are searched recursively and keep
    their sub-folders in the output, so a sound2image dataset decodes into the same layout."""
    found = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            images = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in imagefile.IMAGE_SUFFIXES
                            and not is_partial(p))
            if not images:
                raise Vocals2SongError("no .png, .bmp or .tiff images in this folder", item, usage=True)
            found += [(p, p.relative_to(item).with_suffix(".wav")) for p in images]
        elif item.is_file():
            found.append((item, Path(item.name).with_suffix(".wav")))
        else:
            raise Vocals2SongError("no such file or folder", item, usage=True)
    seen: dict[Path, Path] = {}
    for image, rel in found:
        if rel in seen:  # one WAV would overwrite the other: refuse before decoding anything
            hint = ("rename one of them" if image.parent == seen[rel].parent
                    else "decode their common folder instead, which keeps the sub-folders apart")
            raise Vocals2SongError(f"would be written to the same {rel} as {seen[rel]}; {hint}", image, usage=True)
        seen[rel] = image
    return found


def image_meta(path: Path, meta_json: str | None, fallback: CodecConfig | None, pixels: np.ndarray) -> codec.ImageMeta:
    """The image's own metadata, or one built from the fallback flags when it has none."""
    if meta_json is not None:
        return codec.ImageMeta.from_json(meta_json, path)
    if fallback is None:
        raise Vocals2SongError("the image has no vocals2song metadata (was it made by another tool, or re-saved?); "
                               "to decode it anyway pass --format, --sr, --n-fft and --hop", path)
    # Without metadata, the whole image is decoded: its length is what its frames span.
    return codec.ImageMeta.from_config(fallback, length=fallback.hop * (pixels.shape[1] - 1))


def decode_file(path: Path, phase: str = "image", iters: int = 32,
                fallback: CodecConfig | None = None) -> tuple[np.ndarray, int]:
    """One image -> mono waveform ``(nb_samples,)`` and its sample rate."""
    pixels, meta_json = imagefile.read_image(path)
    meta = image_meta(path, meta_json, fallback, pixels)
    return codec.decode_audio(pixels, meta, phase=phase, iters=iters, path=path), meta.sr


def image2sound(inputs: list[str | os.PathLike], out: str | os.PathLike, phase: str = "image", iters: int = 32,
                fallback: CodecConfig | None = None, progress=None) -> tuple[list[Path], list[Failure]]:
    """Decode every image of ``inputs`` into ``out``; bad images are reported, not fatal."""
    if phase not in PHASES:
        raise Vocals2SongError(f"--phase must be one of {', '.join(PHASES)}", usage=True)
    if iters < 1:
        raise Vocals2SongError("--iters must be at least 1", usage=True)
    images = find_images(inputs)
    out = Path(out)
    written: list[Path] = []

    def work(item: tuple[Path, Path]) -> None:
        path, rel = item
        y, sr = decode_file(path, phase, iters, fallback)
        audio.write_wav(out / rel, y, sr)
        written.append(out / rel)

    failures = run_each(images, work, lambda item: item[0], progress)
    return written, failures
