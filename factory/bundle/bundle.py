"""The host side of the hand-off: RUN/handoff/<id>/ (and <id>.zip) for one pick, everything a device team needs.

A bundle holds the deployed graphs (FP32, and INT8 where it passed the guard), labels.txt, preprocess.json
(the exact input rule, with a numpy reference in the model card), MODEL_CARD.md (what it classifies, on what
data, how well overall and per class, its confusion matrix, its size, memory and latency, its limits, how to
reproduce it), samples.npz (real test images, preprocessed, with each graph's expected outputs),
bundle.json (what `factory verify` checks) and SHA256SUMS. It is written to a temporary folder of its own
process, synced to disk and moved in place whole, so an interrupted bundle never leaves half a folder and a
bundle the build marks done is on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from factory.bundle.verify import BUNDLE_FORMAT
from factory.errors import FactoryError
from factory.io import file_sha256, sync_file, sync_folder

SAMPLES = 48


def _pick(summary: dict[str, Any], pick_id: str) -> dict[str, Any]:
    for pick in summary["picks"]:
        if pick["id"] == pick_id:
            return pick
    raise FactoryError(
        f"no pick {pick_id!r} in the summary; choose one of {', '.join(p['id'] for p in summary['picks'])}"
    )


def _graphs(run: Path, pick: dict[str, Any]) -> list[dict[str, Any]]:
    """The deployed graph in FP32 and, where it passed the INT8 guard, in INT8 (paths relative to RUN)."""
    graphs = [{"source": pick["deployed_onnx"], "precision": "fp32"}]
    fp32_name = Path(pick["deployed_onnx"]).name
    int8 = [p for p in pick["int8"]["onnx"] if Path(p).name == fp32_name.replace(".onnx", ".int8.onnx")]
    if int8:
        graphs.append({"source": int8[0], "precision": "int8"})
    for graph in graphs:
        graph["file"] = Path(graph["source"]).name
        graph["outputs"] = f"outputs_{graph['precision']}"
    return graphs


def _predict(path: Path, images: np.ndarray, batch: int = 256) -> np.ndarray:
    from factory.runtime import make_session

    session = make_session(path)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: images[i : i + batch]})[0] for i in range(0, len(images), batch)])


def _sample_indices(labels: np.ndarray, count: int) -> np.ndarray:
    """`count` test images taken round-robin over the classes (the first of each class, then the second, ...)."""
    per_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    order = [idx[i] for i in range(max(len(p) for p in per_class)) for idx in per_class if i < len(idx)]
    return np.array(order[:count])


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """classes x classes counts: row = true class, column = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


CONFUSION_INCHES = 16.0  # the picture's largest side (1,600 pixels at its 100 dpi), whatever the class count
NAMED_TICKS = 60  # up to this many classes each row and column is named; beyond, every k-th is numbered


def confusion_inches(classes: int) -> float:
    """The side of the confusion picture: grows with the classes up to CONFUSION_INCHES (1,000 classes at the
    uncapped 0.45 inch per class would need about 8 GB of pixels and fail past about 1,450 classes)."""
    return min(CONFUSION_INCHES, max(4.0, 0.45 * classes + 2))


