"""Image containers: PNG (8 and 16 bit), BMP and TIFF, each with the codec's JSON metadata embedded.

- PNG: a ``tEXt`` chunk with key ``vocals2song``. 8-bit through Pillow; 16-bit through pypng, since Pillow
  reads 48-bit RGB PNG as 8-bit and cannot write it.
- TIFF: the ``ImageDescription`` tag (tifffile).
- BMP (the seed project's container): BMP has no text field, so the JSON follows the pixel data as a
  trailer (``MAGIC`` + JSON + 8-byte length + ``MAGIC``), which image readers ignore.

Writes are atomic. Pixels are ``(nb_rows, nb_columns, nb_channels)``.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocals2song.codec import META_KEY
from vocals2song.errors import Vocals2SongError
from vocals2song.files import atomic_path, write_bytes_atomic

EXTENSIONS = {"png": ".png", "bmp": ".bmp", "tiff": ".tiff"}
IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
BMP_MAGIC = b"V2SMETA1"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: deflate level for PNG and TIFF: phase is close to incompressible, so higher levels cost time and save little.
DEFLATE_LEVEL = 1

try:  # ISA-L's inflate: about 1.6x zlib's on our PNGs (10 against 16 ms for a 513 x 2584 rgb8 image)
    from isal.isal_zlib import decompress as _inflate
except ImportError:  # pragma: no cover - isal has wheels for the usual platforms
    _inflate = zlib.decompress
try:  # ISA-L's deflate: zlib-compatible streams, ~8x faster than zlib at level 1, and smaller here
    from isal.isal_zlib import compress as _isal_compress

    def _deflate(data, level: int) -> bytes:
        return _isal_compress(data, min(level, 3))
except ImportError:  # pragma: no cover - isal has wheels for the usual platforms
    def _deflate(data, level: int) -> bytes:
        return zlib.compress(data, level)


def write_image(path: str | os.PathLike, pixels: np.ndarray, meta_json: str) -> None:
    """Write ``pixels`` with ``meta_json`` embedded; the container follows the file suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        write_bytes_atomic(path, _png_bytes(pixels, meta_json))
    elif suffix == ".bmp":
        write_bytes_atomic(path, _bmp_bytes(pixels, meta_json))
    elif suffix in (".tif", ".tiff"):
        import tifffile

        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, pixels, photometric="rgb", description=meta_json, metadata=None,
                             compression="zlib", compressionargs={"level": DEFLATE_LEVEL})
    else:
        raise Vocals2SongError("unknown image type; use .png, .bmp or .tiff", path, usage=True)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str | None]:
    """Read pixels and the embedded metadata JSON (None when there is none)."""
    path = Path(path)
    with _reading(path):
        data = path.read_bytes()
    return _by_container(path, data, (lambda: _read_png(data), lambda: _read_bmp(data), lambda: _read_tiff(data)),
                         "corrupt or truncated")


@contextlib.contextmanager
def _reading(path: Path):
    """File-system errors as one-line errors."""
    try:
        yield
    except FileNotFoundError as exc:
        raise Vocals2SongError("no such file", path) from exc
    except OSError as exc:
        raise Vocals2SongError(f"cannot read it ({exc.strerror})", path) from exc


