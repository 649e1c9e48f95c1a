import dataclasses
import json
import math

import pytest
import torch

from factory.errors import FactoryError
from factory.space import KINDS
from factory.testing import tiny_recipe
from factory.train.run import train_supernet
from factory.training.trainer import SupernetTrainer
from tests.train_helpers import InterruptAfter, tiny_splits

ONE_WIDTH = {"widths": [1.0]}


def _weights(trainer: SupernetTrainer) -> dict[str, torch.Tensor]:
    return {f"{w}.{k}": v.clone() for w, net in trainer.supernets.items() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_trains_a_step_without_nans(kind, tmp_path):
    recipe = tiny_recipe(kind, warmup_epochs=1, epochs=1)
    splits = tiny_splits(n_train=32, n_eval=32)
    trainer = SupernetTrainer(recipe, tmp_path, device="cpu", splits=splits, progress=False)
    metrics = trainer.run()
    assert all(math.isfinite(r["loss"]) for r in trainer.history)
    assert [r["phase"] for r in trainer.history] == ["warmup-w1", "warmup-w1.2", "elastic-w1", "elastic-w1.2"]
    for value in _weights(trainer).values():
        assert torch.isfinite(value.float()).all()
    assert 0.0 <= metrics["largest_test_top1"] <= 1.0 and 0.0 <= metrics["smallest_test_top1"] <= 1.0
    saved = json.loads((tmp_path / "supernet" / "metrics.json").read_text())
    assert {"largest_test_top1", "smallest_test_top1", "train_seconds"} <= set(saved)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    recipe = tiny_recipe("ee-dense", warmup_epochs=2, epochs=2, space=ONE_WIDTH)
    splits = tiny_splits()
    full = SupernetTrainer(recipe, tmp_path / "full", device="cpu", splits=splits, progress=False)
    full.run()

    # Stopped after the warm-up: it is checkpointed, no elastic epoch has run.
    first = SupernetTrainer(
        recipe, tmp_path / "part", device="cpu", splits=splits, progress=False, callbacks=[InterruptAfter(2)]
    )
    with pytest.raises(KeyboardInterrupt):
        first.run()
    assert sorted(p.name for p in (tmp_path / "part" / "supernet" / "epochs").iterdir()) == [
        "00-warmup-w1-e001.json",
        "00-warmup-w1-e002.json",
    ]

    again = SupernetTrainer(recipe, tmp_path / "part", device="cpu", splits=splits, progress=False)
    assert again.resume()
    assert (again.phase_index, again.epoch) == (1, 0)
    again.run()
    a, b = _weights(full), _weights(again)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["loss"] for r in full.history] == [r["loss"] for r in again.history]


def test_resume_mid_phase_restores_optimizer(tmp_path):
    recipe = tiny_recipe("se-base", warmup_epochs=3, epochs=0, space=ONE_WIDTH)
    splits = tiny_splits()
    full = SupernetTrainer(recipe, tmp_path / "full", device="cpu", splits=splits, progress=False)
    full.run()
    part = SupernetTrainer(
        recipe, tmp_path / "part", device="cpu", splits=splits, progress=False, callbacks=[InterruptAfter(1)]
    )
    with pytest.raises(KeyboardInterrupt):
        part.run()
    again = SupernetTrainer(recipe, tmp_path / "part", device="cpu", splits=splits, progress=False)
    assert again.resume() and (again.phase_index, again.epoch) == (0, 1)
    again.run()
    a, b = _weights(full), _weights(again)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_checkpoint_needs_resume(tmp_path, monkeypatch):
    import factory.training.trainer as trainer_module

    recipe = tiny_recipe("se-base", warmup_epochs=1, epochs=0, space=ONE_WIDTH)
    monkeypatch.setattr(trainer_module, "load_dataset", lambda cfg: tiny_splits())
    (tmp_path / "supernet").mkdir()
    (tmp_path / "supernet" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FactoryError, match="--resume"):
        train_supernet(recipe, tmp_path, device="cpu", progress=False)
    with pytest.raises(FactoryError, match="corrupt"):
        train_supernet(recipe, tmp_path, device="cpu", resume=True, progress=False)


