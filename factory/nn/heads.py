"""The exit head that closes a stage (MobileNetV3's final layers, one per exit)."""

from __future__ import annotations

import torch
from torch import nn

from factory.nn.layers import ConvBNAct


class ExitHead(nn.Module):
    """1x1 conv + BN + h-swish to 6C, global avg-pool, 1x1 conv (no bias, no BN) + h-swish to 8C, dropout, linear."""

    def __init__(self, cin: int, mid: int, features: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.expand = ConvBNAct(cin, mid, 1, act="hswish")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.features = nn.Conv2d(mid, features, 1, bias=False)
        self.act = nn.Hardswish()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.features(self.pool(self.expand(x))))
        return self.classifier(self.dropout(torch.flatten(h, 1)))
