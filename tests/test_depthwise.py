"""The fast depthwise convolution computes exactly what a plain 'same' depthwise convolution computes."""

import pytest
import torch
import torch.nn.functional as F

from factory.nn import depthwise
from factory.nn.depthwise import DepthwiseConv2d, depthwise_conv2d


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 3), (4, 4), (8, 8), (1, 5), (2, 9)])
def test_output_and_gradients_match_plain_conv(size: tuple[int, int], kernel: int, stride: int) -> None:
    g = torch.Generator().manual_seed(kernel * 100 + size[0] * 10 + size[1])
    x = torch.randn(3, 4, *size, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(4, 1, kernel, kernel, generator=g)
    grads = []
    outputs = []
    for conv in (
        lambda a, b: F.conv2d(a, b, None, stride, kernel // 2, 1, 4),
        lambda a, b: depthwise_conv2d(a, b, stride),
    ):
        xi, wi = x.clone().requires_grad_(), w.clone().requires_grad_()
        out = conv(xi, wi)
        out.backward(torch.arange(out.numel(), dtype=out.dtype).view_as(out).sin())
        outputs.append(out)
        grads.append((xi.grad, wi.grad))
    assert outputs[0].shape == outputs[1].shape
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-5, atol=1e-5)


def test_module_uses_plain_conv_in_eval_and_fast_path_in_training(monkeypatch: pytest.MonkeyPatch) -> None:
    conv = DepthwiseConv2d(6, 7, 2)
    plain = torch.nn.Conv2d(6, 6, 7, 2, 3, groups=6, bias=False)
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(2, 6, 2, 2)
    for mode in (True, False):
        conv.train(mode)
        torch.testing.assert_close(conv(x), plain(x), rtol=1e-5, atol=1e-6)
    calls = []
    monkeypatch.setattr(
        depthwise, "depthwise_conv2d", lambda x, w, s: calls.append(s) or F.conv2d(x, w, None, s, 3, 1, 6)
    )
    conv.eval()(x)
    assert not calls  # exported graphs and fvcore see the plain convolution
    conv.train()(torch.randn(2, 6, 7, 7))
    assert len(calls) == 1


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_cudnn_free_path_matches_the_plain_conv_in_value_dtype_and_layout(
    layout: torch.memory_format, dtype: torch.dtype
) -> None:
    """The CUDA path's computation (float32, default layout, autocast off), checked where it can run: a CPU."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 6, 6, generator=g).to(dtype).contiguous(memory_format=layout)
    w = torch.randn(5, 1, 5, 5, generator=g, dtype=dtype)
    xi, wi = x.clone().requires_grad_(), w.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = depthwise.native_depthwise_conv2d(xi, wi, 2)
    out.float().sum().backward()
    expected = F.conv2d(x.float(), w.float(), None, 2, 2, 1, 5)
    assert out.dtype == dtype and out.is_contiguous(memory_format=layout)
    torch.testing.assert_close(out.float(), expected, rtol=1e-2 if dtype == torch.bfloat16 else 1e-5, atol=1e-2)
    assert xi.grad is not None and wi.grad is not None and xi.grad.dtype == dtype
