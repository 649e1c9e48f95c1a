"""Decoding image files to a uint8 N x 3 x S x S array, in parallel, with a progress bar.

Each image is turned upright (its EXIF orientation), converted to RGB, its centred square is taken (the
shorter side decides) and resized bilinearly to S x S, so photos of any shape give square training images
without distortion; square sources (CIFAR, Tiny ImageNet) are simply resized. So that no image is silently
wrong: 16-bit images are scaled to 8 bits (not clipped to white), transparent images are composited on
BACKGROUND (not on whatever colour the transparent pixels happen to hold), and a file declaring more pixels
than PIL's decompression-bomb limit is refused on one line before it is decoded. JPEGs are decoded at a
reduced scale first when S is much smaller (PIL's draft mode), which makes big photos cheap. Large jobs run
on a process pool (PIL decoding is mostly Python overhead per image, so threads would not help) in chunks,
with a tqdm bar on stderr.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from factory.errors import FactoryError

ORIENTATION = 0x0112  # the EXIF tag
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CHUNK = 512  # images per pool task: big enough to amortise pickling, small enough for a smooth progress bar
PARALLEL_MIN = 2048  # below this many images a pool costs more than it saves
# What decode_file does, as part of every decoded-image cache key: bump it whenever the decoded pixels change,
# so an entry decoded by an earlier rule is never reused (2: EXIF orientation, 16-bit scaling, alpha on BACKGROUND).
DECODER_VERSION = 2
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white (stated in each bundle's preprocess.json)
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # PIL's modes of 16-bit grey PNGs (I: older Pillow)


def is_image_file(name: str) -> bool:
    """True for the decodable extensions (case-insensitive): jpg, jpeg, png, bmp, webp."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def default_workers() -> int:
    """The CPUs this process may use (affinity-aware on Linux), at most 16."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:
        count = os.cpu_count() or 1
    return max(1, min(16, count))


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB without losing what a plain convert("RGB") loses: 16-bit grey scaled, not clipped; alpha composited."""
    if img.mode in _SIXTEEN_BIT:
        grey = np.asarray(img, dtype=np.float64) / 257.0  # 0..65535 -> 0..255
        img = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def decode_file(path: str, size: int) -> np.ndarray:
    """One image as a uint8 3 x size x size array (upright, RGB, centred square, bilinear resize)."""
    with Image.open(path) as img:
        img.draft("RGB", (size, size))
        upright = ImageOps.exif_transpose(img) if img.getexif().get(ORIENTATION, 1) != 1 else img
        rgb = _to_rgb(upright)
    width, height = rgb.size
    if (width, height) != (size, size):
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def _decode_chunk(paths: Sequence[str], size: int) -> tuple[np.ndarray | None, str | None]:
    """Decode a chunk; on failure return the error text instead (exceptions may not pickle across processes)."""
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            out[i] = decode_file(path, size)
        except Image.DecompressionBombError as exc:
            return None, (
                f"image {printable(path)} declares too many pixels ({_first_line(exc)}); it is corrupt or a "
                "decompression bomb: remove that file"
            )
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            return None, (
                f"cannot decode image {printable(path)} ({type(exc).__name__}: {_first_line(exc)}); "
                "fix or remove that file"
            )
    return out, None


def printable(path: str) -> str:
    """`path` fit for a message: bytes that are not UTF-8 (kept by os as surrogates) shown as \\x escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork on Linux (workers start instantly and only run PIL/numpy code), the platform default elsewhere."""
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def decode_images(
    paths: Sequence[str], image_size: int, *, desc: str = "decoding", workers: int | None = None
) -> np.ndarray:
    """All `paths` decoded into one uint8 N x 3 x S x S array (in order); a bad file raises FactoryError."""
    total = len(paths)
    out = np.empty((total, 3, image_size, image_size), dtype=np.uint8)
    workers = workers or default_workers()
    starts = range(0, total, CHUNK)
    if workers <= 1 or total < PARALLEL_MIN:
        with tqdm(total=total, desc=desc, unit="img", file=sys.stderr, mininterval=0.5) as bar:
            for start in starts:
                chunk, error = _decode_chunk(paths[start : start + CHUNK], image_size)
                if error:
                    raise FactoryError(error)
                out[start : start + len(chunk)] = chunk
                bar.update(len(chunk))
        return out
    with ProcessPoolExecutor(max_workers=min(workers, len(starts)), mp_context=_pool_context()) as pool:
        with warnings.catch_warnings():  # Python >= 3.12 warns about fork() in a threaded process
            warnings.filterwarnings("ignore", message=r".*fork\(\)", category=DeprecationWarning)
            futures = {pool.submit(_decode_chunk, paths[s : s + CHUNK], image_size): s for s in starts}
        with tqdm(total=total, desc=desc, unit="img", file=sys.stderr, mininterval=0.5) as bar:
            for future in as_completed(futures):
                chunk, error = future.result()
                if error:
                    for other in futures:
                        other.cancel()
                    raise FactoryError(error)
                start = futures[future]
                out[start : start + len(chunk)] = chunk
                bar.update(len(chunk))
    return out