def _by_container(path: Path, head: bytes, handlers: tuple, damage: str):
    """Call the PNG, BMP or TIFF handler the file's signature names; decoder errors become one line."""
    kinds = (head.startswith(PNG_SIGNATURE), head.startswith(b"BM"),
             head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"))
    for is_kind, handler in zip(kinds, handlers):
        if is_kind:
            try:
                return handler()
            except Vocals2SongError:
                raise
            except Exception as exc:  # noqa: BLE001 - decoders raise many types for corrupt data
                raise Vocals2SongError(f"the image is {damage} ({type(exc).__name__}: {exc})", path) from exc
    raise Vocals2SongError("not a PNG, BMP or TIFF image", path)


# --- PNG ---------------------------------------------------------------------------------------------

def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_bytes(pixels: np.ndarray, meta_json: str) -> bytes:
    """Encode 8 or 16-bit RGB(A) as PNG: rows with filter 0 and one deflate stream.

    Written directly rather than through Pillow, whose adaptive per-row filter search and zlib made PNG
    writing 60% of sound2image's time (see scripts/bench_sound2image.py); ISA-L deflates ~8x faster.
    """
    height, width, nb_channels = pixels.shape
    if pixels.dtype not in (np.uint8, np.uint16) or nb_channels not in (3, 4):
        raise Vocals2SongError(f"PNG holds 8 or 16-bit RGB or RGBA pixels, not {pixels.dtype} x {nb_channels}",
                               usage=True)
    bit_depth = 8 * pixels.dtype.itemsize
    color_type = 6 if nb_channels == 4 else 2
    rows = np.empty((height, 1 + width * nb_channels * pixels.dtype.itemsize), dtype=np.uint8)
    rows[:, 0] = 0  # filter type 0 (None) for every row
    rows[:, 1:] = pixels.astype(">u2", copy=False).view(np.uint8).reshape(height, -1) if bit_depth == 16 else \
        pixels.reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    text = META_KEY.encode("latin-1") + b"\0" + meta_json.encode("latin-1")
    return b"".join([PNG_SIGNATURE, _png_chunk(b"IHDR", header), _png_chunk(b"tEXt", text),
                     _png_chunk(b"IDAT", _deflate(rows, DEFLATE_LEVEL)), _png_chunk(b"IEND", b"")])


def _png_chunks(data: bytes):
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos: pos + 4])
        kind = data[pos + 4: pos + 8]
        yield kind, data[pos + 8: pos + 8 + length]
        pos += 12 + length


def _png_parts(data: bytes, pixels: bool = True) -> tuple[tuple | None, str | None, list[bytes]]:
    """IHDR fields, our metadata, and the IDAT bodies (none when ``pixels`` is False: stop at the first)."""
    header, meta, idat = None, None, []
    for kind, body in _png_chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body[:13])
        elif kind == b"tEXt" and body.startswith(META_KEY.encode() + b"\0"):
            meta = body[len(META_KEY) + 1:].decode("latin-1")
        elif kind == b"IDAT":
            if not pixels:
                break
            idat.append(body)
    return header, meta, idat


def _read_png(data: bytes) -> tuple[np.ndarray, str | None]:
    header, meta, idat = _png_parts(data)
    if header is None:
        raise ValueError("no IHDR chunk")
    width, height, bit_depth, color_type, _, _, interlace = header
    nb_channels = {2: 3, 6: 4}.get(color_type)
    if nb_channels and bit_depth in (8, 16) and not interlace:
        # Fast path for what we write: every row with filter 0.
        itemsize = bit_depth // 8
        rows = np.frombuffer(_inflate(b"".join(idat)), dtype=np.uint8)
        if rows.size == height * (1 + width * nb_channels * itemsize):
            rows = rows.reshape(height, -1)
            if not rows[:, 0].any():
                body = np.ascontiguousarray(rows[:, 1:])
                if itemsize == 2:
                    return body.view(">u2").astype(np.uint16).reshape(height, width, nb_channels), meta
                return body.reshape(height, width, nb_channels), meta
    if bit_depth == 16:  # other writers filter their rows: pypng undoes any filter at 16 bits
        import png

        width, height, rows, info = png.Reader(bytes=data).asDirect()
        pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
        return pixels.reshape(height, width, info["planes"]), meta
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        pixels = np.asarray(im)
    return (pixels if pixels.ndim == 3 else pixels[..., None]), meta


# --- BMP ---------------------------------------------------------------------------------------------

def _bmp_bytes(pixels: np.ndarray, meta_json: str) -> bytes:
    from PIL import Image

    if pixels.dtype != np.uint8 or pixels.shape[2] != 3:
        raise Vocals2SongError("BMP holds 8-bit RGB only (format rgb8)", usage=True)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="BMP")
    body = meta_json.encode("utf-8")
    return buf.getvalue() + BMP_MAGIC + body + struct.pack("<Q", len(body)) + BMP_MAGIC


def _read_bmp(data: bytes) -> tuple[np.ndarray, str | None]:
    from PIL import Image

    _, meta = _read_bmp_trailer(data)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        pixels = np.asarray(im.convert("RGB") if im.mode not in ("RGB", "RGBA") else im)
    return pixels, meta


