"""OFAv2 super-network: the extracted static network computes exactly what the super-network computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from factory.elastic import ElasticDepthwiseConv, ElasticMBConv, OFASupernet, build_supernet, build_supernets
from factory.elastic.registry import list_supernets
from factory.errors import FactoryError
from factory.space import KINDS, BlockConfig, SpaceSpec, SubnetConfig, largest_config, smallest_config
from factory.space.counting import count_params
from factory.space.sampling import sample_subnets

from .space_helpers import tiny_spec

CONFIGS_PER_KIND = 40


pytestmark = pytest.mark.usefixtures("one_thread")


@torch.no_grad()
def randomise(net: OFASupernet, seed: int) -> None:
    """Random BN affine and statistics, SE biases and non-identity kernel transforms, at sane magnitudes.

    BN statistics are first calibrated on random images with the maximal network (so activations stay O(1)
    through 20 blocks and summed branches), then perturbed per channel relative to their scale.
    """
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for name, p in net.named_parameters():
        if "transforms" in name:
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        elif name.endswith("bn.weight"):
            p.uniform_(0.8, 1.25, generator=g)
        elif name.endswith("bias"):
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    net.train().set_max()
    net(torch.randn(16, 3, 32, 32, generator=g))
    for bn in bns:
        bn.momentum = 0.1
        bn.running_mean.add_(0.1 * bn.running_var.sqrt() * torch.randn(bn.running_mean.shape, generator=g))
        bn.running_var.mul_(torch.empty(bn.running_var.shape).uniform_(0.8, 1.25, generator=g))
    net.eval()


def random_supernet(kind: str, seed: int) -> tuple[SpaceSpec, OFASupernet]:
    """A tiny super-network of `kind` (seeded init) with randomised BN, biases and kernel transforms."""
    spec = tiny_spec(kind)
    torch.manual_seed(0)
    net = OFASupernet(spec, 1.0)
    randomise(net, seed=seed)
    return spec, net


def as_list(y: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    return y if isinstance(y, list) else [y]


@pytest.mark.parametrize("kind", list(KINDS))
def test_extracted_equals_supernet(kind: str) -> None:
    spec, net = random_supernet(kind, seed=1)
    rng = np.random.default_rng(2)
    worst, scale = 0.0, 0.0
    with torch.inference_mode():
        for i in range(CONFIGS_PER_KIND):
            config = net.sample_active(rng)
            if spec.early_exit and i % 3 == 0:  # AEP: all exits up to the sampled one
                net.set_active(config, exits=tuple(range(1, config.exit + 1)))
            x = torch.randn(2, 3, config.resolution, config.resolution)
            ys, ss = as_list(net(x)), as_list(net.get_active_subnet().eval()(x))
            assert len(ys) == len(ss) == len(net.active_exits)
            for y, s in zip(ys, ss, strict=True):
                worst = max(worst, (y - s).abs().max().item())
                scale = max(scale, y.abs().max().item())
    assert worst <= 1e-5
    assert 1e-2 < scale < 1e3  # the comparison is meaningful: outputs are neither vanishing nor exploding


@pytest.mark.parametrize("kind", list(KINDS))
def test_train_forward_backward(kind: str) -> None:
    spec = tiny_spec(kind)
    net = build_supernet(spec, 1.2).train()
    rng = np.random.default_rng(3)
    for _ in range(2):
        config = net.sample_active(rng)
        exits = tuple(range(1, config.exit + 1)) if spec.early_exit else None
        net.set_active(config, exits)
        net.zero_grad()
        x = torch.randn(4, 3, config.resolution, config.resolution)
        loss = sum(F.cross_entropy(y, torch.arange(4)) for y in as_list(net(x)))
        loss.backward()
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert net.stem.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", list(KINDS))
def test_extremes_build_and_count(kind: str) -> None:
    spec = tiny_spec(kind)
    for net in build_supernets(spec).values():
        for config in (largest_config(spec, net.width), smallest_config(spec, net.width)):
            net.set_active(config)
            static = net.get_active_subnet()
            assert sum(p.numel() for p in static.parameters()) == count_params(spec, config)
        net.set_max()
        assert net.active_exits == spec.exits()
        static = net.get_active_subnet()
        assert sum(p.numel() for p in static.parameters()) == count_params(
            spec, largest_config(spec, net.width), spec.exits()
        )


def test_widths_are_separate_supernets() -> None:
    nets = build_supernets(tiny_spec("ee-dense"))
    assert set(nets) == {1.0, 1.2}
    a, b = (dict(n.named_parameters()) for n in nets.values())
    assert all(a[k].data_ptr() != b[k].data_ptr() for k in a)


def test_extracted_network_is_an_independent_trainable_copy() -> None:
    net = OFASupernet(tiny_spec("se-dense-parallel"), 1.0)
    net.set_active(largest_config(net.spec))
    with torch.inference_mode():
        static = net.get_active_subnet()
    assert static.training and all(p.requires_grad and not p.is_inference() for p in static.parameters())
    before = net.stem.conv.weight.clone()
    static.stem.conv.weight.data.add_(1.0)
    static(torch.randn(2, 3, 32, 32)).sum().backward()
    assert torch.equal(net.stem.conv.weight, before)


def test_kernel_transform_chain() -> None:
    """3x3 = M53(crop3(M75(crop5(W7)))) with F.linear convention (OFA KERNEL_TRANSFORM_MODE=1)."""
    torch.manual_seed(0)
    conv = ElasticDepthwiseConv(6, (3, 5, 7), stride=1)
    with torch.no_grad():
        for p in conv.transforms.values():
            p.add_(torch.randn(p.shape))
    w = conv.weight[:4]
    w5 = F.linear(w[:, :, 1:6, 1:6].reshape(4, 25), conv.transforms["7to5"]).view(4, 1, 5, 5)
    w3 = F.linear(w5[:, :, 1:4, 1:4].reshape(4, 9), conv.transforms["5to3"]).view(4, 1, 3, 3)
    for kernel, expected in ((7, w), (5, w5), (3, w3)):
        conv.set_active(kernel)
        assert torch.allclose(conv.active_filter(4), expected)


def test_elastic_bn_updates_only_active_slice() -> None:
    block = ElasticMBConv(8, 8, (3, 5, 7), (3, 4, 6), 1, "relu", se=True, residual=True).train()
    block.set_active(3, 3)
    mean = block.expand.bn.running_mean.clone()
    block(torch.randn(4, 8, 8, 8))
    mid = block.mid
    assert mid == 24 < block.expand.bn.num_features == 48
    assert not torch.equal(block.expand.bn.running_mean[:mid], mean[:mid])
    assert torch.equal(block.expand.bn.running_mean[mid:], mean[mid:])
    assert block.expand.bn.num_batches_tracked.item() == 1


def test_set_active_validates() -> None:
    net = OFASupernet(tiny_spec("se-base"), 1.0)
    spec = net.spec
    with pytest.raises(FactoryError, match="width"):
        net.set_active(largest_config(spec, 1.2))
    with pytest.raises(FactoryError, match="exits"):
        net.set_active(largest_config(spec).with_exit(2))
    with pytest.raises(FactoryError, match="outside"):
        net.set_active(largest_config(tiny_spec("se-parallel")))  # mask 7 in a non-parallel kind
    bad = BlockConfig(9, 6)
    with pytest.raises(FactoryError, match="outside"):
        net.set_active(SubnetConfig(32, 1.0, 5, (bad,) * 20))
    with pytest.raises(FactoryError):
        OFASupernet(spec, 1.5)


def test_registry() -> None:
    assert list_supernets() == list(KINDS)
    net = build_supernet("ee-parallel", 1.2)
    assert net.spec.kind == "ee-parallel" and net.width == 1.2 and len(net.heads) == 5
    assert len(build_supernet(tiny_spec("se-dense"), 1.0).heads) == 1
    with pytest.raises(FactoryError, match="unknown"):
        build_supernet("ee-nope")


def test_sample_active_is_seeded() -> None:
    net = OFASupernet(tiny_spec("ee-dense-parallel"), 1.0)
    a = [net.sample_active(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1] == net.active_config
    assert all(b is None or b.branches in range(1, 8) for b in a[0].blocks)
    # The training sampler, at this super-network's width.
    assert a[0] == sample_subnets(net.spec, 1, np.random.default_rng(7), net.width)[0]


@pytest.mark.parametrize("kind", list(KINDS))
def test_sort_channels_keeps_the_maximal_network_and_orders_importance(kind: str) -> None:
    spec, net = random_supernet(kind, seed=4)
    net.double()  # a permutation changes float32 summation order; float64 shows it is exact
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    net.set_max()
    small = smallest_config(spec, width=1.0, resolution=32)
    with torch.inference_mode():
        before = as_list(net(x))
        net.set_active(small)
        small_before = net(x)
    net.sort_channels()
    with torch.inference_mode():
        net.set_max()
        after = as_list(net(x))
        net.set_active(small)
        small_after = net(x)
    for y, z in zip(before, after, strict=True):
        torch.testing.assert_close(y, z, atol=1e-10, rtol=1e-10)
    assert not torch.allclose(small_before, small_after)  # smaller expands now keep other channels
    blocks = [m for m in net.modules() if isinstance(m, ElasticMBConv)]
    assert blocks
    for block in blocks:
        importance = block.project.conv.weight.abs().sum(dim=(0, 2, 3))
        assert torch.all(importance[:-1] >= importance[1:])
        if block.se is not None:
            squeeze = block.se.expand.weight.abs().sum(dim=(0, 2, 3))
            assert torch.all(squeeze[:-1] >= squeeze[1:])
