import json
import math

import pytest
import torch

from factory.errors import FactoryError
from factory.space import KINDS
from factory.train.trainer import SupernetTrainer, train_supernet
from tests.train_helpers import tiny_recipe, tiny_splits


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


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, monkeypatch):
    recipe = tiny_recipe("ee-dense", warmup_epochs=2, epochs=2)
    recipe.space.widths = (1.0,)
    splits = tiny_splits()
    full = SupernetTrainer(recipe, tmp_path / "full", device="cpu", splits=splits, progress=False)
    full.run()

    calls = {"n": 0}
    original = SupernetTrainer._epoch

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the first elastic epoch: warm-up is checkpointed, elastic is not
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SupernetTrainer, "_epoch", interrupted)
    first = SupernetTrainer(recipe, tmp_path / "part", device="cpu", splits=splits, progress=False)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    monkeypatch.setattr(SupernetTrainer, "_epoch", original)

    again = SupernetTrainer(recipe, tmp_path / "part", device="cpu", splits=splits, progress=False)
    assert again.resume()
    assert (again.start_phase, again.start_epoch) == (1, 0)
    again.run()
    a, b = _weights(full), _weights(again)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["loss"] for r in full.history] == [r["loss"] for r in again.history]


def test_resume_mid_phase_restores_optimizer(tmp_path, monkeypatch):
    recipe = tiny_recipe("se-base", warmup_epochs=3, epochs=0)
    recipe.space.widths = (1.0,)
    splits = tiny_splits()
    full = SupernetTrainer(recipe, tmp_path / "full", device="cpu", splits=splits, progress=False)
    full.run()
    original = SupernetTrainer._epoch
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SupernetTrainer, "_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        SupernetTrainer(recipe, tmp_path / "part", device="cpu", splits=splits, progress=False).run()
    monkeypatch.setattr(SupernetTrainer, "_epoch", original)
    again = SupernetTrainer(recipe, tmp_path / "part", device="cpu", splits=splits, progress=False)
    assert again.resume() and (again.start_phase, again.start_epoch) == (0, 1)
    again.run()
    a, b = _weights(full), _weights(again)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_checkpoint_needs_resume(tmp_path, monkeypatch):
    import factory.train.trainer as trainer_module

    recipe = tiny_recipe("se-base", warmup_epochs=1, epochs=0)
    recipe.space.widths = (1.0,)
    monkeypatch.setattr(trainer_module, "load_dataset", lambda cfg: tiny_splits())
    (tmp_path / "supernet").mkdir()
    (tmp_path / "supernet" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FactoryError, match="--resume"):
        train_supernet(recipe, tmp_path, device="cpu", progress=False)
    with pytest.raises(FactoryError, match="corrupt"):
        train_supernet(recipe, tmp_path, device="cpu", resume=True, progress=False)


def test_resume_with_other_recipe_is_refused(tmp_path):
    recipe = tiny_recipe("se-base", warmup_epochs=1, epochs=0)
    recipe.space.widths = (1.0,)
    splits = tiny_splits(n_train=32, n_eval=32)
    SupernetTrainer(recipe, tmp_path, device="cpu", splits=splits, progress=False).run()
    recipe.train.lr = 0.5
    other = SupernetTrainer(recipe, tmp_path, device="cpu", splits=splits, progress=False)
    with pytest.raises(FactoryError, match=r"train\.lr"):
        other.resume()


def test_adaptation_trains_only_sampled_configs(tmp_path):
    import numpy as np

    from factory.elastic import build_supernets
    from factory.space import largest_config
    from factory.train.trainer import adapt_supernets

    recipe = tiny_recipe("se-base")
    recipe.space.widths = (1.0,)
    splits = tiny_splits(n_train=64)
    spec = recipe.space.to_spec(splits.num_classes)
    nets = build_supernets(spec)
    before = {k: v.clone() for k, v in nets[1.0].state_dict().items()}
    seen = []

    def sampler(k: int, rng: np.random.Generator):
        configs = [largest_config(spec, 1.0, 16)] * k
        seen.extend(configs)
        return configs

    history = adapt_supernets(recipe, nets, splits, sampler, epochs=1, seed=1, device="cpu", progress=False)
    assert [h["phase"] for h in history] == ["adapt-w1"]
    assert seen and all(c.resolution == 16 for c in seen)
    after = nets[1.0].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not nets[1.0].training


@pytest.mark.parametrize(("sandwich", "share"), [(False, 0.0), (True, 0.0), (True, 0.7)])
def test_sandwich_adds_the_maximal_network_to_every_elastic_batch(sandwich, share, tmp_path):
    import numpy as np

    from factory.space import largest_config
    from factory.train.trainer import Phase

    recipe = tiny_recipe("ee-dense", sandwich=sandwich, sandwich_share=share)
    trainer = SupernetTrainer(recipe, tmp_path, device="cpu", splits=tiny_splits(), progress=False)
    targets = trainer._phase_targets(Phase("elastic", 1.0, 1, 0.01), np.random.default_rng(0), 2)
    configs, exits, alphas, shares = targets
    sampled = slice(1, None) if sandwich else slice(None)
    assert len(configs) == len(exits) == len(alphas) == len(shares) == 2 + sandwich
    assert exits[sampled] == [None, None]
    assert sum(shares) == pytest.approx(1.0)
    if sandwich:
        assert configs[0] == largest_config(trainer.spec, width=1.0)
        assert exits[0] == trainer.spec.exits()
        assert alphas[0] == trainer._phase_targets(Phase("warmup", 1.0, 1, 0.01), None, 1)[2][0]
        assert shares[0] == pytest.approx(share or 1 / 3)
        assert shares[1] == shares[2] == pytest.approx((1 - shares[0]) / 2)
    else:
        assert shares == [0.5, 0.5]
