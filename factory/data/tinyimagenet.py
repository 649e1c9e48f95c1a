"""`tinyimagenet`: Tiny ImageNet (200 classes, 64x64 JPEGs) in its distributed layout.

Layout under `--data-dir DIR` (what tiny-imagenet-200.zip extracts to): DIR/wnids.txt (one WordNet id per
line), DIR/train/<wnid>/images/*.JPEG, DIR/val/images/*.JPEG and DIR/val/val_annotations.txt (tab-separated:
file name, wnid, bounding box). Classes are the wnids, sorted (the order an image-folder reader of train/
would give).

Splits (the paper's Table 1): the official 10,000 validation images are the test split (the real test
set has no labels); validation is carved from the 100,000 training images, stratified and seeded:
85,000 / 15,000 (15% of train, or `val_size`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.data import decode
from factory.data.cache import Decoded
from factory.data.config import checked_image_size, checked_val_size, option
from factory.data.imagefolder import cached_folder_splits, data_root
from factory.data.registry import register_dataset
from factory.data.splits import DatasetSplits, carve_validation
from factory.errors import FactoryError

VAL_FRACTION = 0.15  # 15,000 of the 100,000 training images
LAYOUT = (
    "DIR/wnids.txt, DIR/train/<wnid>/images/*.JPEG, DIR/val/images/*.JPEG and DIR/val/val_annotations.txt "
    "(the extracted tiny-imagenet-200.zip)"
)

Listing = list[tuple[str, int, int, int]]  # (relative path, size, mtime_ns, label)


def _fail(problem: str) -> FactoryError:
    return FactoryError(f"dataset tinyimagenet: {problem}; --data-dir DIR must hold {LAYOUT}")


def _entry(root: Path, path: Path, label: int) -> tuple[str, int, int, int]:
    stat = path.stat()
    return (path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns, label)


def scan_tiny_imagenet(root: Path) -> tuple[list[str], dict[str, Listing]]:
    """Sorted wnids and the (train, test) listings; FactoryError naming the first missing piece."""
    wnids_file = root / "wnids.txt"
    if not wnids_file.is_file():
        raise _fail(f"{wnids_file} not found")
    wnids = sorted({line.strip() for line in wnids_file.read_text().splitlines() if line.strip()})
    if not wnids:
        raise _fail(f"{wnids_file} lists no classes")
    index = {wnid: i for i, wnid in enumerate(wnids)}
    train: Listing = []
    for wnid in wnids:
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise _fail(f"{folder} not found")
        files = sorted(p for p in folder.iterdir() if p.is_file() and decode.is_image_file(p.name))
        if not files:
            raise _fail(f"{folder} holds no images")
        train.extend(_entry(root, p, index[wnid]) for p in files)
    annotations = root / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise _fail(f"{annotations} not found")
    test: Listing = []
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1].strip() not in index:
            raise _fail(f"{annotations} line {number} is not 'file<TAB>wnid<TAB>...' with a wnid from wnids.txt")
        image = root / "val" / "images" / fields[0].strip()
        if not image.is_file():
            raise _fail(f"{image} (listed in {annotations.name} line {number}) not found")
        test.append(_entry(root, image, index[fields[1].strip()]))
    if not test:
        raise _fail(f"{annotations} lists no images")
    test.sort()
    return wnids, {"train": train, "test": test}


@register_dataset("tinyimagenet")
def load_tiny_imagenet(cfg: Any) -> DatasetSplits:
    """Train / val / test of Tiny ImageNet at cfg.image_size (official val = test; val carved from train)."""
    size, val_size, seed = checked_image_size(cfg), checked_val_size(cfg), int(option(cfg, "split_seed"))
    root = data_root(cfg, "tinyimagenet", LAYOUT)
    wnids, listings = scan_tiny_imagenet(root)

    def split(decoded: Decoded) -> DatasetSplits:
        return carve_validation("tinyimagenet", decoded.class_names, decoded.parts, VAL_FRACTION, val_size, seed)

    return cached_folder_splits(cfg, "tinyimagenet", root, wnids, listings, (size, seed, val_size), split)
