"""CIFAR-10 / CIFAR-100 through torchvision's real reader, on pickle batches written in the official format.

torchvision checks the official md5s; the batches written here are not the official files, so each test
patches the expected md5 lists *on the torchvision class, in the test only* with the md5s of the files it
wrote. The reader code path (integrity check, unpickling, meta) runs unchanged.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets

from factory.data import cifar as cifar_module
from factory.data import clear_memory_cache, load_dataset
from factory.errors import FactoryError

from .data_helpers import data_cfg

pytestmark = pytest.mark.usefixtures("fresh_memory_cache")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _batch(rng: np.random.Generator, num_classes: int, per_class: int) -> tuple[np.ndarray, list[int]]:
    labels = [c for c in range(num_classes) for _ in range(per_class)]
    data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)  # rows: R(1024) G(1024) B(1024)
    return data, labels


def _dump(path: Path, obj: dict) -> None:
    with path.open("wb") as handle:
        pickle.dump(obj, handle)


def write_cifar10(root: Path, monkeypatch: pytest.MonkeyPatch, per_class: int = 4) -> dict[str, np.ndarray]:
    """DIR/cifar-10-batches-py with 5 train batches + test batch + batches.meta; md5 lists patched to match."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written: dict[str, np.ndarray] = {}
    train_list, test_list = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data, labels = _batch(rng, 10, per_class)
        _dump(folder / name, {"batch_label": name, "labels": labels, "data": data, "filenames": []})
        written[name] = data
        (test_list if name == "test_batch" else train_list).append([name, _md5(folder / name)])
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": 10 * per_class, "num_vis": 3072})
    monkeypatch.setattr(datasets.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(datasets.CIFAR10, "test_list", test_list)
    meta = {**datasets.CIFAR10.meta, "md5": _md5(folder / "batches.meta")}
    monkeypatch.setattr(datasets.CIFAR10, "meta", meta)
    return written


def write_cifar100(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    lists = {}
    for name, per_class in (("train", 3), ("test", 1)):
        data, labels = _batch(rng, 100, per_class)
        _dump(folder / name, {"data": data, "fine_labels": labels, "coarse_labels": [x // 5 for x in labels]})
        lists[name] = [[name, _md5(folder / name)]]
    _dump(folder / "meta", {"fine_label_names": [f"c{i:03d}" for i in range(100)], "coarse_label_names": []})
    monkeypatch.setattr(datasets.CIFAR100, "train_list", lists["train"])
    monkeypatch.setattr(datasets.CIFAR100, "test_list", lists["test"])
    monkeypatch.setattr(datasets.CIFAR100, "meta", {**datasets.CIFAR100.meta, "md5": _md5(folder / "meta")})


def test_cifar10_reads_real_format(tmp_path, monkeypatch):
    written = write_cifar10(tmp_path / "data", monkeypatch)
    splits = load_dataset(data_cfg(dataset="cifar10", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "c")))
    assert splits.sizes() == {"train": 180, "val": 20, "test": 40}  # val = 10% of train, like 5,000 of 50,000
    assert splits.num_classes == 10 and splits.class_names[0] == "airplane"
    assert splits.val.labels.bincount(minlength=10).tolist() == [2] * 10
    expected = torch.from_numpy(written["test_batch"]).view(-1, 3, 32, 32)
    assert torch.equal(splits.test.images, expected)  # CHW order and values preserved
    assert splits.test.labels.tolist() == [c for c in range(10) for _ in range(4)]
    assert splits.train.images.dtype == torch.uint8 and splits.train.images.is_contiguous()


def test_cifar10_resize_and_inner_folder_and_seed(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    inner = str(tmp_path / "cifar-10-batches-py")
    cfg = data_cfg(dataset="cifar10", data_dir=inner, image_size=16, val_size=30, cache_dir=str(tmp_path / "c"))
    splits = load_dataset(cfg)
    assert splits.train.images.shape[1:] == (3, 16, 16)
    assert splits.sizes() == {"train": 170, "val": 30, "test": 40}
    other = load_dataset(data_cfg(**{**vars(cfg), "split_seed": 1}))
    assert not torch.equal(splits.val.images, other.val.images)


def test_cifar100_reads_fine_labels(tmp_path, monkeypatch):
    write_cifar100(tmp_path, monkeypatch)
    splits = load_dataset(data_cfg(dataset="cifar100", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))
    assert splits.num_classes == 100 and splits.class_names[7] == "c007"
    assert splits.sizes() == {"train": 270, "val": 30, "test": 100}
    assert splits.val.labels.bincount(minlength=100).max() == 1  # spread over classes, none emptied


def test_checksums_are_still_verified(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    monkeypatch.undo()  # back to the official md5s: the written files must be rejected
    with pytest.raises(FactoryError, match="checksums") as info:
        load_dataset(data_cfg(dataset="cifar10", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))
    assert "\n" not in str(info.value)


def test_missing_folder_names_layout(tmp_path):
    with pytest.raises(FactoryError) as info:
        load_dataset(data_cfg(dataset="cifar10", data_dir=str(tmp_path / "nowhere"), cache_dir=str(tmp_path)))
    message = str(info.value)
    assert "--data-dir" in message and "cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}" in message
    with pytest.raises(FactoryError, match="--data-dir"):
        load_dataset(data_cfg(dataset="cifar100", data_dir=None))


def test_incomplete_folder_names_missing_file(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FactoryError, match="data_batch_3"):
        load_dataset(data_cfg(dataset="cifar10", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))


def test_second_load_comes_from_disk_cache(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "data", monkeypatch)
    cfg = data_cfg(dataset="cifar10", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "c"))
    first = load_dataset(cfg)
    assert len(list((tmp_path / "c" / "datasets").glob("cifar10-32px-*.pt"))) == 1
    clear_memory_cache()

    def _no_reading(*args, **kwargs):
        raise AssertionError("the pickles were read again instead of the cache")

    monkeypatch.setattr(cifar_module, "read_official", _no_reading)
    second = load_dataset(cfg)
    assert torch.equal(first.train.images, second.train.images) and torch.equal(first.test.labels, second.test.labels)