def test_resume_with_other_recipe_is_refused(tmp_path):
    recipe = tiny_recipe("se-base", warmup_epochs=1, epochs=0, space=ONE_WIDTH)
    splits = tiny_splits(n_train=32, n_eval=32)
    SupernetTrainer(recipe, tmp_path, device="cpu", splits=splits, progress=False).run()
    recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, lr=0.5))
    other = SupernetTrainer(recipe, tmp_path, device="cpu", splits=splits, progress=False)
    with pytest.raises(FactoryError, match=r"train\.lr"):
        other.resume()


def test_stepping_matches_run_and_reports_each_epoch(tmp_path):
    recipe = tiny_recipe("se-base", warmup_epochs=1, epochs=1, space=ONE_WIDTH)
    splits = tiny_splits(n_train=32, n_eval=32)
    seen = []

    class Record:
        def on_epoch_end(self, trainer, result):
            seen.append((result.phase_index, result.phase.name, result.epoch, trainer.phase_index, trainer.epoch))

    stepped = SupernetTrainer(recipe, None, device="cpu", splits=splits, progress=False, callbacks=[Record()])
    results = []
    while stepped.has_next():
        results.append(stepped.next())
    assert [r.record for r in results] == stepped.history
    assert seen == [(0, "warmup-w1", 1, 1, 0), (1, "elastic-w1", 1, 2, 0)]
    assert stepped.finish() == {"history": stepped.history}
    with pytest.raises(RuntimeError):
        stepped.next()
    ran = SupernetTrainer(recipe, tmp_path, device="cpu", splits=splits, progress=False)
    ran.run()
    a, b = _weights(stepped), _weights(ran)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in stepped.history] == [r["loss"] for r in ran.history]


def test_adaptation_trains_only_sampled_configs(tmp_path, monkeypatch):
    import numpy as np

    from factory.elastic import build_supernets
    from factory.space import largest_config
    from factory.training.trainer import adapt_supernets

    recipe = tiny_recipe("se-base", space=ONE_WIDTH)
    splits = tiny_splits(n_train=64)
    spec = recipe.space.to_spec(splits.num_classes)
    nets = build_supernets(spec)
    before = {k: v.clone() for k, v in nets[1.0].state_dict().items()}
    seen = []

    def sampler(k: int, rng: np.random.Generator):
        configs = [largest_config(spec, 1.0, 16)] * k
        seen.extend(configs)
        return configs

    monkeypatch.chdir(tmp_path)
    history = adapt_supernets(recipe, nets, splits, sampler, epochs={1.0: 1}, seed=1, device="cpu", progress=False)
    assert not list(tmp_path.iterdir())  # adaptation writes nothing
    assert [h["phase"] for h in history] == ["adapt-w1"]
    assert seen and all(c.resolution == 16 for c in seen)
    after = nets[1.0].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not nets[1.0].training


@pytest.mark.parametrize(("sandwich", "share"), [(False, 0.0), (True, 0.0), (True, 0.7)])
def test_sandwich_adds_the_maximal_network_to_every_elastic_batch(sandwich, share, tmp_path):
    import numpy as np

    from factory.space import largest_config
    from factory.training.trainer import Phase

    recipe = tiny_recipe("ee-dense", sandwich=sandwich, sandwich_share=share, subnet_loss="mean")
    trainer = SupernetTrainer(recipe, tmp_path, device="cpu", splits=tiny_splits(), progress=False)
    targets = trainer.step_targets(Phase("elastic", 1.0, 1, 0.01), np.random.default_rng(0), 2)
    shares = [t.share for t in targets]
    sampled = slice(1, None) if sandwich else slice(None)
    assert len(targets) == 2 + sandwich
    assert [t.exits for t in targets[sampled]] == [None, None]
    assert sum(shares) == pytest.approx(1.0)
    if sandwich:
        (warmup,) = trainer.step_targets(Phase("warmup", 1.0, 1, 0.01), None, 1)
        assert targets[0].config == largest_config(trainer.spec, width=1.0) == warmup.config
        assert targets[0].exits == trainer.spec.exits() == warmup.exits
        assert targets[0].alpha == warmup.alpha
        assert shares[0] == pytest.approx(share or 1 / 3)
        assert shares[1] == shares[2] == pytest.approx((1 - shares[0]) / 2)
    else:
        assert shares == [0.5, 0.5]


