"""`factory export`: export every post-processed pick of a run to ONNX (and TensorRT on a GPU).

A pick whose export.json lists files that all exist is done and skipped, so an interrupted export resumes
with the next pick. Then each pick's graphs are quantized to INT8 (`factory.graphs.int8`, int8.json) unless
`export.int8.enabled` is false or `int8=False`; a pick whose int8.json matches its FP32 graphs and settings
is skipped. The parity figures are also written into the pick's metrics.json under "export".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.errors import FactoryError
from factory.io import file_sha256, write_json_atomic
from factory.recipe import Recipe
from factory.runfolder import export_done, pick_steps, run_picks

if TYPE_CHECKING:
    import torch


def parity_inputs(recipe: Recipe, splits: Any, resolution: int) -> torch.Tensor:
    """The first `export.parity_images` validation images (test images when there is no validation split),
    normalised and resized exactly as the deployed model expects."""
    from factory.data import model_inputs

    split = splits.val if len(splits.val) else splits.test
    if recipe.export.parity_images < 1 or not len(split):
        raise FactoryError(
            "the parity check needs images: set export.parity_images >= 1 and keep a validation or test split"
        )
    return model_inputs(split.images[: recipe.export.parity_images], recipe.data.mean, recipe.data.std, resolution)


def export_run(run_dir: str | Path, progress: bool = True, int8: bool = True) -> list[dict[str, Any]]:
    """Export every finished pick of the run (and its INT8 graphs unless `int8` is False or the recipe turns them
    off); returns the export records in pick order."""
    from factory.data import load_dataset
    from factory.export.pick import export_pick
    from factory.graphs.tensorrt import describe
    from factory.nn.pick_file import load_pick_model
    from factory.runinfo import run_recipe

    run = Path(run_dir)
    recipe = run_recipe(run)
    picks = run_picks(run)
    splits = None
    records = []
    for step in pick_steps(run, picks, is_done=export_done):
        number, entry, folder = step.number, step.entry, step.folder
        metrics_path = folder / "metrics.json"
        if not metrics_path.is_file():
            raise FactoryError(f"pick {entry['id']} is not post-processed yet; run `factory finetune --run {run}`")
        if step.done:
            record = json.loads((folder / "export.json").read_text())
            records.append(record)
            if int8 and recipe.export.int8.enabled:
                splits = splits or load_dataset(recipe.data)
                _int8(folder, record, recipe, splits, progress)
            continue
        if progress:
            print(f"exporting pick {number}/{len(picks)}: {entry['id']}", flush=True)
        splits = splits or load_dataset(recipe.data)
        network, config = load_pick_model(folder / "model.pt")
        record = export_pick(
            folder,
            network,
            parity_inputs(recipe, splits, config.resolution),
            recipe.export,
            recipe.data.mean,
            recipe.data.std,
            list(splits.class_names),
            timing_cache=run / "picks" / "tensorrt.cache",
        )
        record["id"] = entry["id"]
        record["model_sha256"] = file_sha256(folder / "model.pt")
        metrics = json.loads(metrics_path.read_text())
        metrics["export"] = {
            g["name"]: {"onnx": g["onnx"], "bytes": g["bytes"], "parity": g["parity"], "tensorrt": g["tensorrt"]}
            for g in record["graphs"]
        }
        write_json_atomic(metrics_path, metrics)
        write_json_atomic(folder / "export.json", record)
        if progress:
            for g in record["graphs"]:
                p = g["parity"]
                print(
                    f"  {g['onnx']}: {g['bytes'] / 1024:.0f} KiB, parity max abs diff {p['max_abs_diff']:.2e}, "
                    f"top-1 agreement {p['top1_agreement']:.4f} over {p['images']} images; "
                    f"TensorRT {describe(g['tensorrt'])}",
                    flush=True,
                )
        records.append(record)
        if int8 and recipe.export.int8.enabled:
            _int8(folder, record, recipe, splits, progress, network)
    return records


def _int8(
    folder: Path, record: dict[str, Any], recipe: Recipe, splits: Any, progress: bool, network: Any = None
) -> None:
    """Quantize one exported pick unless its int8.json is current; writes int8.json."""
    from factory.graphs.int8 import int8_done, quantize_pick
    from factory.nn.pick_file import load_pick_model

    if int8_done(folder, record, recipe.export.int8):
        return
    if progress:
        print(f"quantizing {folder.name} to INT8", flush=True)
    network = network if network is not None else load_pick_model(folder / "model.pt")[0]
    result = quantize_pick(folder, network, record, recipe, splits, progress)
    write_json_atomic(folder / "int8.json", result)
    if progress:
        for g in result["graphs"]:
            print(
                f"  {g['name']}: INT8 top-1 {g['top1']:.4f} vs FP32 {g['fp32_top1']:.4f} (drop {g['drop']:.2f} points, "
                f"agreement {g['agreement']:.4f}), weights {g['weight_bytes'] / g['fp32_weight_bytes']:.2f}x",
                flush=True,
            )
        print(f"  {result['status']}", flush=True)
