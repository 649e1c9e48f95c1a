"""Static (exportable) layers and networks. Nothing here is elastic; see factory.elastic for that."""

from factory.nn.heads import ExitHead
from factory.nn.layers import ConvBNAct, MBConv, SqueezeExcite, activation_fn, init_weights, make_activation
from factory.nn.network import StaticNetwork, build_head, build_level, build_stem
from factory.nn.parallel import ParallelLevel, Transform, conv_branch
from factory.nn.stage import Stage, stage_forward

__all__ = [
    "ConvBNAct",
    "ExitHead",
    "MBConv",
    "ParallelLevel",
    "SqueezeExcite",
    "Stage",
    "StaticNetwork",
    "Transform",
    "activation_fn",
    "build_head",
    "build_level",
    "build_stem",
    "conv_branch",
    "init_weights",
    "make_activation",
    "stage_forward",
]