def _read_bmp_trailer(data: bytes) -> tuple[int, str | None]:
    """The metadata trailer at the end of ``data``: (where it starts, JSON), or (len(data), None)."""
    if data.endswith(BMP_MAGIC) and len(data) >= 2 * len(BMP_MAGIC) + 8:
        (length,) = struct.unpack("<Q", data[-len(BMP_MAGIC) - 8: -len(BMP_MAGIC)])
        start = len(data) - 2 * len(BMP_MAGIC) - 8 - length
        if start >= 0 and data[start: start + len(BMP_MAGIC)] == BMP_MAGIC:
            return start, data[start + len(BMP_MAGIC): start + len(BMP_MAGIC) + length].decode("utf-8")
    return len(data), None


# --- TIFF --------------------------------------------------------------------------------------------

def _read_tiff(data: bytes) -> tuple[np.ndarray, str | None]:
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        pixels = page.asarray()
        description = page.description or None
    if description is not None and not (description.lstrip().startswith("{") and '"format"' in description):
        description = None  # not ours (tifffile writes its own shape description by default)
    return (pixels if pixels.ndim == 3 else pixels[..., None]), description


# --- probing without decoding ------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageInfo:
    """What an image file's headers say: ``(nb_rows, nb_columns, nb_channels)``, sample dtype, metadata."""

    nb_rows: int
    nb_columns: int
    nb_channels: int
    dtype: str  # numpy dtype name: uint8, uint16, float32
    meta_json: str | None


def probe_image(path: str | os.PathLike) -> ImageInfo:
    """Read an image's geometry and metadata from its headers, and check that it is complete.

    Reads a few kilobytes (PNG, BMP) or the TIFF directory, not the pixels, so a training set of thousands of
    images is checked in seconds. A truncated file (no PNG ``IEND``, short BMP or TIFF data) is an error.
    """
    path = Path(path)
    with _reading(path):
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(1 << 16)
            f.seek(max(0, size - 12))
            tail = f.read(12)
    return _by_container(path, head, (lambda: _probe_png(head, tail, path), lambda: _probe_bmp(head, size, path),
                                      lambda: _probe_tiff(path, size)), "corrupt")


_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def _probe_png(head: bytes, tail: bytes, path: Path) -> ImageInfo:
    if tail[4:8] != b"IEND":
        raise Vocals2SongError("the PNG is truncated (no IEND chunk at its end); re-create it", path)
    header, meta, _ = _png_parts(head, pixels=False)
    if header is None:
        raise Vocals2SongError("the PNG has no IHDR header", path)
    width, height, bit_depth, color_type = header[:4]
    if color_type not in _PNG_CHANNELS or bit_depth not in (8, 16):
        raise Vocals2SongError(f"PNG colour type {color_type} at {bit_depth} bits is not supported; "
                               "use 8 or 16-bit RGB or RGBA", path)
    return ImageInfo(height, width, _PNG_CHANNELS[color_type], f"uint{bit_depth}", meta)


def _probe_bmp(head: bytes, size: int, path: Path) -> ImageInfo:
    declared, _, offset, _, width, height, _, bits = struct.unpack("<I4sIIiiHH", head[2:30])
    row_bytes = (abs(width) * bits // 8 + 3) // 4 * 4
    if size < offset + row_bytes * abs(height):
        raise Vocals2SongError("the BMP is truncated; re-create it", path)
    meta = None
    if size > declared:  # our metadata trailer follows the declared file
        with open(path, "rb") as f:
            f.seek(declared)
            _, meta = _read_bmp_trailer(f.read())
    return ImageInfo(abs(height), abs(width), 4 if bits == 32 else 3, "uint8", meta)


def _probe_tiff(path: Path, size: int) -> ImageInfo:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        end = max((o + n for o, n in zip(page.dataoffsets, page.databytecounts)), default=0)
        if end > size:
            raise Vocals2SongError("the TIFF is truncated; re-create it", path)
        shape, dtype, description = page.shape, page.dtype, page.description or None
    if description is not None and not (description.lstrip().startswith("{") and '"format"' in description):
        description = None
    return ImageInfo(shape[0], shape[1], shape[2] if len(shape) == 3 else 1, np.dtype(dtype).name, description)
