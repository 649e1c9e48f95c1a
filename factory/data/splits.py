"""Split / DatasetSplits containers and the stratified, seeded carving of validation and test sets.

Every loader ends here: it hands over decoded uint8 images (plus the official test and validation sets
where the dataset has them) and `build_splits` carves whatever is missing from the training images, class
by class, so each split keeps the class balance and the same `split_seed` always gives the same split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from factory.errors import FactoryError


@dataclass
class Split:
    """One split held as whole tensors: images uint8 N x 3 x H x W (contiguous), labels int64 N.

    Whole tensors (not a per-image Dataset) let the batch iterator gather, augment and normalise a batch in
    a few vectorised ops on the training device.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"Split.images must be uint8 N x 3 x H x W, got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1 or len(self.labels) != len(self.images):
            raise ValueError(
                f"Split.labels must be int64 of length {len(self.images)}, got {self.labels.dtype} "
                f"{tuple(self.labels.shape)}"
            )
        self.images = self.images.contiguous()
        self.labels = self.labels.contiguous()

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        """Side of the square images."""
        return int(self.images.shape[-1])

    def subset(self, index: torch.Tensor) -> Split:
        """The images at `index` (a copy, contiguous)."""
        index = index.to(self.images.device)
        return Split(self.images[index], self.labels[index])

    def joined(self, other: Split) -> Split:
        """This split's images followed by `other`'s (train + validation for a final fit)."""
        return Split(torch.cat([self.images, other.images]), torch.cat([self.labels, other.labels]))

    def to(self, device: torch.device | str) -> Split:
        """This split on `device` (e.g. the whole training set on the GPU once, so batches skip the copy)."""
        return Split(self.images.to(device), self.labels.to(device))

    @staticmethod
    def empty(image_size: int) -> Split:
        """A split with no images (e.g. val_size=0)."""
        return Split(torch.empty(0, 3, image_size, image_size, dtype=torch.uint8), torch.empty(0, dtype=torch.int64))


@dataclass
class DatasetSplits:
    """The three splits of one dataset plus its class list; `name` is the registry name."""

    train: Split
    val: Split
    test: Split
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    name: str = ""
    content: str = ""  # a hash of the source files (names, sizes, labels) where the loader has files; "" otherwise

    def sizes(self) -> dict[str, int]:
        """Image counts per split, e.g. {"train": 45000, "val": 5000, "test": 10000}."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def fingerprint(self) -> dict[str, Any]:
        """What the data is, not where it lives: class names, split sizes and the source files' hash.

        A build records it and a resumed build compares it, so data changed between a kill and --resume (a class
        folder renamed, which permutes the labels; images added or replaced) is refused instead of mixed in.
        """
        return {"classes": list(self.class_names), "sizes": self.sizes(), "files": self.content}

    def require_usable(self, val_size: int | None = None) -> None:
        """A FactoryError, with the sizes, when a split is empty: training, searching or testing on nothing
        would otherwise fail (or score nothing) only after the last epoch."""
        sizes = self.sizes()
        empty = [part for part in ("train", "val", "test") if sizes[part] == 0]
        if not empty:
            return
        words = {"train": "training", "val": "validation", "test": "test"}
        shown = " / ".join(f"{words[p]} {n:,}" for p, n in sizes.items())
        if empty == ["val"] and val_size == 0:
            fix = "the search ranks networks on the validation split: set data.val_size above 0 (or leave it unset)"
        else:
            fix = (
                "add images (10% of train is carved for each missing test and validation split, so give each class "
                "at least 10), give DIR/val and DIR/test folders, or set data.val_size"
            )
        raise FactoryError(
            f"dataset {self.name or 'data'} gives {shown} images: the {' and '.join(words[p] for p in empty)} "
            f"split{'s are' if len(empty) > 1 else ' is'} empty; {fix}"
        )


def fingerprint_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two `DatasetSplits.fingerprint()`s, in words ([] when the data is the same)."""
    changes = []
    before, after = list(old.get("classes", [])), list(new.get("classes", []))
    if before != after:
        gone = [c for c in before if c not in after]
        added = [c for c in after if c not in before]
        parts = [
            f"{label} {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
            for label, names in (("removed", gone), ("added", added))
            if names
        ]
        changes.append(
            f"the classes changed ({'; '.join(parts) or 'their order'}; {len(before)} -> {len(after)} classes), "
            "which would change what each label means"
        )
    if old.get("sizes") != new.get("sizes"):
        was, now = old.get("sizes", {}), new.get("sizes", {})
        changes.append(
            "split sizes " + ", ".join(f"{k} {was.get(k)} -> {now.get(k)}" for k in now if was.get(k) != now.get(k))
        )
    if not changes and old.get("files") != new.get("files"):
        changes.append("image files were added, removed, renamed or resized (same classes and split sizes)")
    return changes


