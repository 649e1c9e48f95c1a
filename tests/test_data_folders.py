"""Image-folder and Tiny ImageNet loaders on small generated trees, the disk cache, and the decoder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from factory.data import clear_memory_cache, load_dataset
from factory.data import decode as decode_module
from factory.errors import FactoryError

from .data_helpers import data_cfg

COLORS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "emu": (30, 30, 200)}


pytestmark = pytest.mark.usefixtures("fresh_memory_cache")


def _save(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (20, 20)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def write_image_folder(root: Path, counts: dict[str, int]) -> None:
    """root/<part>/<class>/NN.png|jpg with one solid colour per class (PNG is lossless: exact pixels)."""
    for part, per_class in counts.items():
        for name, color in COLORS.items():
            for i in range(per_class):
                ext = ".png" if i % 2 == 0 else ".JPG"
                _save(root / part / name / f"{i:02d}{ext}", color)


def _check_colors(split, class_names):
    for image, label in zip(split.images, split.labels, strict=True):
        expected = torch.tensor(COLORS[class_names[label]], dtype=torch.int64)
        assert (image.double().mean(dim=(1, 2)) - expected).abs().max() <= 3


def test_image_folder_train_and_test(tmp_path):
    write_image_folder(tmp_path / "d", {"train": 10, "test": 4})
    (tmp_path / "d" / "train" / "cat" / ".hidden.png").write_bytes(b"not an image")
    (tmp_path / "d" / "train" / "cat" / "notes.txt").write_text("ignored")
    splits = load_dataset(data_cfg(dataset="imagefolder", data_dir=str(tmp_path / "d"), cache_dir=str(tmp_path / "c")))
    assert splits.class_names == ["cat", "dog", "emu"] and splits.num_classes == 3
    assert splits.sizes() == {"train": 27, "val": 3, "test": 12}
    assert splits.val.labels.bincount().tolist() == [1, 1, 1]
    assert splits.train.images.shape[1:] == (3, 32, 32)
    for split in (splits.train, splits.val, splits.test):
        _check_colors(split, splits.class_names)


def test_image_folder_with_val_and_test(tmp_path):
    write_image_folder(tmp_path, {"train": 6, "val": 2, "test": 3})
    splits = load_dataset(
        data_cfg(dataset="imagefolder", data_dir=str(tmp_path), image_size=8, cache_dir=str(tmp_path))
    )
    assert splits.sizes() == {"train": 18, "val": 6, "test": 9}
    assert splits.test.images.shape[1:] == (3, 8, 8)


def test_image_folder_train_only_carves_val_and_test(tmp_path):
    write_image_folder(tmp_path / "d", {"train": 20})
    cfg = data_cfg(dataset="imagefolder", data_dir=str(tmp_path / "d"), cache_dir=str(tmp_path / "c"))
    splits = load_dataset(cfg)
    assert splits.sizes() == {"train": 48, "val": 6, "test": 6}
    assert splits.test.labels.bincount().tolist() == [2, 2, 2]
    clear_memory_cache()
    again = load_dataset(cfg)
    assert torch.equal(splits.test.images, again.test.images) and torch.equal(splits.val.labels, again.val.labels)


def test_non_square_images_are_center_cropped(tmp_path):
    image = Image.new("RGB", (60, 20), (0, 0, 255))
    image.paste((255, 0, 0), (20, 0, 40, 20))  # red centre square, blue sides
    (tmp_path / "train" / "a").mkdir(parents=True)
    image.save(tmp_path / "train" / "a" / "wide.png")
    out = decode_module.decode_images([str(tmp_path / "train" / "a" / "wide.png")], 10)
    assert out.shape == (1, 3, 10, 10)
    assert out[0, 0].min() > 200 and out[0, 2].max() < 50


def test_nested_folders_and_uppercase_extensions(tmp_path):
    _save(tmp_path / "train" / "a" / "sub" / "x.JPEG", (10, 10, 10))
    _save(tmp_path / "train" / "a" / "y.webp", (10, 10, 10))
    _save(tmp_path / "train" / "b" / "z.bmp", (250, 250, 250))
    _save(tmp_path / "test" / "b" / "t.png", (250, 250, 250))
    splits = load_dataset(data_cfg(dataset="imagefolder", data_dir=str(tmp_path), val_size=0, cache_dir=str(tmp_path)))
    assert splits.sizes() == {"train": 3, "val": 0, "test": 1}
    assert splits.val.images.shape == (0, 3, 32, 32)


@pytest.mark.parametrize(
    ("layout", "needle"),
    [
        ("missing", "not found"),
        ("no-train", "train"),
        ("no-classes", "no class folders"),
        ("empty-class", "holds no images"),
        ("stray-class", "no counterpart"),
        ("one-class", "at least two"),
    ],
)
def test_image_folder_layout_errors(tmp_path, layout, needle):
    root = tmp_path / "d"
    if layout != "missing":
        root.mkdir()
    if layout == "no-classes":
        (root / "train").mkdir()
    if layout == "empty-class":
        write_image_folder(root, {"train": 2})
        (root / "train" / "zebra").mkdir()
    if layout == "one-class":
        _save(root / "train" / "cat" / "0.png", (0, 0, 0))
        _save(root / "train" / "cat" / "1.png", (9, 9, 9))
    if layout == "stray-class":
        write_image_folder(root, {"train": 2})
        _save(root / "test" / "zebra" / "0.png", (0, 0, 0))
    with pytest.raises(FactoryError, match=needle) as info:
        load_dataset(data_cfg(dataset="imagefolder", data_dir=str(root), cache_dir=str(tmp_path / "c")))
    message = str(info.value)
    assert "\n" not in message
    if layout in ("missing", "no-train", "no-classes"):
        assert "--data-dir" in message and "DIR/train/<class>/" in message


def test_image_folder_needs_data_dir():
    with pytest.raises(FactoryError, match="--data-dir"):
        load_dataset(data_cfg(dataset="imagefolder"))


def test_bad_image_is_a_factory_error(tmp_path):
    write_image_folder(tmp_path, {"train": 2})
    (tmp_path / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(FactoryError, match=r"broken\.jpg"):
        load_dataset(data_cfg(dataset="imagefolder", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))


def test_cache_hit_does_not_decode(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "d", {"train": 4, "test": 2})
    cfg = data_cfg(dataset="imagefolder", data_dir=str(tmp_path / "d"), val_size=3, cache_dir=str(tmp_path / "c"))
    first = load_dataset(cfg)
    files = list((tmp_path / "c" / "datasets").glob("imagefolder-32px-*.pt"))
    assert len(files) == 1
    assert not [p for p in files[0].parent.iterdir() if p.name.endswith(".tmp")]
    clear_memory_cache()

    def _no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the disk cache")

    monkeypatch.setattr(decode_module, "decode_images", _no_decoding)
    second = load_dataset(cfg)
    assert second is not first
    for a, b in ((first.train, second.train), (first.val, second.val), (first.test, second.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_changed_source_invalidates_cache(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "d", {"train": 4, "test": 2})
    cfg = data_cfg(dataset="imagefolder", data_dir=str(tmp_path / "d"), val_size=3, cache_dir=str(tmp_path / "c"))
    load_dataset(cfg)
    clear_memory_cache()
    _save(tmp_path / "d" / "train" / "dog" / "new.png", COLORS["dog"])
    calls = []
    real = decode_module.decode_images
    monkeypatch.setattr(decode_module, "decode_images", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert load_dataset(cfg).sizes()["train"] == 10
    assert calls == [1]


def test_corrupt_cache_is_rebuilt(tmp_path):
    write_image_folder(tmp_path / "d", {"train": 4, "test": 2})
    cfg = data_cfg(dataset="imagefolder", data_dir=str(tmp_path / "d"), val_size=3, cache_dir=str(tmp_path / "c"))
    first = load_dataset(cfg)
    (path,) = (tmp_path / "c" / "datasets").glob("*.pt")
    path.write_bytes(path.read_bytes()[:100])  # truncated, as after a crash of a non-atomic writer
    clear_memory_cache()
    with pytest.warns(UserWarning, match="rebuilding"):
        second = load_dataset(cfg)
    assert torch.equal(first.train.images, second.train.images)
    clear_memory_cache()
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        load_dataset(cfg)
    clear_memory_cache()
    third = load_dataset(cfg)  # rebuilt file is valid again: no warning
    assert torch.equal(first.test.images, third.test.images)


def test_parallel_decode_matches_serial(tmp_path, monkeypatch):
    paths = []
    rng = np.random.default_rng(0)
    for i in range(40):
        path = tmp_path / f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    serial = decode_module.decode_images(paths, 12, workers=1)
    monkeypatch.setattr(decode_module, "PARALLEL_MIN", 1)
    monkeypatch.setattr(decode_module, "CHUNK", 7)
    parallel = decode_module.decode_images(paths, 12, workers=2)
    assert np.array_equal(serial, parallel)
    assert np.array_equal(serial[5].transpose(1, 2, 0), np.asarray(Image.open(paths[5])))


def write_tiny_imagenet(root: Path, train_per_class: int = 6, val_per_class: int = 2) -> list[str]:
    wnids = ["n02", "n01", "n03"]  # deliberately unsorted in wnids.txt
    colors = dict(zip(wnids, COLORS.values(), strict=True))
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for wnid in wnids:
        (root / "train" / wnid / f"{wnid}_boxes.txt").parent.mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(train_per_class):
            _save(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", colors[wnid], (64, 64))
    lines = []
    for i in range(val_per_class * len(wnids)):
        wnid = wnids[i % len(wnids)]
        _save(root / "val" / "images" / f"val_{i}.JPEG", colors[wnid], (64, 64))
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return wnids


def test_tiny_imagenet_layout(tmp_path):
    write_tiny_imagenet(tmp_path / "tiny")
    cfg = data_cfg(dataset="tinyimagenet", data_dir=str(tmp_path / "tiny"), cache_dir=str(tmp_path / "c"))
    splits = load_dataset(cfg)
    assert splits.class_names == ["n01", "n02", "n03"] and splits.num_classes == 3
    assert splits.sizes() == {"train": 15, "val": 3, "test": 6}  # val = 15% of train, like 15,000 of 100,000
    assert splits.test.labels.bincount().tolist() == [2, 2, 2]
    colors = {"n02": COLORS["cat"], "n01": COLORS["dog"], "n03": COLORS["emu"]}
    for split in (splits.train, splits.val, splits.test):
        assert split.images.shape[1:] == (3, 32, 32)
        for image, label in zip(split.images, split.labels, strict=True):
            expected = torch.tensor(colors[splits.class_names[label]])
            assert (image.double().mean(dim=(1, 2)) - expected).abs().max() <= 4


@pytest.mark.parametrize("broken", ["wnids", "annotations", "train-class", "unknown-wnid"])
def test_tiny_imagenet_layout_errors(tmp_path, broken):
    root = tmp_path / "tiny"
    write_tiny_imagenet(root, train_per_class=1, val_per_class=1)
    if broken == "wnids":
        (root / "wnids.txt").unlink()
    elif broken == "annotations":
        (root / "val" / "val_annotations.txt").unlink()
    elif broken == "train-class":
        for path in (root / "train" / "n03" / "images").iterdir():
            path.unlink()
        os.rmdir(root / "train" / "n03" / "images")
    else:
        (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(FactoryError) as info:
        load_dataset(data_cfg(dataset="tinyimagenet", data_dir=str(root), cache_dir=str(tmp_path / "c")))
    message = str(info.value)
    assert "--data-dir" in message and "val_annotations.txt" in message and "\n" not in message


# Bad images and odd folders: one line or a warning, never a traceback or a silently wrong image.


def _bomb_png(path: Path, side: int = 20_000) -> None:
    """A tiny PNG whose header declares side x side pixels (a decompression bomb: 400 megapixels at 20,000)."""
    import struct
    import zlib

    small = path.with_suffix(".tmp")
    Image.new("RGB", (1, 1)).save(small, format="PNG")
    data = bytearray(small.read_bytes())
    small.unlink()
    body = b"IHDR" + struct.pack(">II", side, side) + bytes(data[24:29])  # same depth, colour, method bytes
    data[12:29] = body
    data[29:33] = struct.pack(">I", zlib.crc32(body))
    path.write_bytes(bytes(data))


def test_decompression_bomb_is_one_line(tmp_path):
    write_image_folder(tmp_path, {"train": 2})
    _bomb_png(tmp_path / "train" / "cat" / "bomb.png")
    with pytest.raises(FactoryError, match="decompression bomb") as info:
        load_dataset(data_cfg(dataset="imagefolder", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))
    assert "bomb.png" in str(info.value) and "\n" not in str(info.value)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    grey = np.full((8, 8), 128 * 257, dtype=np.uint16)  # mid grey in 16 bits
    Image.fromarray(grey).save(tmp_path / "deep.png")
    out = decode_module.decode_images([str(tmp_path / "deep.png")], 8)
    assert out.min() == 128 and out.max() == 128  # a plain convert("RGB") clips it to 255 (white)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (10, 10), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 5, 10))  # red left half, blue right half, as stored
    exif = Image.Exif()
    exif[decode_module.ORIENTATION] = 3  # "rotate 180 to display": the displayed image has red on the right
    image.save(tmp_path / "rotated.png", exif=exif)
    out = decode_module.decode_images([str(tmp_path / "rotated.png")], 10)[0]
    assert out[2, :, 0].min() > 200 and out[0, :, -1].min() > 200  # blue on the left, red on the right


def test_transparent_pixels_are_composited_on_the_stated_background(tmp_path):
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "clear.png")  # fully transparent "red"
    half = Image.new("RGBA", (8, 8), (0, 0, 0, 128))
    half.save(tmp_path / "half.png")
    out = decode_module.decode_images([str(tmp_path / "clear.png"), str(tmp_path / "half.png")], 8)
    assert (out[0] == np.array(decode_module.BACKGROUND, dtype=np.uint8)[:, None, None]).all()
    assert abs(int(out[1].mean()) - 127) <= 1  # black at 50% over white


def test_decoder_version_is_part_of_the_cache_key(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "d", {"train": 4, "test": 2})
    cfg = data_cfg(dataset="imagefolder", data_dir=str(tmp_path / "d"), val_size=3, cache_dir=str(tmp_path / "c"))
    load_dataset(cfg)
    clear_memory_cache()
    monkeypatch.setattr(decode_module, "DECODER_VERSION", decode_module.DECODER_VERSION + 1)
    calls = []
    real = decode_module.decode_images
    monkeypatch.setattr(decode_module, "decode_images", lambda *a, **k: calls.append(1) or real(*a, **k))
    load_dataset(cfg)
    assert calls == [1]  # an entry decoded by the earlier rule is not reused
    assert len(list((tmp_path / "c" / "datasets").glob("*.pt"))) == 2


def test_file_names_that_are_not_utf8_are_skipped_with_a_warning(tmp_path):
    write_image_folder(tmp_path, {"train": 2, "test": 1})
    folder = os.fsencode(tmp_path / "train" / "cat")
    Image.new("RGB", (4, 4)).save(os.path.join(folder, b"caf\xe9.png").decode("utf-8", "surrogateescape"))
    with pytest.warns(UserWarning, match=r"not valid UTF-8 \(rename them\)\): train/cat/caf\\xe9\.png"):
        splits = load_dataset(data_cfg(dataset="imagefolder", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))
    assert splits.sizes()["train"] + splits.sizes()["val"] == 6


def test_class_folder_name_that_is_not_utf8_is_one_line(tmp_path):
    write_image_folder(tmp_path, {"train": 2})
    bad = os.path.join(os.fsencode(tmp_path / "train"), b"\xff\xfe").decode("utf-8", "surrogateescape")
    _save(Path(bad) / "0.png", (1, 2, 3))
    with pytest.raises(FactoryError, match="not valid UTF-8; rename it") as info:
        load_dataset(data_cfg(dataset="imagefolder", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))
    assert "\n" not in str(info.value)


def test_unreadable_folder_is_one_line(tmp_path, monkeypatch):
    write_image_folder(tmp_path, {"train": 2})
    (tmp_path / "train" / "dog" / "more").mkdir()
    real = os.scandir

    def scandir(path="."):  # chmod 000 does not stop root, so the refusal is simulated
        if str(path).endswith("more"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(FactoryError, match=r"cannot read folder .*more \(Permission denied\)") as info:
        load_dataset(data_cfg(dataset="imagefolder", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))
    assert "\n" not in str(info.value)


def test_symlink_loops_are_not_followed(tmp_path):
    write_image_folder(tmp_path, {"train": 4})
    (tmp_path / "train" / "cat" / "loop").symlink_to(tmp_path / "train" / "cat", target_is_directory=True)
    (tmp_path / "train" / "dog" / "up").symlink_to(tmp_path, target_is_directory=True)
    with pytest.warns(UserWarning, match="loops, not followed"):
        splits = load_dataset(data_cfg(dataset="imagefolder", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))
    assert sum(splits.sizes().values()) == 12


def test_a_link_into_another_class_is_refused(tmp_path):
    write_image_folder(tmp_path, {"train": 4})
    (tmp_path / "train" / "cat" / "dogs").symlink_to(tmp_path / "train" / "dog", target_is_directory=True)
    with pytest.raises(FactoryError, match="one image has one label") as info:
        load_dataset(data_cfg(dataset="imagefolder", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))
    assert "classes dog and cat" in str(info.value) and "\n" not in str(info.value)


def test_a_link_to_an_image_of_the_same_class_counts_once(tmp_path):
    write_image_folder(tmp_path, {"train": 4})
    (tmp_path / "train" / "cat" / "again.png").symlink_to(tmp_path / "train" / "cat" / "00.png")
    with pytest.warns(UserWarning, match="links to an image of the same class"):
        splits = load_dataset(data_cfg(dataset="imagefolder", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))
    assert sum(splits.sizes().values()) == 12
