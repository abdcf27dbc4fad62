"""Training data: find paired images, check them, and stream them from disk with tf.data.

``DATA`` is a `sound2image` dataset root (``{train,valid}/<input>/`` and ``{train,valid}/<target>/``) or any folder
with ``<input>/`` and ``<target>/`` images paired by file name (the seed project's ``input/`` + ``output/``). Without
a valid split, whole tracks are held out, never neighbouring segments of a training track.

The stream never holds more than a bounded buffer of tiles: file names are shuffled, each image pair is decoded,
cropped at a few random time offsets (the same offsets for input and target), and the tiles are shuffled, batched
and prefetched. Tensors are ``(nb_rows, tile, nb_channels)`` float32 in [-1, 1] as `transforms.pixels_to_net` makes.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vocals2song import transforms
from vocals2song.codec import ImageMeta
from vocals2song.config import CodecConfig
from vocals2song.errors import Vocals2SongError
from vocals2song.imagefile import IMAGE_SUFFIXES, ImageInfo, probe_image, read_image
from vocals2song.transforms import crop_or_pad

#: share of tracks held out for validation when DATA has no valid split
HOLD_OUT_SHARE = 0.1
#: random crops taken from each decoded pair (decoding costs more than a tiny-model step)
CROPS_PER_IMAGE = 4
#: tiles in the shuffle buffer; bounds memory whatever the number of pairs
SHUFFLE_TILES = 32
_SEGMENT_SUFFIX = re.compile(r"(?:__|_|-)?\d+$")


@dataclass(frozen=True)
class Pair:
    name: str  # file name shared by input and target
    input: Path
    target: Path
    track: str  # pairs of one track stay on one side of a split


@dataclass
class PairSet:
    """The pairs of a DATA folder, split, with the codec they were encoded with."""

    train: list[Pair]
    valid: list[Pair]
    meta: ImageMeta  # of the first target image: the codec settings for training, predict and evaluate
    target: str  # mixture or accompaniment
    held_out: bool  # True when valid was made by holding out tracks
    info: ImageInfo  # geometry shared by every image
    notes: list[str] = field(default_factory=list)


def track_of(path: Path, meta_json: str | None) -> str:
    """The track an image belongs to: its metadata's source track, else its name without a segment number."""
    if meta_json:
        try:
            track = (json.loads(meta_json).get("source") or {}).get("track")
        except ValueError:
            track = None
        if track:
            return str(track)
    return _SEGMENT_SUFFIX.sub("", path.stem) or path.stem


def _images(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES
            and not p.name.startswith(".")} if folder.is_dir() else {}


def match_pairs(input_dir: Path, target_dir: Path) -> list[tuple[str, Path, Path]]:
    """Pair the images of two folders by file name; any unmatched file is an error that names it."""
    inputs, targets = _images(input_dir), _images(target_dir)
    lonely = sorted(set(inputs) ^ set(targets))
    if lonely:
        shown = ", ".join((str(input_dir / n) if n in inputs else str(target_dir / n)) for n in lonely[:3])
        more = f" and {len(lonely) - 3} more" if len(lonely) > 3 else ""
        raise Vocals2SongError(f"{len(lonely)} images have no partner of the same name: {shown}{more}; "
                               "remove them or add their partners", input_dir.parent)
    return [(n, inputs[n], targets[n]) for n in sorted(inputs)]


def _probe_all(pairs: list[tuple[str, Path, Path]]) -> tuple[list[Pair], ImageInfo, ImageInfo]:
    """Check every image's headers; all inputs share one geometry, and all targets."""
    out, first = [], {}
    for name, inp, tar in pairs:
        infos = (probe_image(inp), probe_image(tar))
        for role, path, info in zip(("input", "target"), (inp, tar), infos):
            ref = first.setdefault(role, info)
            if (info.nb_rows, info.nb_channels, info.dtype) != (ref.nb_rows, ref.nb_channels, ref.dtype):
                raise Vocals2SongError(f"the image is {info.nb_rows} rows x {info.nb_channels} {info.dtype} channels, "
                                       f"but the first {role} image is {ref.nb_rows} x {ref.nb_channels} {ref.dtype}; "
                                       "a training set needs one codec", path)
        out.append(Pair(name, inp, tar, track_of(inp, infos[0].meta_json)))
    return out, first["input"], first["target"]


