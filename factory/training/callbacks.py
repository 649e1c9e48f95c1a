"""What runs after each training epoch: the progress line, the epoch file and the resume checkpoint, and any
caller's own hook (a log, a test's interruption).

`SupernetTrainer` calls its callbacks in order once an epoch is trained and recorded. The built-in ones come
first, so by the time a caller's callback runs the epoch is on disk; raising from it (KeyboardInterrupt, say)
stops the run, and `resume()` continues with the next epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from factory.io import write_json_atomic
from factory.training.checkpoint import save_checkpoint
from factory.training.distributed import DistInfo, barrier
from factory.training.phases import EpochResult


class SupernetTrainer(Protocol):
    """What the built-in callbacks read of `factory.training.trainer.SupernetTrainer` (named here, not imported:
    the trainer imports its callbacks)."""

    info: DistInfo

    def state_dict(self) -> dict[str, Any]: ...


class EpochCallback(Protocol):
    """Anything with `on_epoch_end`; raise from it to stop the run."""

    def on_epoch_end(self, trainer: SupernetTrainer, result: EpochResult) -> None: ...


class EpochSummary:
    """One line per epoch (loss, train top-1, throughput) above the progress bars."""

    def on_epoch_end(self, trainer: SupernetTrainer, result: EpochResult) -> None:
        r = result.record
        tqdm.write(
            f"{r['phase']} epoch {r['epoch']}/{r['epochs']}: loss {r['loss']:.3f} "
            f"train top-1 {r['train_top1']:.3f} {r['images_per_s']:.0f} img/s"
        )


class EpochFiles:
    """Rank 0 writes the epoch's record to `folder/epochs/` and the resume state to `checkpoint`; every rank
    then waits, so no process runs ahead of a checkpoint that may be the one a restart reads."""

    def __init__(self, folder: str | Path, checkpoint: str | Path) -> None:
        self.folder = Path(folder)
        self.checkpoint = Path(checkpoint)

    def on_epoch_end(self, trainer: SupernetTrainer, result: EpochResult) -> None:
        if trainer.info.is_main:
            name = f"{result.phase_index:02d}-{result.phase.name}-e{result.epoch:03d}.json"
            write_json_atomic(self.folder / "epochs" / name, result.record)
            save_checkpoint(self.checkpoint, trainer.state_dict())
        barrier(trainer.info)
