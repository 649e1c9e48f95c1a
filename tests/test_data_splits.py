"""Digits loader, stratified splitting, determinism and the dataset registry."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from factory.data import (
    DatasetSplits,
    Split,
    clear_memory_cache,
    dataset_names,
    load_dataset,
    register_dataset,
    stratified_split,
)
from factory.errors import FactoryError
from factory.recipe import DataSection

from .data_helpers import data_cfg

pytestmark = pytest.mark.usefixtures("fresh_memory_cache")


def test_digits_sizes_classes_and_format():
    splits = load_dataset(data_cfg())
    assert splits.name == "digits"
    assert splits.sizes() == {"train": 1258, "val": 180, "test": 359}
    assert splits.num_classes == 10 and splits.class_names == [str(d) for d in range(10)]
    for split in (splits.train, splits.val, splits.test):
        assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
        assert split.images.shape[1:] == (3, 32, 32) and split.images.is_contiguous()
        assert torch.equal(split.images[:, 0], split.images[:, 2])  # grey repeated to 3 channels
    assert int(splits.train.images.max()) > 200  # scaled to 0..255, not 0..16


def test_digits_image_size_and_val_size():
    splits = load_dataset(data_cfg(image_size=16, val_size=50))
    assert splits.train.images.shape[1:] == (3, 16, 16)
    assert splits.sizes() == {"train": 1797 - 359 - 50, "val": 50, "test": 359}


def test_digits_stratified():
    splits = load_dataset(data_cfg())
    assert splits.val.labels.bincount(minlength=10).tolist() == [18] * 10
    test_counts = splits.test.labels.bincount(minlength=10)
    assert int(test_counts.max() - test_counts.min()) <= 2


def test_same_seed_same_splits_other_seed_different():
    first = load_dataset(data_cfg(split_seed=3))
    clear_memory_cache()
    again = load_dataset(data_cfg(split_seed=3))
    assert first is not again
    for a, b in ((first.train, again.train), (first.val, again.val), (first.test, again.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    other = load_dataset(data_cfg(split_seed=4))
    assert not torch.equal(first.val.images, other.val.images)


def test_memory_cache_returns_same_object():
    assert load_dataset(data_cfg()) is load_dataset(data_cfg())


def test_stratified_split_partitions_indices():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    keep, hold = stratified_split(labels, 10, torch.Generator().manual_seed(0))
    assert len(hold) == 10 and len(keep) == 90
    assert sorted(torch.cat([keep, hold]).tolist()) == list(range(100))
    assert labels[hold].bincount().tolist() == [5, 3, 2]
    keep2, hold2 = stratified_split(labels, 10, torch.Generator().manual_seed(0))
    assert torch.equal(hold, hold2) and torch.equal(keep, keep2)


def test_stratified_split_does_not_empty_small_classes():
    labels = torch.tensor([0] * 10 + [1] * 10 + [2])
    keep, _ = stratified_split(labels, 3, torch.Generator().manual_seed(0))
    assert 2 in labels[keep].tolist()


def test_stratified_split_bounds():
    labels = torch.arange(10) % 2
    keep, hold = stratified_split(labels, 0, torch.Generator())
    assert len(keep) == 10 and len(hold) == 0
    with pytest.raises(FactoryError, match="val_size"):
        stratified_split(labels, 10, torch.Generator())


def test_val_size_too_large_is_a_factory_error():
    with pytest.raises(FactoryError, match="val_size"):
        load_dataset(data_cfg(val_size=5000))


def test_registry_names_and_unknown_dataset():
    assert {"digits", "cifar10", "cifar100", "tinyimagenet", "imagefolder"} <= set(dataset_names())
    with pytest.raises(FactoryError) as info:
        load_dataset(data_cfg(dataset="mnist"))
    message = str(info.value)
    assert "mnist" in message and "cifar10" in message and "digits" in message and "\n" not in message


@pytest.mark.parametrize("size", [0, -3, 2.5, "32"])
def test_bad_image_size(size):
    with pytest.raises(FactoryError, match="image_size"):
        load_dataset(data_cfg(image_size=size))


def test_register_custom_dataset():
    @register_dataset("unit-test-tiny")
    def _load(cfg):
        images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
        split = Split(images, torch.tensor([0, 1, 0, 1]))
        return DatasetSplits(train=split, val=split, test=split, num_classes=2, class_names=["a", "b"])

    splits = load_dataset(data_cfg(dataset="Unit-Test-Tiny"))
    assert splits.name == "unit-test-tiny" and splits.sizes() == {"train": 4, "val": 4, "test": 4}


def test_split_validates_dtype():
    with pytest.raises(ValueError):
        Split(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError):
        Split(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


def test_accepts_the_recipe_dataconfig():
    splits = load_dataset(DataSection(image_size=16))
    assert splits.name == "digits" and splits.train.images.shape[1:] == (3, 16, 16)


def test_partial_config_uses_defaults():
    splits = load_dataset(SimpleNamespace(dataset="digits"))
    assert splits.sizes() == {"train": 1258, "val": 180, "test": 359}


def _two_by_two(root):
    from PIL import Image

    for name, color in (("cat", (200, 0, 0)), ("dog", (0, 200, 0))):
        for i in range(2):
            (root / "train" / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), color).save(root / "train" / name / f"{i}.png")


def test_empty_test_and_validation_splits_are_refused_with_the_sizes(tmp_path):
    _two_by_two(tmp_path)
    splits = load_dataset(data_cfg(dataset="imagefolder", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))
    with pytest.raises(FactoryError) as info:
        splits.require_usable()
    message = str(info.value)
    assert "training 4 / validation 0 / test 0" in message and "validation and test splits are empty" in message
    assert "\n" not in message


def test_val_size_zero_is_refused_naming_the_key():
    splits = load_dataset(data_cfg(val_size=0))
    with pytest.raises(FactoryError, match=r"validation 0 / test 359 images: the validation split is empty.*val_size"):
        splits.require_usable(0)
    load_dataset(data_cfg()).require_usable()  # the default digits splits are usable


def test_fingerprint_changes_say_what_changed():
    from factory.data.splits import fingerprint_changes

    old = {"classes": ["cat", "dog"], "sizes": {"train": 8, "val": 1, "test": 1}, "files": "a"}
    assert fingerprint_changes(old, dict(old)) == []
    renamed = {**old, "classes": ["dog", "kitten"], "files": "b"}
    (change,) = fingerprint_changes(old, renamed)
    assert "removed cat" in change and "added kitten" in change
    grown = {**old, "sizes": {"train": 9, "val": 1, "test": 1}, "files": "b"}
    assert fingerprint_changes(old, grown) == ["split sizes train 8 -> 9"]
    assert "image files" in fingerprint_changes(old, {**old, "files": "b"})[0]
