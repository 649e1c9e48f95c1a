"""`cifar10` and `cifar100`: the official "python version" pickles, read by torchvision.

Layout under `--data-dir DIR` (what cifar-10-python.tar.gz / cifar-100-python.tar.gz extract to):
DIR/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} or DIR/cifar-100-python/{train, test,
meta}; pointing at the inner folder itself also works. torchvision verifies the official md5 checksums, so
a damaged copy is reported rather than silently trained on; `download` lets torchvision fetch the archive.

Splits (the paper's Table 1): the official 10,000 test images are the test split; validation is carved
from the 50,000 training images, stratified and seeded: 45,000 / 5,000 (10% of train, or `val_size`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchvision import datasets

from factory.data.augment import resize_uint8
from factory.data.cache import Decoded, disk_cached, file_entry, fingerprint, make_key, memory_get, memory_put
from factory.data.config import checked_image_size, checked_val_size, option
from factory.data.registry import register_dataset
from factory.data.splits import DatasetSplits, carve_validation
from factory.errors import FactoryError

VAL_FRACTION = 0.1  # 5,000 of CIFAR's 50,000 training images

_READERS: dict[str, type[datasets.CIFAR10]] = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}
_ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def expected_files(reader: type[datasets.CIFAR10]) -> list[str]:
    """The file names torchvision reads (and checks) inside its base folder."""
    return [name for name, _ in reader.train_list + reader.test_list] + [reader.meta["filename"]]


def _layout(name: str, reader: type[datasets.CIFAR10]) -> str:
    files = [f for f, _ in reader.train_list]
    if len(files) > 2:
        files = [f"{files[0][:-2]}_1..{len(files)}"]
    files += [f for f, _ in reader.test_list] + [reader.meta["filename"]]
    return f"DIR/{reader.base_folder}/{{{', '.join(files)}}}"


def _root(name: str, reader: type[datasets.CIFAR10], cfg: Any) -> Path:
    """The torchvision root (the folder above base_folder), after checking the layout; FactoryError if incomplete."""
    data_dir = option(cfg, "data_dir")
    layout = _layout(name, reader)
    how = f"extract the official {_ARCHIVES[name]} into DIR or set data.download to fetch it"
    if not data_dir:
        raise FactoryError(f"dataset {name} needs --data-dir DIR laid out as {layout}; {how}")
    root = Path(data_dir).expanduser().resolve()
    if root.name == reader.base_folder and not (root / reader.base_folder).exists():
        root = root.parent
    if option(cfg, "download"):
        root.mkdir(parents=True, exist_ok=True)
        read_official(name, reader, root, train=True, download=True)
    folder = root / reader.base_folder
    missing = [f for f in expected_files(reader) if not (folder / f).is_file()]
    if missing:
        where = f"{folder} lacks {', '.join(missing)}" if folder.is_dir() else f"{folder} not found"
        raise FactoryError(f"dataset {name}: {where}; --data-dir DIR must hold {layout}; {how}")
    return root


def read_official(
    name: str, reader: type[datasets.CIFAR10], root: Path, *, train: bool, download: bool
) -> datasets.CIFAR10:
    """One split through torchvision, which opens a batch file only when its checksum is the official one."""
    try:
        return reader(root=str(root), train=train, download=download)
    except RuntimeError as exc:
        raise FactoryError(
            f"dataset {name}: torchvision rejected {root / reader.base_folder} ({exc}); the files must be the official "
            f"{_ARCHIVES[name]} contents (checksums are verified): re-extract it or set data.download"
        ) from exc


def _decode(name: str, reader: type[datasets.CIFAR10], root: Path, image_size: int) -> Decoded:
    parts = {}
    class_names: list[str] = []
    for part, train in (("train", True), ("test", False)):
        ds = read_official(name, reader, root, train=train, download=False)
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2)  # N x 32 x 32 x 3 -> N x 3 x 32 x 32
        parts[part] = (resize_uint8(images, image_size), torch.as_tensor(ds.targets, dtype=torch.int64))
        class_names = list(ds.classes)
    return Decoded(class_names=class_names, parts=parts)


def load_cifar(name: str, cfg: Any) -> DatasetSplits:
    """Train / val / test of CIFAR-10 or CIFAR-100 from cfg.data_dir (cached per source and image size)."""
    reader = _READERS[name]
    size, val_size, seed = checked_image_size(cfg), checked_val_size(cfg), int(option(cfg, "split_seed"))
    root = _root(name, reader, cfg)
    folder = root / reader.base_folder
    source = make_key(
        dataset=name,
        root=str(folder),
        files=fingerprint(file_entry(folder / f, folder) for f in expected_files(reader)),
        image_size=size,
    )
    key = make_key(source=source, seed=seed, val_size=val_size)
    cached = memory_get(key)
    if cached is not None:
        return cached
    decoded = disk_cached(cfg, label=f"{name}-{size}px", key=source, build=lambda: _decode(name, reader, root, size))
    splits = carve_validation(name, decoded.class_names, decoded.parts, VAL_FRACTION, val_size, seed)
    splits.content = fingerprint((f, (folder / f).stat().st_size, 0) for f in expected_files(reader))
    memory_put(key, splits)
    return splits


@register_dataset("cifar10")
def load_cifar10(cfg: Any) -> DatasetSplits:
    """CIFAR-10: 10 classes, 45,000 / 5,000 / 10,000."""
    return load_cifar("cifar10", cfg)


@register_dataset("cifar100")
def load_cifar100(cfg: Any) -> DatasetSplits:
    """CIFAR-100 (fine labels): 100 classes, 45,000 / 5,000 / 10,000."""
    return load_cifar("cifar100", cfg)