def _class_quotas(labels: torch.Tensor, holdout: int) -> dict[int, int]:
    """How many images of each class go to a holdout of `holdout` images: proportional, largest remainder.

    Remainders go first to classes that keep at least one training image, so small classes are not emptied.
    """
    classes, counts = torch.unique(labels, return_counts=True)
    total = int(counts.sum())
    exact = counts.double() * holdout / total
    base = exact.floor().long()
    left = holdout - int(base.sum())
    frac = (exact - base.double()).tolist()
    keeps_one = (base + 1 < counts).tolist()
    order = sorted(range(len(classes)), key=lambda i: (not keeps_one[i], -frac[i], i))
    for i in order[:left]:
        base[i] += 1
    return {int(c): int(q) for c, q in zip(classes.tolist(), base.tolist(), strict=True)}


def stratified_split(
    labels: torch.Tensor, holdout: int, generator: torch.Generator, *, what: str = "val_size"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (keep, holdout) of a class-stratified random split; both sorted, `holdout` images held out.

    Each class contributes in proportion to its size (rounded by largest remainder), picked by a random
    permutation drawn from `generator`, so the split depends only on the labels and the generator's seed.
    """
    n = len(labels)
    if holdout < 0:
        raise FactoryError(f"{what} must be non-negative, got {holdout}")
    if holdout == 0:
        return torch.arange(n), torch.empty(0, dtype=torch.int64)
    if holdout >= n:
        raise FactoryError(
            f"{what}={holdout} leaves no training images (only {n} available to carve from); set data.{what} below {n}"
        )
    labels = labels.cpu()
    keep_parts, hold_parts = [], []
    for cls, quota in _class_quotas(labels, holdout).items():
        members = torch.nonzero(labels == cls, as_tuple=True)[0]
        shuffled = members[torch.randperm(len(members), generator=generator)]
        hold_parts.append(shuffled[:quota])
        keep_parts.append(shuffled[quota:])
    keep = torch.cat(keep_parts).sort().values
    hold = torch.cat(hold_parts).sort().values
    return keep, hold


def build_splits(
    *,
    name: str,
    class_names: list[str],
    train: Split,
    val: Split | None,
    test: Split | None,
    val_size: int,
    test_size: int | None,
    seed: int,
) -> DatasetSplits:
    """Carve the missing test set (first, `test_size` images) and validation set (`val_size`) out of `train`.

    Given `val` / `test` splits are used as they are. The carving is stratified and seeded by `seed`: the
    same seed gives identical splits, another seed different ones.
    """
    generator = torch.Generator().manual_seed(int(seed))
    pool = train
    if test is None:
        if test_size is None:
            raise ValueError("build_splits: test_size is required when no test split is given")
        keep, hold = stratified_split(pool.labels, test_size, generator, what="test_size")
        test = pool.subset(hold)
        pool = pool.subset(keep)
    if val is None:
        keep, hold = stratified_split(pool.labels, val_size, generator, what="val_size")
        val = pool.subset(hold)
        pool = pool.subset(keep)
    return DatasetSplits(
        train=pool, val=val, test=test, num_classes=len(class_names), class_names=list(class_names), name=name
    )


def default_holdout(n_train: int, fraction: float, override: int | None) -> int:
    """`override` when set, else round(fraction * n_train): e.g. 10% of CIFAR's 50,000 = the paper's 5,000."""
    return int(override) if override is not None else round(fraction * n_train)


def carve_validation(
    name: str,
    class_names: list[str],
    parts: dict[str, tuple[torch.Tensor, torch.Tensor]],
    val_fraction: float,
    val_size: int | None,
    seed: int,
) -> DatasetSplits:
    """Splits of a dataset that ships train and test only: validation is carved from train (stratified,
    seeded), `val_size` images or `val_fraction` of train (the paper's Table 1 sizes)."""
    train_images, train_labels = parts["train"]
    return build_splits(
        name=name,
        class_names=class_names,
        train=Split(train_images, train_labels),
        val=None,
        test=Split(*parts["test"]),
        val_size=default_holdout(len(train_labels), val_fraction, val_size),
        test_size=None,
        seed=seed,
    )