@pytest.mark.parametrize("sandwich", [False, True])
def test_summed_subnet_losses_weigh_each_network_as_its_own_backward(sandwich, tmp_path):
    """OFA and NAT accumulate one backward per sub-network: "sum" is "mean" scaled by the step's network count."""
    import numpy as np

    from factory.training.trainer import Phase

    shares = {}
    for reduction in ("mean", "sum"):
        recipe = tiny_recipe("ee-dense", sandwich=sandwich, sandwich_share=0.7, subnet_loss=reduction)
        trainer = SupernetTrainer(recipe, tmp_path / reduction, device="cpu", splits=tiny_splits(), progress=False)
        targets = trainer.step_targets(Phase("elastic", 1.0, 1, 0.01), np.random.default_rng(0), 2)
        shares[reduction] = [t.share for t in targets]
    n = len(shares["sum"])
    assert sum(shares["sum"]) == pytest.approx(n)
    assert shares["sum"] == pytest.approx([n * x for x in shares["mean"]])


@pytest.mark.usefixtures("one_thread")
def test_a_diverging_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path):
    """train.lr 1e6: the elastic epoch's loss turns NaN; training stops there, the warm-up's checkpoint stays."""
    from factory.training.checkpoint import load_checkpoint
    from factory.training.trainer import TrainingDiverged

    recipe = tiny_recipe("ee-dense", warmup_epochs=1, epochs=1, lr=1e6, space=ONE_WIDTH)
    trainer = SupernetTrainer(recipe, tmp_path, device="cpu", splits=tiny_splits(n_train=320), progress=False)
    with pytest.raises(TrainingDiverged) as info:
        trainer.run()
    message = str(info.value)
    assert isinstance(info.value, FactoryError) and "\n" not in message
    assert "the loss" in message and "elastic-w1 epoch 1/1, step " in message and "lower train.lr" in message
    state = load_checkpoint(tmp_path / "supernet" / "checkpoint.pt")
    assert (state["phase_index"], state["epoch"]) == (1, 0)  # the warm-up's, not the diverged epoch's
    assert all(torch.isfinite(v.float()).all() for sd in state["supernets"].values() for v in sd.values())
    assert (
        not (tmp_path / "supernet" / "supernet.pt").exists() and not (tmp_path / "supernet" / "metrics.json").exists()
    )


@pytest.mark.usefixtures("one_thread")
def test_weights_that_diverge_on_an_epoch_s_last_step_never_reach_its_checkpoint(tmp_path):
    """Three steps: every loss is finite, but the last update leaves NaN weights; the epoch's end catches them."""
    from factory.training.trainer import TrainingDiverged

    recipe = tiny_recipe("ee-dense", warmup_epochs=1, epochs=1, lr=1e6, space=ONE_WIDTH)
    trainer = SupernetTrainer(recipe, tmp_path, device="cpu", splits=tiny_splits(), progress=False)
    with pytest.raises(TrainingDiverged, match=r"elastic-w1 epoch 1/1, step 3/3; lower train\.lr"):
        trainer.run()
    assert sorted(p.name for p in (tmp_path / "supernet" / "epochs").iterdir()) == ["00-warmup-w1-e001.json"]


@pytest.mark.usefixtures("one_thread")
def test_diverging_training_is_one_line_and_exit_2(tmp_path, monkeypatch):
    import factory.training.trainer as trainer_module
    from factory.recipe import save_recipe
    from tests.test_build import assert_one_line_error, cli

    monkeypatch.setattr(trainer_module, "load_dataset", lambda cfg: tiny_splits(n_train=320))
    recipe = tiny_recipe("ee-dense", warmup_epochs=1, epochs=1, lr=1e6, space=ONE_WIDTH)
    save_recipe(recipe, tmp_path / "diverge.yaml")
    out = tmp_path / "run"
    code, error = cli("train", "--recipe", str(tmp_path / "diverge.yaml"), "--out", str(out), "--device", "cpu")
    error = error.rsplit("\r", 1)[-1].strip()  # after the progress bars, which end with a carriage return
    assert_one_line_error(code, error, "training diverged", "elastic-w1 epoch 1/1", "step ", "lower train.lr")
    assert (out / "supernet" / "checkpoint.pt").is_file() and not (out / "supernet" / "supernet.pt").exists()
