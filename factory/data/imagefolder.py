"""`imagefolder`: the user's own images in the usual class-per-folder layout.

Layout under `--data-dir DIR`: DIR/train/<class>/<image> with optional DIR/val/<class>/ and DIR/test/<class>/
(.jpg .jpeg .png .bmp .webp, any case; sub-folders inside a class folder are included; hidden names are
skipped). Classes are the train folder names, sorted; val/test may hold a subset of them.

Missing splits are carved from train, stratified and seeded by `split_seed`: without DIR/test, 10% of the
train images become the test split; without DIR/val, `val_size` images (default 10% of the train folder)
become the validation split. E.g. a CIFAR-10 JPEG copy with train/ (50,000) and test/ (10,000) gives
45,000 / 5,000 / 10,000. Images are decoded once (centred square, resized to `image_size`) and cached.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from factory.data import decode
from factory.data.cache import Decoded, disk_cached, fingerprint, make_key, memory_get, memory_put
from factory.data.config import checked_image_size, checked_val_size, option
from factory.data.registry import register_dataset
from factory.data.splits import DatasetSplits, Split, build_splits, default_holdout
from factory.errors import FactoryError

VAL_FRACTION = 0.1
TEST_FRACTION = 0.1
PARTS = ("train", "val", "test")
LAYOUT = "DIR/train/<class>/*.jpg (also .jpeg .png .bmp .webp), optional DIR/val/<class>/ and DIR/test/<class>/"

Listing = list[tuple[str, int, int, int]]  # (relative path, size, mtime_ns, label) per image


def _is_utf8(name: str) -> bool:
    """False for a name whose bytes are not UTF-8 (os keeps them as surrogates, which no file or JSON can hold)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _entries(folder: str) -> list[os.DirEntry[str]]:
    """The visible entries of `folder`, sorted by name; an unreadable folder is a one-line FactoryError."""
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise FactoryError(
            f"dataset imagefolder: cannot read folder {decode.printable(folder)} ({exc.strerror or exc}); "
            "make it readable (chmod) or move it out of the data folder"
        ) from None


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return (stat.st_dev, stat.st_ino)


def _visible_dirs(folder: Path) -> list[str]:
    """Class folder names; a name that is not UTF-8 would become an unwritable label, so it is refused."""
    names = [e.name for e in _entries(str(folder)) if e.is_dir()]
    for name in names:
        if not _is_utf8(name):
            raise FactoryError(
                f"dataset imagefolder: class folder {decode.printable(str(folder / name))} has a name that is not "
                "valid UTF-8; rename it (class names become the model's labels)"
            )
    return names


class _Scan:
    """One listing pass: every image file once, under one label (symbolic links are followed, never into a loop).

    Files are known by (device, inode), so a link (or hard link) to an image already listed is skipped when
    it is the same class in the same split, and refused when it would give the image a second label or put it
    in two splits. What is skipped is reported in one warning at the end.
    """

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], tuple[str, int]] = {}  # identity -> (relative path, label)
        self.skipped: dict[str, list[str]] = {}

    def skip(self, reason: str, path: str) -> None:
        self.skipped.setdefault(reason, []).append(decode.printable(path))

    def add(self, stat: os.stat_result, relative: str, label: int, classes: list[str]) -> bool:
        """Record the file; False when it is already listed (same class, same split)."""
        first = self.seen.setdefault(_identity(stat), (relative, label))
        if first == (relative, label):
            return True
        other, other_label = first
        if other_label != label:
            raise FactoryError(
                f"dataset imagefolder: {relative} and {other} are the same file (a link) under classes "
                f"{classes[label]} and {classes[other_label]}; one image has one label: remove the link"
            )
        if other.split("/", 1)[0] != relative.split("/", 1)[0]:
            raise FactoryError(
                f"dataset imagefolder: {relative} and {other} are the same file (a link) in two splits, which "
                "would test on a training image; remove one of them"
            )
        self.skip("links to an image of the same class listed already", relative)
        return False

    def listing(self, folder: str, relative: str, label: int, out: Listing, *, classes: list[str], above: set) -> int:
        """Append every image under `folder` (recursively, sorted; `relative` is its path from the data root).

        `above` holds the identities of the folders above this one, so a link back up is skipped, not followed
        forever. Plain strings and os.scandir, no pathlib: listing 60,000 files must stay well under a second.
        """
        found = 0
        for entry in _entries(folder):
            path = f"{relative}/{entry.name}"
            if not _is_utf8(entry.name):
                self.skip("names that are not valid UTF-8 (rename them)", path)
            elif entry.is_dir():
                ident = _identity(entry.stat())
                if ident in above:
                    self.skip("links to a folder above them (loops, not followed)", path)
                    continue
                found += self.listing(entry.path, path, label, out, classes=classes, above=above | {ident})
            elif entry.is_file() and decode.is_image_file(entry.name):
                stat = entry.stat()
                if self.add(stat, path, label, classes):
                    out.append((path, stat.st_size, stat.st_mtime_ns, label))
                    found += 1
        return found

    def warn(self) -> None:
        for reason, paths in self.skipped.items():
            shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            warnings.warn(f"dataset imagefolder: skipped {len(paths)} ({reason}): {shown}", stacklevel=3)


