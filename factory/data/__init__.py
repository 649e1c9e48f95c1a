"""The datasets layer: registered loaders -> cached uint8 splits -> vectorised batches on the training device.

    splits = load_dataset(cfg.data)                      # digits, cifar10, cifar100, tinyimagenet, imagefolder
    for images, labels in iterate_batches(splits.train, 256, shuffle=True, generator=g, device="cuda",
                                          augment=True, cfg=cfg.data):
        ...

Loaders for the built-in datasets are imported on first use of the registry.
"""

from factory.data.augment import augment_batch, model_inputs, normalize, random_crop, random_flip, resize_batch
from factory.data.batches import iterate_batches
from factory.data.cache import cache_root, clear_memory_cache
from factory.data.config import DATA_DEFAULTS, make_data_config
from factory.data.registry import dataset_names, load_dataset, register_dataset
from factory.data.splits import DatasetSplits, Split, build_splits, stratified_split

__all__ = [
    "DATA_DEFAULTS",
    "DatasetSplits",
    "Split",
    "augment_batch",
    "build_splits",
    "cache_root",
    "clear_memory_cache",
    "dataset_names",
    "iterate_batches",
    "load_dataset",
    "make_data_config",
    "model_inputs",
    "normalize",
    "random_crop",
    "random_flip",
    "register_dataset",
    "resize_batch",
    "stratified_split",
]