def _format_of(info: ImageInfo, path: Path) -> ImageMeta:
    """The codec of an image: its metadata, or for images without it a guess from the pixel type."""
    if info.meta_json:
        return ImageMeta.from_json(info.meta_json, path)
    fmt = {"uint8": "rgb8", "uint16": "png16", "float32": "float32"}.get(info.dtype)
    if fmt is None or info.nb_channels < 2 or (info.nb_channels == 4 and info.dtype == "uint8"):
        raise Vocals2SongError(f"the image has no vocals2song metadata and {info.nb_channels} {info.dtype} channels "
                               "that no format matches; encode it with sound2image", path)
    n_fft = 2 * (info.nb_rows - 1)
    return ImageMeta.from_config(CodecConfig(format=fmt, n_fft=n_fft, hop=n_fft // 4), length=0)


def hold_out_tracks(pairs: list[Pair], share: float = HOLD_OUT_SHARE) -> tuple[list[Pair], list[Pair]]:
    """Split pairs into (train, valid) by whole tracks, deterministically (a hash of the track name).

    At least one track is held out when there are two or more; a single track cannot be split.
    """
    tracks = sorted({p.track for p in pairs}, key=lambda t: (zlib.crc32(t.encode("utf-8")), t))
    if len(tracks) < 2:
        return pairs, []
    held = set(tracks[: max(1, round(share * len(tracks)))])
    return [p for p in pairs if p.track not in held], [p for p in pairs if p.track in held]


def find_pairs(data: str | os.PathLike, input_subdir: str = "vocals", target_subdir: str | None = None) -> PairSet:
    """The train and valid pairs of DATA (see the module docstring), checked from their headers."""
    root = Path(data)
    if not root.is_dir():
        raise Vocals2SongError("no such folder; give a sound2image dataset or a folder with input and target "
                               "image folders", root, usage=True)
    manifest_target = None
    if (root / "dataset.json").is_file():
        try:
            manifest_target = json.loads((root / "dataset.json").read_text())["params"].get("target")
        except (ValueError, KeyError, TypeError) as exc:
            raise Vocals2SongError(f"dataset.json is not valid ({exc}); rerun sound2image", root) from exc
    target_subdir = target_subdir or manifest_target or "mixture"
    notes: list[str] = []
    if (root / "train" / input_subdir).is_dir():
        train_raw = match_pairs(root / "train" / input_subdir, root / "train" / target_subdir)
        valid_raw = match_pairs(root / "valid" / input_subdir, root / "valid" / target_subdir)
    elif (root / input_subdir).is_dir():
        train_raw, valid_raw = match_pairs(root / input_subdir, root / target_subdir), []
    else:
        raise Vocals2SongError(f"found neither train/{input_subdir}/ nor {input_subdir}/ in it; set --input-subdir "
                               "and --target-subdir to its image folders", root, usage=True)
    if not train_raw:
        raise Vocals2SongError(f"no image pairs in {input_subdir}/ and {target_subdir}/", root, usage=True)
    train, info_in, info_tar = _probe_all(train_raw)
    valid = []
    if valid_raw:
        valid, _, valid_info = _probe_all(valid_raw)
        if (valid_info.nb_rows, valid_info.nb_channels, valid_info.dtype) != \
                (info_tar.nb_rows, info_tar.nb_channels, info_tar.dtype):
            raise Vocals2SongError("the valid images are not encoded like the train images", valid[0].target)
    held_out = False
    if not valid:
        train, valid = hold_out_tracks(train)
        held_out = bool(valid)
        if held_out:
            notes.append(f"no valid split: held out {len({p.track for p in valid})} whole tracks "
                         f"({len(valid)} pairs) for validation")
        else:
            valid = train
            notes.append("one track only: validation uses training pairs (val_recon and val_lsd measure fit, not "
                         "generalisation)")
    elif {p.track for p in train} & {p.track for p in valid}:
        leaked = sorted({p.track for p in train} & {p.track for p in valid})
        notes.append(f"tracks on both sides of the train/valid split: {', '.join(leaked[:3])}")
    meta_in, meta = _format_of(info_in, train[0].input), _format_of(info_tar, train[0].target)
    shape_in, shape_tar = (info_in.nb_rows, info_in.nb_channels), (info_tar.nb_rows, info_tar.nb_channels)
    if meta_in.format != meta.format or shape_in != shape_tar:
        raise Vocals2SongError(f"inputs are {meta_in.format} {info_in.nb_rows} rows and targets {meta.format} "
                               f"{info_tar.nb_rows} rows; encode both with the same settings", root)
    target = "accompaniment" if target_subdir == "accompaniment" else "mixture"
    return PairSet(train, valid, meta, target, held_out, info_tar, notes)


# --- numpy side: fixed validation tiles ------------------------------------------------------------

def load_net_image(path: Path, fmt: str, phase_repr: str = "angle") -> np.ndarray:
    """One image file -> ``(nb_rows - 1, nb_frames, nb_channels)`` float32 in [-1, 1]."""
    pixels, _ = read_image(path)
    return transforms.pixels_to_net(pixels, fmt, phase_repr)




def fixed_tiles(pairs: list[Pair], fmt: str, tile: int, count: int,
                phase_repr: str = "angle") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Deterministic validation tiles: ``count`` pairs spread over the list, each cropped at its middle.

    Returns inputs and targets ``(count, nb_rows, tile, C)`` and the pair names.
    """
    chosen = [pairs[i] for i in sorted({int(i) for i in np.linspace(0, len(pairs) - 1, min(count, len(pairs)))})]
    xs, ys = [], []
    for pair in chosen:
        x, y = load_net_image(pair.input, fmt, phase_repr), load_net_image(pair.target, fmt, phase_repr)
        start = max(0, (x.shape[1] - tile) // 2)
        xs.append(crop_or_pad(x, start, tile))
        ys.append(crop_or_pad(y, start, tile))
    return np.stack(xs), np.stack(ys), [p.name for p in chosen]


# --- TensorFlow side: the training stream ----------------------------------------------------------

def _decoder(fmt: str, suffix: str, ours: bool = False):
    """A TF function: file path -> pixels ``(rows, frames, channels)``; PNG natively, others via our reader.

    ``ours``: the images carry vocals2song metadata, so their PNG rows are unfiltered and our reader (ISA-L's
    inflate) decodes them in about 60% of TensorFlow's time.
    """
    import tensorflow as tf

    from vocals2song.imagefile import _inflate

    dtype = {"uint8": tf.uint8, "uint16": tf.uint16}.get(np.dtype(transforms.codec.CODECS[fmt][2]).name)
    if suffix == ".png" and dtype is not None and not (ours and _inflate is not zlib.decompress):
        return lambda path: tf.io.decode_png(tf.io.read_file(path), dtype=dtype)

    def read(path):
        return read_image(path.decode() if isinstance(path, bytes) else str(path))[0]

    out_dtype = tf.as_dtype(np.dtype(transforms.codec.CODECS[fmt][2]))
    return lambda path: tf.ensure_shape(tf.numpy_function(read, [path], out_dtype), [None, None, None])


def make_dataset(pairs: list[Pair], fmt: str, nb_rows: int, tile: int, batch_size: int, seed: int = 0,
                 crops_per_image: int = CROPS_PER_IMAGE, shuffle_tiles: int = SHUFFLE_TILES,
                 phase_repr: str = "angle"):
    """An endless tf.data stream of ``(input, target)`` batches ``(batch, nb_rows, tile, C)`` in [-1, 1];
    ``nb_rows`` is the image height less the Nyquist row.

    Memory is bounded by the tile shuffle buffer and prefetch, not by the number of pairs.
    """
    import tensorflow as tf

    channels = list(transforms.net_channels(fmt, phase_repr))
    nb = len(channels)
    scale = 2.0 / transforms.pixel_scale(fmt)
    decode = _decoder(fmt, pairs[0].input.suffix.lower(), ours=probe_image(pairs[0].input).meta_json is not None)

    # Crop the decoded pixels first, then convert only the tiles: converting a whole 513 x 2584 image to float32
    # cost more than decoding it. Pixel 0 is -1 (silence) on the network side, so padding pixels with 0 is padding
    # the network tile with -1.
    def to_net(tiles):  # (crops, nb_rows, tile, pixel channels) -> float32 [-1, 1]
        tiles = tiles[..., :nb] if channels == list(range(nb)) else tf.gather(tiles, channels, axis=-1)
        return tf.cast(tiles, tf.float32) * scale - 1.0

    def crops(pixels, starts):
        """``crops_per_image`` tiles of frames ``start:start + tile``, Nyquist row dropped, padded past the end."""
        if phase_repr == "if":
            return tf.stack([if_crop(pixels, starts[i]) for i in range(crops_per_image)])
        out = []
        for i in range(crops_per_image):
            part = pixels[1:, starts[i]: starts[i] + tile]
            out.append(tf.pad(part, [[0, 0], [0, tile - tf.shape(part)[1]], [0, 0]]))
        return to_net(tf.stack(out))

    def if_crop(pixels, start):
        """One tile as `transforms.pixels_to_net` gives it with instantaneous frequency: the frame before the tile
        comes along, so the tile's first difference is the true one (phase 0 before the image's first frame)."""
        before = tf.maximum(start - 1, 0)
        part = to_net(pixels[None, 1:, before: start + tile])[0]  # (rows, up to tile + 1, 2)
        body = part[:, start - before:]
        first = tf.where(start > 0, part[:, :1, 1], tf.zeros_like(part[:, :1, 1]))
        d = body[..., 1] - tf.concat([first, body[:, :-1, 1]], axis=1)
        body = tf.stack([body[..., 0], tf.math.floormod(d + 1.0, 2.0) - 1.0], axis=-1)
        return tf.pad(body, [[0, 0], [0, tile - tf.shape(body)[1]], [0, 0]], constant_values=-1.0)

    def load(inp, tar, pair_seed):
        px, py = decode(inp), decode(tar)
        nb_frames = tf.maximum(tf.maximum(tf.shape(px)[1], tf.shape(py)[1]), tile)
        starts = tf.random.stateless_uniform([crops_per_image], seed=pair_seed, minval=0,
                                             maxval=nb_frames - tile + 1, dtype=tf.int32)
        x = tf.ensure_shape(crops(px, starts), [crops_per_image, nb_rows, tile, nb])
        y = tf.ensure_shape(crops(py, starts), [crops_per_image, nb_rows, tile, nb])  # the same offsets
        return tf.data.Dataset.from_tensor_slices((x, y))

    inputs = [str(p.input) for p in pairs]
    targets = [str(p.target) for p in pairs]
    files = tf.data.Dataset.from_tensor_slices((inputs, targets)).repeat()
    files = files.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip((files, seeds)).map(lambda f, s: (f[0], f[1], s), num_parallel_calls=1)
    ds = ds.interleave(load, cycle_length=2, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.shuffle(shuffle_tiles, seed=seed)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(2)
    options = tf.data.Options()
    # Every worker reads all files in its own shuffled order; sharding by file would need >= 1 file per worker.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)