def scan_image_folder(root: Path) -> tuple[list[str], dict[str, Listing]]:
    """Class names and the image listing of each split folder present; FactoryError on a broken layout."""
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise FactoryError(f"dataset imagefolder: {train_dir} not found; --data-dir DIR must be laid out as {LAYOUT}")
    classes = _visible_dirs(train_dir)
    if not classes:
        raise FactoryError(
            f"dataset imagefolder: {train_dir} has no class folders; --data-dir DIR must be laid out as {LAYOUT}"
        )
    if len(classes) < 2:
        raise FactoryError(
            f"dataset imagefolder: {train_dir} has one class folder ({classes[0]}); a classifier needs at least two: "
            f"add a folder of images per class ({LAYOUT})"
        )
    index = {name: i for i, name in enumerate(classes)}
    listings: dict[str, Listing] = {}
    scan = _Scan()
    for part in PARTS:
        part_dir = root / part
        if not part_dir.is_dir():
            continue
        above = {_identity(root.stat()), _identity(part_dir.stat())}
        listing: Listing = []
        for name in _visible_dirs(part_dir):
            if name not in index:
                raise FactoryError(
                    f"dataset imagefolder: class folder {part_dir / name} has no counterpart in "
                    f"{train_dir}; val/test classes must be train classes ({LAYOUT})"
                )
            folder = part_dir / name
            below = above | {_identity(folder.stat())}
            found = scan.listing(str(folder), f"{part}/{name}", index[name], listing, classes=classes, above=below)
            if part == "train" and found == 0:
                raise FactoryError(
                    f"dataset imagefolder: class folder {part_dir / name} holds no images "
                    f"(.jpg .jpeg .png .bmp .webp); add images or remove the folder"
                )
        if not listing:
            raise FactoryError(
                f"dataset imagefolder: {part_dir} holds no images in class folders; fill it as "
                f"{part_dir}/<class>/*.jpg or remove it to carve {part} from train"
            )
        listings[part] = listing
    scan.warn()
    return classes, listings


def content_digest(listings: dict[str, Listing]) -> str:
    """A hash of what the images are (file names, sizes, labels; not mtimes), checked when a build resumes."""
    entries = (
        (f"{rel}\t{label}", nbytes, 0) for listing in listings.values() for rel, nbytes, _mtime, label in listing
    )
    return fingerprint(entries)


def decode_listings(root: Path, classes: list[str], listings: dict[str, Listing], size: int) -> Decoded:
    """Decode every listed image in one parallel pass (one pool, one progress bar), then cut it into its parts."""
    paths = [str(root / rel) for listing in listings.values() for rel, *_ in listing]
    images = torch.from_numpy(decode.decode_images(paths, size, desc=f"decoding {root.name}"))
    parts, start = {}, 0
    for part, listing in listings.items():
        labels = torch.tensor([label for *_, label in listing], dtype=torch.int64)
        parts[part] = (images[start : start + len(listing)].clone(), labels)
        start += len(listing)
    return Decoded(class_names=classes, parts=parts)


def data_root(cfg: Any, dataset: str, layout: str) -> Path:
    """cfg.data_dir as an absolute existing folder, or a FactoryError naming --data-dir and the layout."""
    data_dir = option(cfg, "data_dir")
    if not data_dir:
        raise FactoryError(f"dataset {dataset} needs --data-dir DIR laid out as {layout}")
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise FactoryError(f"dataset {dataset}: --data-dir {root} not found; it must be a folder laid out as {layout}")
    return root


@register_dataset("imagefolder")
def load_image_folder(cfg: Any) -> DatasetSplits:
    """Train / val / test from DIR/train, DIR/val, DIR/test class folders (missing val/test carved from train)."""
    size, val_size, seed = checked_image_size(cfg), checked_val_size(cfg), int(option(cfg, "split_seed"))
    root = data_root(cfg, "imagefolder", LAYOUT)
    classes, listings = scan_image_folder(root)

    def split(decoded: Decoded) -> DatasetSplits:
        n_train = len(decoded.parts["train"][1])
        given = {part: Split(*decoded.parts[part]) if part in decoded.parts else None for part in PARTS}
        return build_splits(
            name="imagefolder",
            class_names=decoded.class_names,
            train=given["train"],
            val=given["val"],
            test=given["test"],
            val_size=default_holdout(n_train, VAL_FRACTION, val_size),
            test_size=round(TEST_FRACTION * n_train),
            seed=seed,
        )

    return cached_folder_splits(
        cfg, "imagefolder", root, classes, listings, (size, seed, val_size), split, {"classes": classes}
    )


def cached_folder_splits(
    cfg: Any,
    dataset: str,
    root: Path,
    classes: list[str],
    listings: dict[str, Listing],
    sizes: tuple[int, int, int | None],
    split: Callable[[Decoded], DatasetSplits],
    key_parts: dict[str, Any] | None = None,
) -> DatasetSplits:
    """A scanned image folder decoded once (the disk cache is keyed by its files, the image size and the decoder's
    version), split by `split`, kept in memory and marked with the digest of its content (what a resume checks).
    `sizes`: image size, split seed and validation size; `key_parts` add to the disk key."""
    size, seed, val_size = sizes
    entries = (
        (f"{rel}\t{label}", nbytes, mtime) for listing in listings.values() for rel, nbytes, mtime, label in listing
    )
    source = make_key(
        dataset=dataset,
        root=str(root),
        files=fingerprint(entries),
        **(key_parts or {}),
        image_size=size,
        decoder=decode.DECODER_VERSION,
    )
    key = make_key(source=source, seed=seed, val_size=val_size)
    cached = memory_get(key)
    if cached is not None:
        return cached
    decoded = disk_cached(
        cfg, label=f"{dataset}-{size}px", key=source, build=lambda: decode_listings(root, classes, listings, size)
    )
    splits = split(decoded)
    splits.content = content_digest(listings)
    memory_put(key, splits)
    return splits
