"""Every kind's static network exports with torch.onnx (dynamo, dynamic batch) and runs in onnxruntime."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from factory.nn import StaticNetwork
from factory.space import KINDS, BlockConfig, SpaceSpec, SubnetConfig

from .space_helpers import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")


def small_config(spec: SpaceSpec, exit_: int) -> SubnetConfig:
    """Stage 1 four deep (exercises every dense skip), others two; kernels, expands and masks cycle."""
    blocks: list[BlockConfig | None] = []
    masks = spec.branch_masks()
    for stage, depth in enumerate((4, 2, 2, 2, 2)):
        for i in range(4):
            n = stage * 4 + i
            block = BlockConfig(spec.kernels[n % 3], spec.expands[(n // 3) % 3], masks[n % len(masks)])
            blocks.append(block if i < depth else None)
    return SubnetConfig(32, 1.0, exit_, tuple(blocks))


@torch.no_grad()
def calibrate(net: StaticNetwork) -> StaticNetwork:
    """BN statistics from one random batch, so logits are O(1) and an absolute tolerance means something."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    net.train()(torch.randn(8, 3, 32, 32))
    return net.eval()


def export_and_run(net: StaticNetwork, outputs: list[str]) -> None:
    calibrate(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net,
            (torch.randn(2, 3, 32, 32),),
            input_names=["image"],
            output_names=outputs,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
            verbose=False,
        )
    model = program.model_proto
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == outputs
    x = torch.randn(3, 3, 32, 32)  # another batch size than the example: the batch axis is dynamic
    got = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        want = net(x)
    want = want if isinstance(want, list) else [want]
    for g, w in zip(got, want, strict=True):
        assert g.shape == tuple(w.shape)
        # 1e-4 absolute for O(1) logits; scaled for larger ones, where float32 torch alone differs from
        # float64 by ~4e-5 (logits ~17 after 12 random blocks).
        scale = max(1.0, float(np.abs(w.numpy()).max()))
        assert np.abs(g - w.numpy()).max() <= 1e-4 * scale and scale < 1e3
        assert (g.argmax(1) == w.numpy().argmax(1)).all()


@pytest.mark.parametrize("kind", list(KINDS))
def test_onnx_round_trip(kind: str) -> None:
    """Single-exit kinds: the deployable network. Early-exit kinds: exits (1, 2) in one graph (AEP shape)."""
    spec = tiny_spec(kind)
    torch.manual_seed(0)
    if spec.early_exit:
        export_and_run(StaticNetwork(spec, small_config(spec, 2), exits=(1, 2)), ["logits1", "logits2"])
    else:
        export_and_run(StaticNetwork(spec, small_config(spec, 5)), ["logits"])