def _plot_confusion(matrix: np.ndarray, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = confusion_inches(len(names))
    fig, ax = plt.subplots(figsize=(size, size))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    if len(names) <= NAMED_TICKS:
        ax.set_xticks(range(len(names)), names, rotation=90)
        ax.set_yticks(range(len(names)), names)
    else:  # too many to name legibly: class numbers (lines of labels.txt), about 40 per axis
        step = -(-len(names) // 40)
        ax.set_xticks(range(0, len(names), step))
        ax.set_yticks(range(0, len(names), step))
        ax.tick_params(axis="x", labelrotation=90)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(names) <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(
                j, i, str(count), ha="center", va="center", fontsize=7, color="white" if shares[i, j] > 0.5 else "black"
            )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def preprocess_spec(recipe: Any, resolution: int) -> dict[str, Any]:
    """The exact input rule of the graphs (what `factory.data.model_inputs` does to decoded images)."""
    size = recipe.data.image_size
    return {
        "input": "image",
        "layout": "NCHW",
        "dtype": "float32",
        "channel_order": "RGB",
        "batch": "any (the samples and latency are batch 1)",
        "decode": {
            "size": size,
            "rule": "apply the EXIF orientation, convert to RGB (16-bit grey scaled by 1/257, transparent pixels "
            "composited on white), take the centred square (the shorter side), resize to size x size bilinearly "
            "(PIL BILINEAR); uint8",
        },
        "scale": 1 / 255,
        "mean": list(recipe.data.mean),
        "std": list(recipe.data.std),
        "resolution": resolution,
        "resize": {
            "when": "after scaling and normalising, only if resolution != decode size",
            "interpolation": "bilinear",
            "antialias": resolution < size,
            "align_corners": False,
            "rounding": "none (float32 throughout)",
        },
    }


def _reference() -> str:
    """The numpy reference of the preprocessing, as a code block for the model card."""
    source = (Path(__file__).parent / "reference.py").read_text()
    code = source[source.index("import numpy") :]
    return f"```python\n{code}```"


@dataclass
class CardFacts:
    """What the model card states, gathered by `make_bundle`: the pick and the run's summary, the classes, the
    delivered graphs' test figures (per class too) and where the model came from."""

    pick: dict[str, Any]
    summary: dict[str, Any]
    names: list[str]
    top1: float
    test_images: int
    per_class: list[tuple[float, int]]
    per_class_int8: list[tuple[float, int]] | None
    latency: str
    resolution: int
    data_dir: str | None
    splits: str
    argv: list[str]
    graphs: list[dict[str, Any]]


def _model_card(ctx: CardFacts) -> str:
    pick, summary, names = ctx.pick, ctx.summary, ctx.names
    int8 = pick["int8"]
    per_class = ctx.per_class
    lines = [
        f"# {pick['id']}: {summary['dataset']} image classifier ({len(names)} classes)",
        "",
        f"- **Test top-1**: {100 * ctx.top1:.2f}% (FP32, {ctx.test_images:,} test images)"
        + (f"; INT8 {100 * int8['top1']:.2f}% ({int8['drop']:.2f} points less)" if int8.get("method") else ""),
        f"- **Size**: {pick['params']:,} parameters, {pick['macs']:,} MACs at batch 1; flash "
        f"{pick['flash_bytes']:,} B and RAM {pick['ram_bytes']:,} B ({pick['delivered_precision'].upper()} graph)",
        f"- **Latency (build machine, onnxruntime CPU, batch 1)**: p50 {ctx.latency}"
        + (
            f"; predicted on the profiled device {pick['latency_predicted_ms']:.4g} ms"
            if pick.get("latency_predicted_ms")
            else ""
        ),
        f"- **Input**: `image`, 1 x 3 x {ctx.resolution} x {ctx.resolution} float32, RGB, normalised (preprocess.json)",
        "",
        "## What it classifies",
        "",
        ", ".join(f"{i}: {n}" for i, n in enumerate(names)) + " (labels.txt, one per line, in output order).",
        "",
        "## Data",
        "",
        f"Dataset `{summary['dataset']}` ({ctx.data_dir or 'embedded'}), split {ctx.splits} (train / "
        "validation / test images). Trained on the train split, searched on the validation split, measured on the "
        "test split.",
        "",
        "## Accuracy per class (FP32 graph, test split)",
        "",
        "| class | images | top-1 |" + (" INT8 top-1 |" if ctx.per_class_int8 else ""),
        "| --- | --- | --- |" + (" --- |" if ctx.per_class_int8 else ""),
    ]
    for i, name in enumerate(names):
        row = f"| {name} | {per_class[i][1]} | {100 * per_class[i][0]:.2f}% |"
        if ctx.per_class_int8:
            row += f" {100 * ctx.per_class_int8[i][0]:.2f}% |"
        lines.append(row)
    lines += [
        "",
        "![confusion matrix](confusion.png)",
        "",
        "## Preprocessing",
        "",
        "Decode as preprocess.json says (RGB, centred square, bilinear to the decode size), then, in numpy (resize "
        "exactly so: a plain bilinear resize without antialiasing costs accuracy when shrinking):",
        "",
        _reference(),
        "",
        "## Limitations",
        "",
        f"- Measured only on the test split of `{summary['dataset']}`; images unlike it (other cameras, "
        "lighting, framing, classes outside labels.txt) are not covered: it always answers one of its classes.",
        "- A small network under a device budget: check the per-class table for the classes it confuses.",
        f"- INT8: {int8['status']}.",
        "- Verify on your device before use: `factory verify` reruns samples.npz and times each graph.",
        "",
        "## Reproduce",
        "",
        f"- Command: `{' '.join(ctx.argv)}`" if ctx.argv else "- Command: unknown (run.json has no argv)",
        f"- Recipe `{summary['recipe']}`, seed {summary.get('seed')}, versions: "
        + ", ".join(f"{k} {v}" for k, v in sorted(summary.get("versions", {}).items())),
        "",
        "| file | SHA-256 |",
        "| --- | --- |",
        *(f"| {g['file']} | {g['sha256']} |" for g in ctx.graphs),
        "",
    ]
    return "\n".join(lines)


def make_bundle(run: str | Path, pick_id: str) -> Path:
    """Write RUN/handoff/<pick_id>/ and RUN/handoff/<pick_id>.zip; returns the folder."""
    from factory.data import load_dataset
    from factory.data.augment import device_images
    from factory.io import write_json_atomic
    from factory.runinfo import run_recipe

    run = Path(run)
    summary_path = run / "summary.json"
    if not summary_path.is_file():
        raise FactoryError(f"{summary_path} not found; finish the build (or run `factory report --run {run}`) first")
    summary = json.loads(summary_path.read_text())
    pick = _pick(summary, pick_id)
    recipe = run_recipe(run)
    splits = load_dataset(recipe.data)
    resolution = int(json.loads((run / "picks" / pick_id / "export.json").read_text())["resolution"])
    graphs = _graphs(run, pick)
    test = device_images(splits.test.images, recipe.data.mean, recipe.data.std, resolution)
    labels = splits.test.labels.numpy()
    names = list(splits.class_names) or [str(i) for i in range(splits.num_classes)]
    out = run / "handoff" / pick_id
    tmp = out.with_name(f".{pick_id}.{os.getpid()}.tmp")  # per process: a second `factory bundle` has its own
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    chosen = _sample_indices(labels, SAMPLES)
    arrays: dict[str, np.ndarray] = {
        "images": np.ascontiguousarray(test[chosen]),
        "labels": labels[chosen],
        "ids": np.array([f"test-{i}" for i in chosen]),
    }
    top1, per_class = _check_graphs(run, tmp, graphs, test, labels, names, arrays)
    np.savez_compressed(tmp / "samples.npz", **arrays)
    (tmp / "labels.txt").write_text("\n".join(names) + "\n")
    spec = preprocess_spec(recipe, resolution)
    write_json_atomic(tmp / "preprocess.json", spec)
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
    latency = f"{pick['ort_cpu_p50_ms']:.4g} ms" if pick.get("ort_cpu_p50_ms") else "not measured"
    facts = CardFacts(
        pick=pick,
        summary=summary,
        names=names,
        top1=top1["fp32"],
        test_images=len(labels),
        per_class=per_class["fp32"],
        per_class_int8=per_class.get("int8"),
        latency=latency,
        resolution=resolution,
        data_dir=recipe.data.data_dir,
        splits=" / ".join(f"{n:,}" for n in (len(splits.train), len(splits.val), len(splits.test))),
        argv=info.get("argv", []),
        graphs=graphs,
    )
    (tmp / "MODEL_CARD.md").write_text(_model_card(facts))
    manifest = {
        "format": BUNDLE_FORMAT,
        "id": f"{summary.get('dataset')}-{pick_id}",
        "run": str(run),
        "pick": pick_id,
        "classes": len(names),
        "resolution": resolution,
        "graphs": [{k: g[k] for k in ("file", "precision", "outputs", "sha256")} for g in graphs],
        "test_top1": top1,
        "samples": len(chosen),
    }
    write_json_atomic(tmp / "bundle.json", manifest)
    return publish(tmp, out, pick_id)


def _check_graphs(
    run: Path,
    tmp: Path,
    graphs: list[dict[str, Any]],
    test: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    arrays: dict[str, np.ndarray],
) -> tuple[dict[str, float], dict[str, list[tuple[float, int]]]]:
    """Copy each delivered graph into the bundle, hash it, and measure it on the test split as the device will
    run it: top-1 and per-class figures per precision, the FP32 confusion picture, and each graph's outputs on
    the samples (added to `arrays`, what `factory verify` compares against)."""
    from factory.bundle.verify import run_graph

    per_class: dict[str, list[tuple[float, int]]] = {}
    top1 = {}
    for graph in graphs:
        shutil.copyfile(run / graph["source"], tmp / graph["file"])
        graph["sha256"] = file_sha256(tmp / graph["file"])
        predicted = _predict(tmp / graph["file"], test).argmax(1)
        top1[graph["precision"]] = float((predicted == labels).mean())
        matrix = confusion(labels, predicted, len(names))
        per_class[graph["precision"]] = [
            (float(matrix[c, c] / max(matrix[c].sum(), 1)), int(matrix[c].sum())) for c in range(len(names))
        ]
        if graph["precision"] == "fp32":
            _plot_confusion(matrix, names, tmp / "confusion.png")
        arrays[graph["outputs"]] = run_graph(tmp / graph["file"], arrays["images"], threads=1)
    return top1, per_class


def publish(tmp: Path, out: Path, pick_id: str) -> Path:
    """Seal a finished bundle folder: SHA256SUMS over its files, everything synced to disk, then moved into place
    as `out` and zipped beside it (both atomically), so a bundle is either whole or absent."""
    files = sorted(p.name for p in tmp.iterdir() if p.is_file())
    (tmp / "SHA256SUMS").write_text("".join(f"{file_sha256(tmp / f)}  {f}\n" for f in files))
    for path in tmp.iterdir():  # on disk before the build marks the bundle done, not only in the page cache
        sync_file(path)
    sync_folder(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)
    archive = out.with_suffix(".zip")
    partial = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(out.iterdir()):
            handle.write(path, f"{pick_id}/{path.name}")
    sync_file(partial)
    partial.replace(archive)
    sync_folder(out.parent)
    return out


def bundle_run(run: str | Path, pick: str | None = None) -> list[Path]:
    """Bundles of one pick, or of every pick of the run."""
    from factory.runfolder import run_picks

    ids = [pick] if pick else [entry["id"] for entry in run_picks(Path(run))]
    return [make_bundle(run, ident) for ident in ids]
